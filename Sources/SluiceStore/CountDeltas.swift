import SluiceCore

/// Changes to the per-queue, per-state task counts that one write makes, summed so that a store
/// writes each (queue, state) counter once per transaction, however many tasks moved: a batch of
/// a thousand claims costs two small upserts, not a thousand (triggers would cost one per row).
public struct CountDeltas: Sendable {
    private struct Key: Hashable {
        var queue: String
        var state: TaskState
    }

    private var deltas: [Key: Int] = [:]

    public init() {}

    /// Adds `n` to the count of `state` in `queue`.
    public mutating func add(_ queue: String, _ state: TaskState, _ n: Int) {
        guard n != 0 else { return }
        deltas[Key(queue: queue, state: state), default: 0] += n
    }

    /// Moves `n` tasks of `queue` from one state to another.
    public mutating func move(_ queue: String, from: TaskState, to: TaskState, _ n: Int = 1) {
        guard from != to else { return }
        add(queue, from, -n)
        add(queue, to, n)
    }

    /// The changes that are not zero, in (queue, state) order: writers that touch the same counters
    /// lock them in the same order and cannot deadlock.
    public var changes: [(queue: String, state: TaskState, delta: Int)] {
        deltas.filter { $0.value != 0 }
            .sorted { ($0.key.queue, $0.key.state.rawValue) < ($1.key.queue, $1.key.state.rawValue) }
            .map { ($0.key.queue, $0.key.state, $0.value) }
    }
}
