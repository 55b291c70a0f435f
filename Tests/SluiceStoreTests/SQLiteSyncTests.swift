import Foundation
import SluiceCore
@testable import SluiceSQLite
import SluiceStore
import SluiceTestSupport
import Testing

/// With `synchronous = full`, a write transaction skips its fsync only when nothing in it asked for
/// durability (claims, heartbeats); a durable write in the same group commit syncs them all.
@Suite(.timeLimit(.minutes(1))) struct SQLiteSyncTests {
    private func synchronous(_ connection: SQLiteConnection) throws -> Int64 {
        var value: Int64 = -1
        try connection.query("PRAGMA synchronous") { row in value = row.int(0) }
        return value
    }

    @Test func onlyBatchesWithoutDurableWritesSkipTheSync() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("s.db")
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        #expect(try await store.write(durable: false) { try synchronous($0) } == 1, "NORMAL: no fsync at commit")
        #expect(try await store.write { try synchronous($0) } == 2, "FULL again for a durable write")
        // Forced into one group (another connection holds the write lock while the first write
        // waits): a durable write among them syncs the whole transaction.
        let admin = try SQLiteConnection(path: path)
        try admin.execute("BEGIN IMMEDIATE")
        let taken = store.writesTaken
        async let blocked = store.write(durable: false) { try synchronous($0) }
        #expect(await eventually { store.writesTaken == taken + 1 })
        async let relaxed = store.write(durable: false) { try synchronous($0) }
        async let durable = store.write { try synchronous($0) }
        #expect(await eventually { store.pendingWrites == 2 })
        try admin.execute("COMMIT")
        #expect(try await blocked == 1)
        #expect(try await [relaxed, durable] == [2, 2])
        // A store opened with `normal` never syncs at commit, durable or not.
        let normal = try SQLiteTaskStore(SQLiteStoreConfiguration(path: dir.path("n.db"), synchronous: .normal))
        #expect(try await normal.write { try synchronous($0) } == 1)
        // A claim (written without the sync) leaves the setting FULL for the next durable write.
        _ = try await store.enqueue(EnqueueRequest(kind: "echo"))
        #expect(try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: .seconds(30)).count == 1)
        #expect(try await store.write { try synchronous($0) } == 2)
    }
}
