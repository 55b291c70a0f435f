import Foundation
import SluiceCore
import SluicePool
import SluiceStore
import Synchronization

/// Holds a request open until a task is final, without holding a thread: a task finished in this
/// process wakes its waiters at once and hands them the finished task; one finished by another
/// process is seen by polling the store with a backoff capped at 250 ms. On shutdown every wait
/// answers at once with the task as it stands, so that a long poll never holds up the pool's drain.
final class TaskWaiter: Sendable {
    /// One waiting request.
    private final class Waiter: Sendable {
        let signal = WakeSignal()
        /// The task as the store that finished it announced it.
        let finished = Mutex<TaskRecord?>(nil)
    }
    private struct State {
        var waiting: [TaskID: [Waiter]] = [:]
        var shutDown = false
    }
    private let state = Mutex(State())

    init(stores: [any TaskStore]) {
        for store in stores {
            store.events.onFinish { [weak self] task in self?.wake(task) }
        }
    }

    private func wake(_ task: TaskRecord) {
        for waiter in state.withLock({ $0.waiting[task.id] ?? [] }) {
            waiter.finished.withLock { $0 = task }
            waiter.signal.signal()
        }
    }

    /// Requests waiting now.
    var count: Int { state.withLock { $0.waiting.values.reduce(0) { $0 + $1.count } } }

    /// Wakes every waiter and makes later waits return at once; called when shutdown begins.
    func shutdown() {
        let signals = state.withLock { state in
            state.shutDown = true
            return state.waiting.values.flatMap { $0.map(\.signal) }
        }
        signals.forEach { $0.signal() }
    }

    /// The task once final, or as it stands when `timeout` passes or shutdown begins.
    func wait(for id: TaskID, in store: any TaskStore, timeout: Duration) async throws -> TaskRecord {
        let waiter = Waiter()
        state.withLock { $0.waiting[id, default: []].append(waiter) }
        defer {
            state.withLock { state in
                state.waiting[id]?.removeAll { $0 === waiter }
                if state.waiting[id]?.isEmpty == true { state.waiting[id] = nil }
            }
        }
        let deadline = ContinuousClock.now + timeout
        var pause = Duration.milliseconds(10)
        while true {
            // The task as its store announced it once finished, rather than read back: one read
            // fewer (a round trip on PostgreSQL), and a memory store may already have forgotten
            // it to make room for later ones.
            let task: TaskRecord
            if let finished = waiter.finished.withLock({ $0 }) { task = finished } else { task = try await store.require(id) }
            let left = deadline - ContinuousClock.now
            // Read after registering the signal: a shutdown that began before this read is seen here,
            // one that begins after it signals.
            let shuttingDown = state.withLock { $0.shutDown }
            if task.state.isFinal || left <= .zero || Task.isCancelled || shuttingDown { return task }
            await waiter.signal.wait(timeout: min(pause, left))
            pause = min(pause * 2, .milliseconds(250))
        }
    }
}
