import NIOCore

/// Whether a request's client is still there. A long poll asks before each try: a claim held open
/// for a worker that went away (killed, or its client timed out) must not take the next task and
/// sit on its lease.
enum ClientConnection {
    /// Whether `channel`'s peer is still there. The channel itself learns of the peer's close only
    /// when it next reads, and while a request is answered nothing reads; the kernel knows at once:
    /// the socket leaves ESTABLISHED (for CLOSE_WAIT) when the peer's FIN arrives. A client that
    /// shuts down only its sending side counts as gone too: its long poll answers at once, empty.
    /// A channel that is not a socket (router tests) counts as open.
    static func isOpen(_ channel: any Channel) async -> Bool {
        guard let socket = channel as? any SocketOptionProvider else { return true }
        guard channel.isActive else { return false }
        guard let info = try? await socket.getTCPInfo().get() else { return true }
        return info.tcpi_state == 1  // TCP_ESTABLISHED
    }
}
