import SluiceCore
import SluiceStore

/// The `queue_counts` table: tasks per queue and state, changed by the store in the same
/// transaction as the tasks.
extension CountDeltas {
    /// Writes the changes inside the caller's write transaction.
    func flush(_ connection: SQLiteConnection) throws {
        for change in changes {
            try connection.run(SQLiteTaskStore.SQL.addCount, [.text(change.queue), .text(change.state.rawValue), .integer(Int64(change.delta))])
        }
    }
}
