import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// HTTP/1 as Hummingbird serves it, plus the rule for clients that do not keep connections alive:
/// an HTTP/1.0 request without `Connection: keep-alive` (ApacheBench's default) or any request with
/// `Connection: close` gets `Connection: close` and the connection is closed after the response
/// (RFC 9112 §9.3). Without this, such a client waits for a close that never comes.
public struct HTTP1WithConnectionClose: ServerChildChannel {
    let inner: HTTP1Channel

    /// The server builder to hand to `Application(server:)`. A connection idle for `idleTimeout`
    /// (or sending its request slower than that) is closed; one whose request is being answered is not.
    public static func builder(idleTimeout: Duration? = nil) -> HTTPServerBuilder {
        let configuration = HTTP1Channel.Configuration(idleTimeout: idleTimeout.map { TimeAmount($0) })
        return HTTPServerBuilder { responder in
            HTTP1WithConnectionClose(inner: HTTP1Channel(responder: responder, configuration: configuration))
        }
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            // The HTTP version is visible only before the HTTP/1 → HTTP types conversion.
            let codec = try channel.pipeline.syncOperations.context(handlerType: HTTP1ToHTTPServerCodec.self)
            try channel.pipeline.syncOperations.addHandler(ConnectionCloseHandler(), position: .before(codec.handler))
            return value
        }
    }

    public func handle(value: HTTP1Channel.Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

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
            written.futureResult.whenComplete { _ in context.close(promise: nil) }
        default:
            context.write(data, promise: promise)
        }
    }
}
