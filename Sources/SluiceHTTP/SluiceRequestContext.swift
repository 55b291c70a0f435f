import Hummingbird
import NIOCore

/// Hummingbird's basic request context plus the connection the request came on, which a long poll
/// asks whether its client is still there (`ClientConnection`).
public struct SluiceRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The request's connection.
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
