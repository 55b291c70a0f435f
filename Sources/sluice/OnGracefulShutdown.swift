import ServiceLifecycle

/// Runs `action` when graceful shutdown reaches it, then ends. A service group shuts services down
/// last to first, so placed after a service this runs before that service is asked to stop.
struct OnGracefulShutdown: Service {
    let action: @Sendable () -> Void

    func run() async throws {
        // Returns when graceful shutdown begins; throws when the group is cancelled instead, and
        // the action is still due then.
        try? await gracefulShutdown()
        action()
    }
}
