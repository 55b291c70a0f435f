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
