import NIOCore
import NIOHTTP1

/// Remembers, per request in order, whether the client keeps the connection alive; marks the
/// response of one that does not and closes once that response has been written. An HTTP/1.0 client
/// that asked for keep-alive is told it was granted (`Connection: keep-alive`), as 1.0 requires.
final class ConnectionCloseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var requests: [(keepAlive: Bool, http10: Bool)] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            requests.append((head.isKeepAlive, head.version.major == 1 && head.version.minor == 0))
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        let close = requests.first?.keepAlive == false
        switch part {
        case .head(var head) where close || requests.first?.http10 == true:
            head.headers.replaceOrAdd(name: "connection", value: close ? "close" : "keep-alive")
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end:
            if !requests.isEmpty { requests.removeFirst() }
            guard close else { return context.write(data, promise: promise) }
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.cascade(to: promise)
            context.write(data, promise: written)
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)  // the callback runs on this loop
            written.futureResult.whenComplete { _ in bound.value.close(promise: nil) }
        default:
            context.write(data, promise: promise)
        }
    }
}
