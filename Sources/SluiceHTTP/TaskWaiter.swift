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
    /// One waiting request, for one task or a batch.
    private final class Waiter: Sendable {
        let signal = WakeSignal()
        /// Tasks as the store that finished them announced them.
        let finished = Mutex<[TaskID: TaskRecord]>([:])
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
            waiter.finished.withLock { $0[task.id] = task }
            waiter.signal.signal()
        }
    }

    /// Requests waiting now.
    var count: Int {
        state.withLock { state in Set(state.waiting.values.lazy.flatMap { $0.map(ObjectIdentifier.init) }).count }
    }

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
        try await wait(for: [id], in: store, timeout: timeout)[0]
    }

    /// The tasks, in the order given, once all are final, or as they stand when `timeout` passes
    /// or shutdown begins.
    func wait(for ids: [TaskID], in store: any TaskStore, timeout: Duration) async throws -> [TaskRecord] {
        let waiter = Waiter()
        state.withLock { state in
            for id in ids { state.waiting[id, default: []].append(waiter) }
        }
        defer {
            state.withLock { state in
                for id in ids {
                    state.waiting[id]?.removeAll { $0 === waiter }
                    if state.waiting[id]?.isEmpty == true { state.waiting[id] = nil }
                }
            }
        }
        let deadline = ContinuousClock.now + timeout
        var pause = Duration.milliseconds(10)
        var known: [TaskID: TaskRecord] = [:]
        var settled = 0  // ids[..<settled] are known to be final
        var polling = true
        var lastPoll = ContinuousClock.now
        while true {
            // Tasks as their store announced them once finished, rather than read back: one read
            // fewer each (a round trip on PostgreSQL), and a memory store may already have
            // forgotten them to make room for later ones.
            let announced = waiter.finished.withLock { finished in
                defer { finished = [:] }
                return finished
            }
            known.merge(announced) { _, new in new }
            // Tasks finished by another process (or before this wait began) are seen by reading
            // the store in order up to the first one still unfinished: a tick costs about one read
            // however large the batch, and catches up quickly once the batch is done.
            while settled < ids.count {
                if known[ids[settled]]?.state.isFinal != true {
                    guard polling else { break }
                    lastPoll = ContinuousClock.now
                    let task = try await store.require(ids[settled])
                    known[task.id] = task
                    if !task.state.isFinal { break }
                }
                settled += 1
            }
            let left = deadline - ContinuousClock.now
            // Read after registering the signal: a shutdown that began before this read is seen here,
            // one that begins after it signals.
            let shuttingDown = state.withLock { $0.shutDown }
            if settled == ids.count || left <= .zero || Task.isCancelled || shuttingDown {
                // Final tasks as known; the others as they stand now, read again.
                var answer: [TaskRecord] = []
                for id in ids {
                    if let task = known[id], task.state.isFinal { answer.append(task) } else { answer.append(try await store.require(id)) }
                }
                return answer
            }
            pause = announced.isEmpty ? min(pause * 2, .milliseconds(250)) : .milliseconds(10)
            await waiter.signal.wait(timeout: min(pause, left))
            // A wake with nothing newly announced was the pause running out: read the store then.
            // (And at least every 250 ms however many local finishes keep announcing, so that a task
            // another process finished at the head of the batch is not left unseen.)
            polling = waiter.finished.withLock { $0.isEmpty } || ContinuousClock.now - lastPoll >= .milliseconds(250)
        }
    }
}
