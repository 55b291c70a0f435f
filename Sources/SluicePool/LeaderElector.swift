import Logging
import SluiceCore
import SluiceStore
import Synchronization

/// Keeps this process in the running for the `maintenance` lease in the store: takes it when free
/// or expired, renews it at a third of its length while held. When the leader dies, its lease
/// expires and another process takes it within two lease periods.
///
/// This process counts itself the leader only until its lease would expire if no renewal came
/// through: a renewal that hangs (a slow or unreachable store) must not let it go on running
/// maintenance beside the process that took over.
final class LeaderElector: Sendable {
    /// The lease's name in the store.
    static let role = "maintenance"
    let store: any WorkerDirectory
    let owner: String
    let lease: Duration
    let monotonic: any MonotonicClock
    let logger: Logger
    /// When the lease held ends, on `monotonic`; `nil` when not held.
    private let heldUntil = Mutex<Duration?>(nil)

    init(store: any WorkerDirectory, owner: String, lease: Duration, monotonic: any MonotonicClock = SystemMonotonicClock(), logger: Logger) {
        self.store = store
        self.owner = owner
        self.lease = lease
        self.monotonic = monotonic
        self.logger = logger
    }

    var isLeader: Bool {
        let now = monotonic.now()
        return heldUntil.withLock { until in until.map { now < $0 } ?? false }
    }

    func run() async {
        while !Task.isCancelled {
            await attempt()
            try? await Task.sleep(for: lease / 3)
        }
    }

    /// One election round: take or renew the lease.
    func attempt() async {
        // The lease runs from before the request at the latest: part of it is gone when the answer comes.
        let asked = monotonic.now()
        let now: Bool
        do {
            now = try await store.acquireLeadership(Self.role, owner: owner, for: lease)
        } catch {
            // Unsure whether we still hold it: stop leading; the lease settles it at the next round.
            now = false
            logger.warning("leader election failed: \(error)", metadata: ["worker": "\(owner)"])
        }
        let was = isLeader
        heldUntil.withLock { $0 = now ? asked + lease : nil }
        if now != was { logger.info(now ? "elected leader: this process runs maintenance" : "no longer leader", metadata: ["worker": "\(owner)"]) }
    }

    /// Gives the lease up (clean exit) so another process takes over at once.
    func resign() async throws {
        guard heldUntil.withLock({ held in defer { held = nil }; return held != nil }) else { return }
        try await store.resignLeadership(Self.role, owner: owner)
    }
}
