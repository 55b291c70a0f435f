import SluiceCore

/// The `queue_counts` table: tasks per queue and state, changed by the store in the same
/// transaction as the tasks. Each write adds what it moved, once per queue and state, so a batch
/// of a thousand claims costs two small upserts, not a thousand (triggers would cost one per row).
enum Counts {
    struct Key: Hashable {
        var queue: String
        var state: TaskState
    }

    /// Adds `delta` to the count of `state` in `queue`.
    static func add(_ connection: SQLiteConnection, queue: String, state: TaskState, _ delta: Int) throws {
        guard delta != 0 else { return }
        try connection.run(SQLiteTaskStore.SQL.addCount, [.text(queue), .text(state.rawValue), .integer(Int64(delta))])
    }
}
