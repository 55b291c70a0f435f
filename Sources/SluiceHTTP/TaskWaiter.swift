import Foundation
import SluiceCore
import SluicePool
import SluiceStore
import Synchronization

/// Holds a request open until a task is final, without holding a thread. A task finished in this
/// process wakes its waiters at once and hands them the finished task (or has them read it at once,
/// when its store announced less than the whole task). One finished by another
/// process is seen by reading the store: at once when the store hears another process write
/// (SQLite's watch on its file) or say that it finished tasks (PostgreSQL's NOTIFY), one read of
/// every awaited task however many requests wait; and otherwise, or as a backstop, by each request
/// polling with a backoff capped at 250 ms. On shutdown every wait answers at once with the task as
/// it stands, so that a long poll never holds up the pool's drain.
final class TaskWaiter: Sendable {
    /// One waiting request, for one task or a batch.
    private final class Waiter: Sendable {
        let signal = WakeSignal()
        /// The store the tasks live in, by its events (one per store).
        let store: ObjectIdentifier
        /// Tasks as the store that finished them announced them.
        let finished = Mutex<[TaskID: TaskRecord]>([:])
        /// A task finished here was announced without its record: read the store.
        let mustRead = Atomic<Bool>(false)
        init(store: ObjectIdentifier) { self.store = store }
    }
    private struct State {
        var waiting: [TaskID: [Waiter]] = [:]
        var shutDown = false
        /// Requests waiting on each store.
        var waitersIn: [ObjectIdentifier: Int] = [:]
        /// Stores whose awaited tasks are being read after another process wrote, and whether
        /// another write was heard during that read (then it reads once more).
        var reading: [ObjectIdentifier: Bool] = [:]
    }
    private let state = Mutex(State())
    private let stores: [any TaskStore]
    /// Each request's own reads of the store: the first pause, and the longest it backs off to.
    private let poll: (first: Duration, cap: Duration)

    init(stores: [any TaskStore], poll: (first: Duration, cap: Duration) = (.milliseconds(10), .milliseconds(250))) {
        self.stores = stores
        self.poll = poll
        for (index, store) in stores.enumerated() {
            store.events.onFinish { [weak self] notices in self?.wake(notices) }
            store.events.onForeignWrite { [weak self] in self?.heardOtherProcess(in: index) }
            store.events.onFinishElsewhere { [weak self] in self?.heardOtherProcess(in: index) }
        }
    }

    /// Hands final tasks to their waiters; they hold them now, so reads after other processes'
    /// writes need not fetch them again. A notice without the task (the durable stores' batched
    /// completions) has them read it. Each waiter is woken once, after it has all of the notices.
    private func wake(_ notices: [RecordedTask]) {
        let waiters = state.withLock { state in
            notices.map { notice in
                defer { state.waiting[notice.id] = nil }
                return state.waiting[notice.id] ?? []
            }
        }
        var woken: [ObjectIdentifier: Waiter] = [:]
        for (notice, waiters) in zip(notices, waiters) {
            for waiter in waiters {
                if let task = notice.task { waiter.finished.withLock { $0[task.id] = task } } else { waiter.mustRead.store(true, ordering: .releasing) }
                woken[ObjectIdentifier(waiter)] = waiter
            }
        }
        for waiter in woken.values { waiter.signal.signal() }
    }

    /// Another process wrote to `stores[index]`, or finished tasks in it: perhaps awaited ones. One
    /// read at a time per store; notices heard during it make one more.
    private func heardOtherProcess(in index: Int) {
        let key = ObjectIdentifier(stores[index].events)
        let start = state.withLock { state -> Bool in
            guard state.waitersIn[key, default: 0] > 0 else { return false }
            if state.reading[key] != nil {
                state.reading[key] = true
                return false
            }
            state.reading[key] = false
            return true
        }
        if start { Task { await readAwaitedTasks(in: index) } }
    }

