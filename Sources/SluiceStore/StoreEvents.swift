import SluiceCore
import Synchronization

/// In-process notices from a store, sent after the commit they describe: so that a pool in the
/// same process starts a new task at once instead of at its next poll, and a request waiting for a
/// task's result is answered when the task finishes. A store that hears of other processes'
/// enqueues (PostgreSQL's LISTEN) sends those too, through `heard(enqueuesIn:)`, and that another
/// process finished tasks, through `heardFinishElsewhere()`; one that hears only that another process
/// wrote (SQLite, through the file) says so through `heardForeignWrite()`; otherwise other processes
/// learn by polling.
public final class StoreEvents: Sendable {
    private struct Observers {
        var enqueued: [@Sendable (Set<String>) -> Void] = []
        var enqueuedCounts: [@Sendable ([String: Int]) -> Void] = []
        var finished: [@Sendable ([RecordedTask]) -> Void] = []
        var foreignWrite: [@Sendable () -> Void] = []
        var finishedElsewhere: [@Sendable () -> Void] = []
    }
    private let observers = Mutex(Observers())

    public init() {}

    /// Calls `observer` with the queues that received tasks, after each enqueue.
    public func onEnqueue(_ observer: @escaping @Sendable (Set<String>) -> Void) {
        observers.withLock { $0.enqueued.append(observer) }
    }

    /// Calls `observer` with how many tasks each queue received, after each enqueue.
    public func onEnqueueCounts(_ observer: @escaping @Sendable ([String: Int]) -> Void) {
        observers.withLock { $0.enqueuedCounts.append(observer) }
    }

    /// Calls `observer` with the tasks that each write through this store brought to a final
    /// state. The durable stores send all of one write in one call (a batch of completions is one
    /// notice, so an observer sees every task the batch finished before it acts on any; the memory
    /// store records one by one, each with its whole task); a task carries its whole record only
    /// where the store had it at hand (`RecordedTask.task`).
    public func onFinish(_ observer: @escaping @Sendable ([RecordedTask]) -> Void) {
        observers.withLock { $0.finished.append(observer) }
    }

    func enqueued(_ tasks: [EnqueueResult]) {
        var counts: [String: Int] = [:]
        for task in tasks where task.created { counts[task.task.queue, default: 0] += 1 }
        guard !counts.isEmpty else { return }
        let (queueObservers, countObservers) = observers.withLock { ($0.enqueued, $0.enqueuedCounts) }
        let queues = Set(counts.keys)
        for observer in queueObservers { observer(queues) }
        for observer in countObservers { observer(counts) }
    }

    /// Tells the enqueue observers that another process put tasks in `queues`.
    public func heard(enqueuesIn queues: Set<String>) {
        guard !queues.isEmpty else { return }
        for observer in observers.withLock({ $0.enqueued }) { observer(queues) }
    }

    /// Calls `observer` when another process wrote to the store (SQLite hears it through the file):
    /// it may have enqueued, into any queue.
    public func onForeignWrite(_ observer: @escaping @Sendable () -> Void) {
        observers.withLock { $0.foreignWrite.append(observer) }
    }

    /// Tells the foreign-write observers that another process wrote to the store.
    public func heardForeignWrite() {
        for observer in observers.withLock({ $0.foreignWrite }) { observer() }
    }

    /// Calls `observer` when another process says it finished tasks (PostgreSQL hears it through
    /// NOTIFY; on SQLite, `onForeignWrite` covers it).
    public func onFinishElsewhere(_ observer: @escaping @Sendable () -> Void) {
        observers.withLock { $0.finishedElsewhere.append(observer) }
    }

    /// Tells the observers of `onFinishElsewhere` that another process finished tasks.
    public func heardFinishElsewhere() {
        for observer in observers.withLock({ $0.finishedElsewhere }) { observer() }
    }

    func finished(_ tasks: [RecordedTask]) {
        let final = tasks.filter(\.state.isFinal)
        guard !final.isEmpty else { return }
        for observer in observers.withLock({ $0.finished }) { observer(final) }
    }
}

extension TaskStore {
    /// Sends the events a store owes after a committed write; stores call it, callers need not.
    public func announce(enqueued results: [EnqueueResult]) -> [EnqueueResult] {
        events.enqueued(results)
        return results
    }

    /// Sends the finish event for `task` when it is final, and returns it.
    public func announce(_ task: TaskRecord) -> TaskRecord {
        events.finished([RecordedTask(task)])
        return task
    }

    /// Sends one finish event for those of `tasks`, all written by one commit, that are final.
    public func announce(finished tasks: [RecordedTask]) {
        events.finished(tasks)
    }
}
