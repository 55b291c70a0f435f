import SluiceCore
import Synchronization

/// Where pool threads leave outcomes for the completer. Everything that arrived while the completer
/// was writing is taken in one go, so outcomes share commits the busier the pools are.
///
/// An outcome's task keeps its lease until the outcome is written: the heartbeater renews the
/// leases of outcomes waiting here or being written (`leases(from:)`), so that a slow write never
/// lets a finished task's lease expire and the task run again.
final class OutcomeBuffer: Sendable {
    private struct State {
        var items: [Outcome] = []
        var closed = false
        /// Taken by the completer and not yet settled, by task.
        var writing: [TaskID: Outcome] = [:]
    }
    private let state = Mutex(State())
    private let arrived = WakeSignal()

    /// Adds one outcome (from a pool thread; never blocks on I/O).
    func add(_ outcome: Outcome) {
        state.withLock { $0.items.append(outcome) }
        arrived.signal()
    }

    /// No more outcomes will come; `next` returns `nil` once the buffer is empty.
    func close() {
        state.withLock { $0.closed = true }
        arrived.signal()
    }

    /// Every outcome waiting now, at most `limit`, waiting for one if there is none; `nil` when
    /// closed and empty.
    func next(limit: Int) async -> [Outcome]? {
        while true {
            let (batch, closed): ([Outcome], Bool) = state.withLock { state in
                let batch = Array(state.items.prefix(limit))
                state.items.removeFirst(batch.count)
                for outcome in batch { state.writing[outcome.result.lease.taskID] = outcome }
                return (batch, state.closed)
            }
            if !batch.isEmpty { return batch }
            if closed { return nil }
            await arrived.wait(timeout: .seconds(1))
        }
    }

    /// The completer is done with `batch`: written, or given up on.
    func settle(_ batch: [Outcome]) {
        state.withLock { state in
            for outcome in batch where state.writing[outcome.result.lease.taskID]?.result.lease == outcome.result.lease {
                state.writing[outcome.result.lease.taskID] = nil
            }
        }
    }

    /// The leases of `source`'s outcomes waiting or being written: still this process's to renew.
    func leases(from source: TaskSource) -> [TaskLease] {
        state.withLock { state in
            (state.items + state.writing.values).filter { $0.source == source }.map(\.result.lease)
        }
    }

    /// Outcomes not yet taken.
    var count: Int { state.withLock { $0.items.count } }
}
