import CSQLite
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

/// Refreshing the planner's statistics costs the same on a file of any size.
@Suite(.timeLimit(.minutes(2))) struct SQLiteStatisticsTests {
    /// SQLite re-analyzes a table whenever one of its indexes has no statistics, and the idempotency
    /// keys' index is empty in most files, so every leader's `optimize()` analyzed `tasks`: on the
    /// writer, reading every row (half a second at 2,000,000 tasks, writes held up meanwhile). It
    /// now samples: the pages it reads stay a small part of the file.
    @Test func refreshingStatisticsReadsASampleNotTheWholeTable() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("grown.db")
        do {
            let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
            let padding = JSONValue.string(String(repeating: "x", count: 400))
            for _ in 0..<20 { _ = try await store.enqueue(batch: (0..<1000).map { _ in EnqueueRequest(kind: "echo", args: ["pad": padding]) }) }
        }
        // Reopened, so that the writer's page cache is cold and every page it reads is counted.
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        let pages = try await store.write { Int(try $0.scalar("PRAGMA page_count") ?? 0) }
        #expect(pages > 2_000, "a file of \(pages) pages")
        // A claim uses `tasks` on the writer, which is what makes `optimize` consider it.
        #expect(try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: .seconds(30)).count == 1)
        func pagesRead() async throws -> Int {
            try await store.write { connection in
                var current: Int32 = 0, highest: Int32 = 0
                _ = sqlite3_db_status(connection.handle, SQLITE_DBSTATUS_CACHE_MISS, &current, &highest, 0)
                return Int(current)
            }
        }
        func statistics() async throws -> [String] {
            try await store.write { connection in
                guard try connection.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'") == 1 else { return [] }
                var rows: [String] = []
                try connection.query("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'tasks' ORDER BY idx") { rows.append("\($0.text(0)) \($0.text(1))") }
                return rows
            }
        }
        let statisticsBefore = try await statistics()
        let before = try await pagesRead()
        try await store.optimize()
        let read = try await pagesRead() - before
        let statisticsAfter = try await statistics()
        #expect(statisticsAfter != statisticsBefore && !statisticsAfter.isEmpty, "the table was analyzed: \(statisticsAfter)")
        #expect(read < pages / 4, "read \(read) of \(pages) pages")
    }
}

/// A write copies each page it changes into a statement journal first, so that it can be undone
/// alone. Past 64 KiB SQLite moved that journal to a temporary file, so a drain's waves wrote their
/// pages twice, once to that file and once to the log. The writer keeps it in memory (after migrating).
@Suite(.timeLimit(.minutes(1))) struct SQLiteStatementJournalTests {
    /// The temporary files this process has open (SQLite names them `etilqs_…` and unlinks them
    /// at once, so only their descriptors show them).
    private static func temporaryFiles() -> Set<String> {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return Set(fds.compactMap { fd in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")).flatMap { $0.contains("etilqs_") ? "\(fd) \($0)" : nil }
        })
    }

    @Test func aLargeWriteKeepsItsStatementJournalInMemory() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: dir.path("j.db")))
        let padding = JSONValue.string(String(repeating: "x", count: 400))
        _ = try await store.enqueue(batch: (0..<2000).map { _ in EnqueueRequest(kind: "echo", args: ["pad": padding]) })
        let (changed, opened) = try await store.write { connection in
            let before = Self.temporaryFiles()
            // Every row and a page of the index over them: about a megabyte of pages to journal,
            // inside the write's transaction, where a statement journal is needed.
            let changed = try connection.run("UPDATE tasks SET priority = priority + 1")
            return (changed, Self.temporaryFiles().subtracting(before))
        }
        #expect(changed == 2000)
        #expect(opened.isEmpty, "the write spilled to temporary files: \(opened.sorted())")
    }
}
