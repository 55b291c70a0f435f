import PostgresNIO
import SluiceCore
import SluiceStore

/// The `queue_counts` table, written at the end of the transaction that moved the tasks, in one
/// statement, in the order `changes` gives.
extension CountDeltas {
    /// Writes the changes inside the caller's transaction.
    func flush(_ connection: PostgresConnection, on store: PostgresTaskStore) async throws {
        let changes = self.changes
        guard !changes.isEmpty else { return }
        _ = try await store.rows(connection, PostgresTaskStore.SQL.AddCounts.self,
                                 Binds(changes.map(\.queue), changes.map(\.state.rawValue), changes.map { Int64($0.delta) }))
    }
}
