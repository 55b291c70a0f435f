import Logging
import PostgresNIO
import SluiceCore

/// Changes to the `queue_counts` table gathered during one transaction and written at its end in
/// one statement, in (queue, state) order: two transactions moving the same counters then lock
/// them in the same order and cannot deadlock, and a batch of a thousand claims costs one upsert.
struct CounterDeltas {
    struct Key: Hashable, Comparable {
        var queue: String
        var state: TaskState
        static func < (a: Key, b: Key) -> Bool { (a.queue, a.state.rawValue) < (b.queue, b.state.rawValue) }
    }

    private var deltas: [Key: Int] = [:]

    /// Adds `n` to the count of `state` in `queue`.
    mutating func add(_ queue: String, _ state: TaskState, _ n: Int) {
        guard n != 0 else { return }
        deltas[Key(queue: queue, state: state), default: 0] += n
    }

    /// Moves `n` tasks of `queue` from one state to another.
    mutating func move(_ queue: String, from: TaskState, to: TaskState, _ n: Int = 1) {
        guard from != to else { return }
        add(queue, from, -n)
        add(queue, to, n)
    }

    /// Writes the changes inside the caller's transaction.
    func flush(_ connection: PostgresConnection, logger: Logger) async throws {
        let changes = deltas.filter { $0.value != 0 }.sorted { $0.key < $1.key }
        guard !changes.isEmpty else { return }
        let binds = try Binds(changes.map(\.key.queue), changes.map(\.key.state.rawValue), changes.map { Int64($0.value) })
        try await connection.query(PostgresQuery(unsafeSQL: PostgresTaskStore.SQL.addCounts, binds: binds.bindings), logger: logger)
    }
}
