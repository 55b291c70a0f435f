import Logging
import SluiceCore
import SluiceStore
import Synchronization

/// Keeps this process in the running for the `maintenance` lease in the store: takes it when free
/// or expired, renews it at a third of its length while held. When the leader dies, its lease
/// expires and another process takes it within two lease periods.
final class LeaderElector: Sendable {
    /// The lease's name in the store.
    static let role = "maintenance"
    let store: any WorkerDirectory
    let owner: String
    let lease: Duration
    let logger: Logger
    private let leading = Atomic<Bool>(false)

    init(store: any WorkerDirectory, owner: String, lease: Duration, logger: Logger) {
        self.store = store
        self.owner = owner
        self.lease = lease
        self.logger = logger
    }

    var isLeader: Bool { leading.load(ordering: .relaxed) }

    func run() async {
        while !Task.isCancelled {
            await attempt()
            try? await Task.sleep(for: lease / 3)
        }
    }

    /// One election round: take or renew the lease.
    func attempt() async {
        let now: Bool
        do {
            now = try await store.acquireLeadership(Self.role, owner: owner, for: lease)
        } catch {
            // Unsure whether we still hold it: stop leading; the lease settles it at the next round.
            now = false
            logger.warning("leader election failed: \(error)", metadata: ["worker": "\(owner)"])
        }
        let was = leading.exchange(now, ordering: .relaxed)
        if now != was { logger.info(now ? "elected leader: this process runs maintenance" : "no longer leader", metadata: ["worker": "\(owner)"]) }
    }

    /// Gives the lease up (clean exit) so another process takes over at once.
    func resign() async throws {
        guard leading.exchange(false, ordering: .relaxed) else { return }
        try await store.resignLeadership(Self.role, owner: owner)
    }
}
