import Foundation
import SluiceClient
import SluiceCore
import SluiceSQLite
import SluiceStore
import SluiceTestSupport
import Synchronization
import Testing

/// Faults with real processes: the server killed mid-enqueue, the database locked by another process.
@Suite(.serialized) struct FaultTests {
    @Test func everyAcknowledgedEnqueueSurvivesAKillDuringEnqueue() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let db = dir.path("enqueue-crash.db")
        let server = try LiveServer(db: db, ["--no-pool"])
        let acknowledged = Acknowledged()
        let client = server.client
        // 50 clients enqueue as fast as they can; the server is killed under them.
        await withTaskGroup(of: Void.self) { group in
            for n in 0..<50 {
                group.addTask {
                    for i in 0..<400 {
                        guard let task = try? await client.enqueue(["kind": "echo", "args": ["client": .int(Int64(n)), "i": .int(Int64(i))]]),
                              let id = task["id"]?.stringValue else { return }
                        acknowledged.ids.withLock { $0.append(id) }
                    }
                }
            }
            group.addTask {
                _ = await eventually { acknowledged.ids.withLock { $0.count } >= 500 }
                server.process.kill9()
            }
        }
        let acked = acknowledged.ids.withLock { $0 }
        #expect(acked.count >= 500 && acked.count < 20_000, "the kill landed mid-stream (\(acked.count) acknowledged)")
        // After the crash, with no server running, the file holds every acknowledged task.
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: db))
        var missing: [String] = []
        for id in acked where try await store.task(TaskID(id)!) == nil { missing.append(id) }
        #expect(missing.isEmpty, "\(missing.count) acknowledged enqueues lost")
    }

    @Test func aLockHeldByAnotherProcessIsWaitedOut() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let db = dir.path("locked.db")
        let server = try LiveServer(db: db, ["--concurrency", "4"])
        let first = try await server.client.enqueue(["kind": "echo"], wait: 10)
        #expect(first["state"] == "succeeded")
        // A third process (sqlite3's own CLI would do; here, a raw connection on another thread)
        // holds the write lock for 2 s.
        let locker = try SQLiteConnection(path: db)
        try locker.execute("BEGIN IMMEDIATE; INSERT INTO pool_settings (pool, worker, updated_at) VALUES ('lock', 'x', 0)")
        let released = Thread {
            Thread.sleep(forTimeInterval: 2)
            try? locker.execute("ROLLBACK")
        }
        released.start()
        let started = ContinuousClock.now
        let during = try await server.client.enqueue(["kind": "echo", "args": ["during": true]], wait: 20)
        #expect(ContinuousClock.now - started >= .seconds(1.5), "the enqueue waited for the lock")
        #expect(during["state"] == "succeeded", "the enqueue succeeded once the lock was released and the pool ran it")
        server.stop()
    }
}

/// Ids the server acknowledged, collected from many client tasks.
final class Acknowledged: Sendable {
    let ids = Mutex<[String]>([])
}
