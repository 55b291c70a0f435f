import SluiceCore
import Synchronization

/// Where pool threads leave outcomes for the completer. Everything that arrived while the completer
/// was writing is taken in one go, so outcomes share commits the busier the pools are.
///
/// An outcome's task keeps its lease until the outcome is written: the heartbeater renews the
/// leases of outcomes waiting here or being written (`leases(from:)`), so that a slow write never
/// lets a finished task's lease expire and the task run again.
///
/// Every pool thread adds here as its task ends, so the lock is held for as little as possible: an
/// add signals the completer only when the buffer was empty (a signal already sent covers the
/// rest, since the completer takes everything at once), and taken batches are kept whole, by
/// number, not indexed task by task.
final class OutcomeBuffer: Sendable {
    /// Outcomes the completer took together; `settle` it when they are written or given up on.
    struct Batch: Sendable {
        let number: Int
        let outcomes: [Outcome]
    }
    private struct State {
        var items: [Outcome] = []
        var closed = false
        /// Taken by the completer and not yet settled, by batch number.
        var writing: [Int: [Outcome]] = [:]
        var taken = 0
    }
    private let state = Mutex(State())
    private let arrived = WakeSignal()
    /// How long `next` waits for a signal before it looks again anyway.
    private let idleWait: Duration

    init(idleWait: Duration = .seconds(1)) {
        self.idleWait = idleWait
    }

    /// Adds one outcome (from a pool thread; never blocks on I/O).
    func add(_ outcome: Outcome) {
        let first = state.withLock { state in
            state.items.append(outcome)
            return state.items.count == 1
        }
        if first { arrived.signal() }
    }

    /// No more outcomes will come; `next` returns `nil` once the buffer is empty.
    func close() {
        state.withLock { $0.closed = true }
        arrived.signal()
    }

    /// Every outcome waiting now, at most `limit`, waiting for one if there is none; `nil` when
    /// closed and empty.
    func next(limit: Int) async -> Batch? {
        while true {
            let (batch, closed): (Batch?, Bool) = state.withLock { state in
                guard !state.items.isEmpty else { return (nil, state.closed) }
                let outcomes: [Outcome]
                if state.items.count <= limit {
                    outcomes = state.items
                    state.items = []
                } else {
                    outcomes = Array(state.items.prefix(limit))
                    state.items.removeFirst(limit)
                }
                state.taken += 1
                state.writing[state.taken] = outcomes
                return (Batch(number: state.taken, outcomes: outcomes), state.closed)
            }
            if let batch { return batch }
            if closed { return nil }
            // A stale signal (its outcome was taken with an earlier one) only costs a look.
            await arrived.wait(timeout: idleWait)
        }
    }

    /// The completer is done with `batch`: written, or given up on.
    func settle(_ batch: Batch) {
        _ = state.withLock { $0.writing.removeValue(forKey: batch.number) }
    }

    /// The leases of `source`'s outcomes waiting or being written: still this process's to renew.
    func leases(from source: TaskSource) -> [TaskLease] {
        state.withLock { state in
            (state.items + state.writing.values.joined()).filter { $0.source == source }.map(\.result.lease)
        }
    }

    /// Outcomes not yet taken.
    var count: Int { state.withLock { $0.items.count } }
}
