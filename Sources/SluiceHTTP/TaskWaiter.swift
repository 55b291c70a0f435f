import Foundation
import SluiceCore
import SluicePool
import SluiceStore
import Synchronization

/// Holds a request open until a task is final, without holding a thread: a task finished in this
/// process wakes its waiters at once; one finished by another process is seen by polling the store
/// with a backoff capped at 250 ms.
final class TaskWaiter: Sendable {
    private let waiting = Mutex<[TaskID: [WakeSignal]]>([:])

    init(stores: [any TaskStore]) {
        for store in stores {
            store.events.onFinish { [weak self] task in self?.wake(task.id) }
        }
    }

    private func wake(_ id: TaskID) {
        let signals = waiting.withLock { $0[id] ?? [] }
        signals.forEach { $0.signal() }
    }

    /// The task once final, or as it stands when `timeout` passes.
    func wait(for id: TaskID, in store: any TaskStore, timeout: Duration) async throws -> TaskRecord {
        let signal = WakeSignal()
        waiting.withLock { $0[id, default: []].append(signal) }
        defer {
            waiting.withLock { waiting in
                waiting[id]?.removeAll { $0 === signal }
                if waiting[id]?.isEmpty == true { waiting[id] = nil }
            }
        }
        let deadline = ContinuousClock.now + timeout
        var pause = Duration.milliseconds(10)
        while true {
            let task = try await store.require(id)
            let left = deadline - ContinuousClock.now
            if task.state.isFinal || left <= .zero || Task.isCancelled { return task }
            await signal.wait(timeout: min(pause, left))
            pause = min(pause * 2, .milliseconds(250))
        }
    }
}
