import PostgresNIO
import SluiceCore
import SluiceStore

/// The `queue_counts` table, written at the end of the transaction that moved the tasks, in one
/// statement, in the order `changes` gives.
extension CountDeltas {
    /// Writes the changes inside the caller's transaction. Queues that gained ready tasks without
    /// an enqueue (staged when due, released, rescued, retried by hand) are announced to the other
    /// processes in the same transaction, as enqueues are: their pools would otherwise find them
    /// at their next backstop poll, up to a second later. A claim's own transaction, which takes
    /// more ready tasks than it stages, announces nothing.
    func flush(_ connection: PostgresConnection, on store: PostgresTaskStore) async throws {
        let changes = self.changes
        guard !changes.isEmpty else { return }
        _ = try await store.rows(connection, PostgresTaskStore.SQL.AddCounts.self,
                                 Binds(changes.map(\.queue), changes.map(\.state.rawValue), changes.map { Int64($0.delta) }))
        let ready = Set(changes.filter { $0.state == .queued && $0.delta > 0 }.map(\.queue))
        if !ready.isEmpty { try await store.announce(readyIn: ready, on: connection) }
    }
}
