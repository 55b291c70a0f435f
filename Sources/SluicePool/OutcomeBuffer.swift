import Synchronization

/// Where pool threads leave outcomes for the completer. Everything that arrived while the completer
/// was writing is taken in one go, so outcomes share commits the busier the pools are.
final class OutcomeBuffer: Sendable {
    private struct State {
        var items: [Outcome] = []
        var closed = false
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
                return (batch, state.closed)
            }
            if !batch.isEmpty { return batch }
            if closed { return nil }
            await arrived.wait(timeout: .seconds(1))
        }
    }

    /// Outcomes not yet taken.
    var count: Int { state.withLock { $0.items.count } }
}