    /// Reads every task awaited in `stores[index]` and hands the final ones to their waiters, as
    /// if this process had finished them. Rounds are at least 5 ms apart, so that a busy file
    /// (writes heard continuously) costs at most a few hundred reads a second however many wait.
    private func readAwaitedTasks(in index: Int) async {
        let store = stores[index], key = ObjectIdentifier(store.events)
        var round = 0
        repeat {
            if round > 0 { try? await Task.sleep(for: .milliseconds(5)) }
            round += 1
            // (The stores report a write once its commit is visible, a notice after its commit.)
            let ids = state.withLock { state in
                state.waiting.compactMap { id, waiters in waiters.contains { $0.store == key } ? id : nil }
            }
            // A failed read is left to the waiters' own polls, which report their errors.
            if !ids.isEmpty, let found = try? await store.tasks(ids, onlyFinal: true) {
                wake(found.values.map(RecordedTask.init))
            }
        } while state.withLock { state in
            if state.reading[key] == true {
                state.reading[key] = false
                return true
            }
            state.reading[key] = nil
            return false
        }
    }

    /// Requests waiting now.
    var count: Int {
        state.withLock { state in state.waitersIn.values.reduce(0, +) }
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
        let waiter = Waiter(store: ObjectIdentifier(store.events))
        state.withLock { state in
            for id in ids { state.waiting[id, default: []].append(waiter) }
            state.waitersIn[waiter.store, default: 0] += 1
        }
        defer {
            state.withLock { state in
                for id in ids {
                    state.waiting[id]?.removeAll { $0 === waiter }
                    if state.waiting[id]?.isEmpty == true { state.waiting[id] = nil }
                }
                state.waitersIn[waiter.store, default: 1] -= 1
                if state.waitersIn[waiter.store] == 0 { state.waitersIn[waiter.store] = nil }
            }
        }
        let deadline = ContinuousClock.now + timeout
        var pause = poll.first
        var known: [TaskID: TaskRecord] = [:]
        var polling = true
        var lastPoll = ContinuousClock.now
        // Tasks as their store announced them once finished, rather than read back: one read fewer
        // (a round trip on PostgreSQL), and a memory store may already have forgotten them to make
        // room for later ones.
        func takeAnnounced() -> Bool {
            let announced = waiter.finished.withLock { finished in
                defer { finished = [:] }
                return finished
            }
            known.merge(announced) { _, new in new }
            return !announced.isEmpty
        }
        func unfinished() -> [TaskID] { ids.filter { known[$0]?.state.isFinal != true } }
        /// Reads the unfinished tasks, in one read; a task that no longer exists is an error.
        func read() async throws {
            let open = unfinished()
            guard !open.isEmpty else { return }
            let found = try await store.tasks(open)
            known.merge(found) { _, new in new }
            // Announced while being read, or gone: deleted, or finished and forgotten.
            _ = takeAnnounced()
            if let gone = open.first(where: { found[$0] == nil && known[$0]?.state.isFinal != true }) { throw SluiceError(.notFound, "no task has id \(gone)") }
        }
        while true {
            let announced = takeAnnounced()
            // Tasks finished by another process (or before this wait began): one read for all.
            if polling, !unfinished().isEmpty {
                lastPoll = ContinuousClock.now
                try await read()
            }
            let left = deadline - ContinuousClock.now
            // Read after registering the signal: a shutdown that began before this read is seen here,
            // one that begins after it signals.
            let shuttingDown = state.withLock { $0.shutDown }
            if unfinished().isEmpty || left <= .zero || Task.isCancelled || shuttingDown {
                // Final tasks as known; the others as they stand now, read again.
                try await read()
                return ids.map { known[$0]! }
            }
            pause = announced ? poll.first : min(pause * 2, poll.cap)
            await waiter.signal.wait(timeout: min(pause, left))
            // A wake with nothing newly announced was the pause running out: read the store then.
            // (And at least every `poll.cap` however many finishes keep being announced, so that a
            // task another process finished is not left unseen.)
            polling = waiter.mustRead.exchange(false, ordering: .acquiring) || waiter.finished.withLock { $0.isEmpty }
                || ContinuousClock.now - lastPoll >= poll.cap
        }
    }
}
