import SluiceCore
import SluicePool
import SluiceStore
import Synchronization

/// Holds a remote worker's claim open until tasks may be ready in its queues, without holding a
/// thread: an enqueue through this process's store wakes the claims on those queues at once; a
/// claim also wakes when a delayed task or a retry of its queues falls due (`nextDue`); tasks
/// enqueued by other processes are found by claiming again at least once a second (`pollInterval`).
/// On shutdown every claim answers at once, so a long poll never holds up the drain; a
/// claim whose client has gone stops trying, so that it takes no task nobody will run.
final class ClaimWaiter: Sendable {
    private struct Waiting {
        var queues: Set<String>
        var signal: WakeSignal
    }
    private struct State {
        var waiting: [ObjectIdentifier: Waiting] = [:]
        var shutDown = false
    }
    private let state = Mutex(State())
    /// The longest a claim sleeps between two tries: what another process's enqueue may wait.
    let pollInterval: Duration

    init(store: any TaskStore, pollInterval: Duration = .seconds(1)) {
        self.pollInterval = pollInterval
        store.events.onEnqueue { [weak self] queues in self?.wake(queues) }
    }

    private func wake(_ queues: Set<String>) {
        let signals = state.withLock { $0.waiting.values.filter { !$0.queues.isDisjoint(with: queues) }.map(\.signal) }
        signals.forEach { $0.signal() }
    }

    /// Claims waiting now.
    var count: Int { state.withLock { $0.waiting.count } }

    /// Wakes every claim and makes later ones try once and return; called when shutdown begins.
    func shutdown() {
        let signals = state.withLock { state in
            state.shutDown = true
            return state.waiting.values.map(\.signal)
        }
        signals.forEach { $0.signal() }
    }

    /// Calls `claim` until it returns tasks, `timeout` passes, shutdown begins or the client goes;
    /// its last answer. Between tries it sleeps until woken, `pollInterval` passes, or `nextDue`
    /// (asked with the longest it would sleep) says a task falls due.
    func wait<T: Collection & Sendable>(on queues: Set<String>, timeout: Duration, clientGone: @Sendable () async -> Bool = { false },
                                        nextDue: (Duration) async throws -> Duration? = { _ in nil },
                                        _ claim: () async throws -> T) async throws -> T {
        let signal = WakeSignal()
        let key = ObjectIdentifier(signal)
        // Registered before the first try: an enqueue between a try and the wait is kept by the signal.
        state.withLock { $0.waiting[key] = Waiting(queues: queues, signal: signal) }
        defer { _ = state.withLock { $0.waiting.removeValue(forKey: key) } }
        let deadline = ContinuousClock.now + timeout
        while true {
            let found = try await claim()
            let left = deadline - ContinuousClock.now
            if !found.isEmpty || left <= .zero || Task.isCancelled || state.withLock({ $0.shutDown }) { return found }
            var sleep = min(pollInterval, left)
            // A failed look only costs the early wake.
            if let due = try? await nextDue(sleep) { sleep = min(sleep, NextDue.wake(forDue: due)) }
            await signal.wait(timeout: sleep)
            if await clientGone() { return found }
        }
    }
}
