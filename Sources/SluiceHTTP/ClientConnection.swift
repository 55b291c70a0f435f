import NIOCore

/// The connection of the request a task is answering, as far as a handler needs it. A long poll
/// asks before each try whether its client is still there: a claim held open for a worker that
/// went away (killed, or its client timed out) must not take the next task and sit on its lease.
enum ClientConnection {
    /// Whether the connection is still open; set per connection by `HTTP1WithConnectionClose`,
    /// `nil` where there is no connection (router tests).
    @TaskLocal static var isOpen: (@Sendable () async -> Bool)?

    /// Whether the client of the request this task answers has closed its connection.
    static func isGone() async -> Bool {
        guard let isOpen else { return false }
        return await !isOpen()
    }

    /// Whether `channel`'s peer is still there. The channel itself learns of the peer's close only
    /// when it next reads, and while a request is answered nothing reads; the kernel knows at once:
    /// the socket leaves ESTABLISHED (for CLOSE_WAIT) when the peer's FIN arrives. A client that
    /// shuts down only its sending side counts as gone too: its long poll answers at once, empty.
    static func isOpen(_ channel: any Channel) async -> Bool {
        guard channel.isActive else { return false }
        guard let socket = channel as? any SocketOptionProvider, let info = try? await socket.getTCPInfo().get() else { return true }
        return info.tcpi_state == 1  // TCP_ESTABLISHED
    }
}
