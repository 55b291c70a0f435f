import CSQLite
import Foundation
import SluiceCore
@testable import SluiceSQLite
import SluiceStore
import SluiceTestSupport
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(4))) struct SQLiteStoreTests {
    /// Enqueues `requests` so that they share one transaction, and answers each one's result in
    /// order. The group is forced: `admin` holds the write lock while a first write (committed
    /// alone) blocks on it, so these queue up behind it and are taken together.
    static func enqueueInOneGroup(_ store: SQLiteTaskStore, holding admin: SQLiteConnection,
                                  _ requests: [EnqueueRequest]) async throws -> [Result<EnqueueResult, any Error>] {
        try admin.execute("BEGIN IMMEDIATE")
        let taken = store.writesTaken
        let blocked = Task { try await store.enqueue(EnqueueRequest(kind: "ok")) }
        #expect(await eventually { store.writesTaken == taken + 1 })
        return try await withThrowingTaskGroup(of: (Int, Result<EnqueueResult, any Error>).self) { group in
            for (index, request) in requests.enumerated() {
                group.addTask {
                    do { return (index, .success(try await store.enqueue(request))) } catch { return (index, .failure(error)) }
                }
            }
            #expect(await eventually { store.pendingWrites == requests.count })
            try admin.execute("COMMIT")
            _ = try await blocked.value
            var results = [Result<EnqueueResult, any Error>?](repeating: nil, count: requests.count)
            for try await (index, result) in group { results[index] = result }
            return results.map { $0! }
        }
    }

    @Test func pragmasAreSetForDurabilityAndConcurrency() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let full = try SQLiteTaskStore(SQLiteStoreConfiguration(path: dir.path("full.db")))
        #expect(try await full.pragmas() == ["journal_mode": "wal", "synchronous": "2", "busy_timeout": "10000", "foreign_keys": "1"])
        let normal = try SQLiteTaskStore(SQLiteStoreConfiguration(path: dir.path("normal.db"), synchronous: .normal))
        #expect(try await normal.pragmas()["synchronous"] == "1")
    }

    @Test func sqliteKeepsNoProcessWideHeapCount() async throws {
        // Kept, the count takes one process-wide mutex on every allocation of every connection:
        // several percent of the writer thread in a drain.
        let dir = try TempDir()
        defer { dir.remove() }
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: dir.path("heap.db")))
        _ = try await store.enqueue(EnqueueRequest(kind: "echo", args: ["text": .string(String(repeating: "x", count: 10_000))]))
        #expect(sqlite3_memory_used() == 0)
    }

    @Test func anotherConnectionsWritesAreHeardAndTheStoresOwnAreNot() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var configuration = SQLiteStoreConfiguration(path: dir.path("watch.db"))
        configuration.watchOtherProcesses = true
        let watching = try SQLiteTaskStore(configuration)
        let wakes = Mutex(0)
        watching.events.onForeignWrite { wakes.withLock { $0 += 1 } }
        // What a woken reader sees at once: the write is reported only once its commit is visible
        // (it is heard before: the commit's fsync and the log index's update come after it).
        let reader = try SQLiteConnection(path: dir.path("watch.db"), create: false)
        let seen = Mutex<[Int64]>([])
        watching.events.onForeignWrite {
            let count = (try? reader.scalar("SELECT count(*) FROM tasks")) ?? nil
            seen.withLock { $0.append(count ?? -1) }
        }
        // A store of its own, as another process has: its commits wake the watching store's listeners.
        let other = try SQLiteTaskStore(SQLiteStoreConfiguration(path: dir.path("watch.db")))
        _ = try await other.enqueue(EnqueueRequest(kind: "k"))
        #expect(await eventually { wakes.withLock { $0 } >= 1 && !seen.withLock { $0.isEmpty } })
        #expect(seen.withLock { $0.first } == 1, "the enqueue was visible when it was reported: \(seen.withLock { $0 })")
        #expect(watching.foreignWritesHeard >= 1)
        // The watching store's own commits are heard and not passed on. (Once one has been heard,
        // nothing of the other store's is left unread.)
        var heard = watching.writesHeard
        _ = try await watching.enqueue(EnqueueRequest(kind: "k"))
        #expect(await eventually { watching.writesHeard > heard })
        let foreign = wakes.withLock { $0 }
        for _ in 0..<5 {
            heard = watching.writesHeard
            _ = try await watching.enqueue(EnqueueRequest(kind: "k"))
            #expect(await eventually { watching.writesHeard > heard }, "its own commit is heard")
        }
        #expect(wakes.withLock { $0 } == foreign, "and not passed on as another process's")
    }

    @Test func embeddedMigrationsMatchTheFilesInMigrations() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("migrations").appendingPathComponent("sqlite")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(!files.isEmpty)
        let onDisk = try files.map { Migration(file: $0, sql: try String(contentsOf: folder.appendingPathComponent($0), encoding: .utf8)) }
        #expect(Migration.sqlite == onDisk, "run tools/embed-migrations after editing migrations/")
        #expect(try Migrator(migrations: onDisk).latestVersion == files.count)
    }

    @Test func migrationsWithGapsOrDuplicatesAreRefused() {
        let one = Migration(file: "0001_a.sql", sql: "CREATE TABLE a (x)")
        #expect(throws: SluiceError.self) { try Migrator(migrations: [one, Migration(file: "0003_c.sql", sql: "")]) }
        #expect(throws: SluiceError.self) { try Migrator(migrations: [one, Migration(file: "0001_b.sql", sql: "")]) }
    }

    @Test func migrateFreshThenAgainChangesNothing() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let connection = try SQLiteConnection(path: dir.path("m.db"))
        let migrator = try Migrator()
        let first = try migrator.migrate(connection, now: Date())
        #expect(first.from == 0 && first.to == migrator.latestVersion && first.applied == Migration.sqlite.map(\.name))
        let schema = try schemaText(connection)
        let second = try migrator.migrate(connection, now: Date())
        #expect(second.applied.isEmpty && second.to == migrator.latestVersion)
        #expect(try schemaText(connection) == schema)
        #expect(try connection.scalar("SELECT count(*) FROM sluice_migrations") == Int64(migrator.latestVersion))
    }

    @Test func aFailingMigrationRollsBackAndSaysWhich() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let connection = try SQLiteConnection(path: dir.path("m.db"))
        let broken = try Migrator(migrations: Migration.sqlite + [Migration(file: "\(String(format: "%04d", Migration.sqlite.count + 1))_broken.sql",
                                                                               sql: "CREATE TABLE extra (x); SELECT nonsense FROM nowhere;")])
        let error = #expect(throws: SluiceError.self) { try broken.migrate(connection, now: Date()) }
        #expect(error?.message.contains("_broken") == true)
        #expect(try connection.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'extra'") == 0)
        #expect(try Migrator().currentVersion(connection) == Migration.sqlite.count)
    }

    @Test func newerSchemaIsRefusedUntouched() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("new.db")
        do {
            let connection = try SQLiteConnection(path: path)
            try Migrator().migrate(connection, now: Date())
            try connection.run("INSERT INTO sluice_migrations (version, name, applied_at) VALUES (99, '0099_future', 0)")
            try connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        }
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let error = #expect(throws: SluiceError.self) { try SQLiteTaskStore(SQLiteStoreConfiguration(path: path)) }
        #expect(error?.code == .incompatibleDatabase)
        #expect(error?.message.contains("schema version 99") == true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    @Test(arguments: ["not-sqlite", "foreign-sqlite"])
    func foreignFilesAreRefusedUntouched(kind: String) throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("x.db")
        if kind == "not-sqlite" {
            try Data(String(repeating: "definitely not a database\n", count: 200).utf8).write(to: URL(fileURLWithPath: path))
        } else {
            let other = try SQLiteConnection(path: path)
            try other.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers VALUES (1, 'x')")
        }
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let error = #expect(throws: SluiceError.self) { try SQLiteTaskStore(SQLiteStoreConfiguration(path: path)) }
        #expect(error?.code == .incompatibleDatabase)
        #expect(error?.message.contains("will not modify it") == true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
    }

    @Test func groupCommitAnswersOnlyCommittedEnqueues() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("g.db")
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        // 50 concurrent callers, 40 enqueues each.
        let ids = try await withThrowingTaskGroup(of: [TaskID].self) { group in
            for caller in 0..<50 {
                group.addTask {
                    var mine: [TaskID] = []
                    for n in 0..<40 { mine.append(try await store.enqueue(EnqueueRequest(kind: "k", args: ["c": .int(Int64(caller)), "n": .int(Int64(n))])).task.id) }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(Set(ids).count == 2000)
        // Every acknowledged task is visible through a different connection.
        let other = try SQLiteConnection(path: path)
        #expect(try other.scalar("SELECT count(*) FROM tasks") == 2000)
        // Commits were shared: 50 callers waiting at once must not cost one fsync each.
        let stats = store.writeStatistics
        #expect(stats.operations >= 2000)
        #expect(stats.transactions * 4 < stats.operations, "group commit merged too little: \(stats)")
    }

    @Test func aBatchIsAllOrNothingAtTheStorageLevel() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("b.db")
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        // A trigger makes the third insert fail inside SQLite, after two succeeded.
        let admin = try SQLiteConnection(path: path)
        try admin.execute("CREATE TRIGGER no_poison BEFORE INSERT ON tasks WHEN NEW.kind = 'poison' BEGIN SELECT RAISE(ABORT, 'poison refused'); END")
        let error = await #expect(throws: SluiceError.self) {
            try await store.enqueue(batch: [EnqueueRequest(kind: "ok"), EnqueueRequest(kind: "ok"), EnqueueRequest(kind: "poison")])
        }
        #expect(error?.code == .storage)
        #expect(error?.message.contains("poison refused") == true)
        #expect(try admin.scalar("SELECT count(*) FROM tasks") == 0)
        // A failing operation inside a group commit rolls back to its savepoint; its neighbours in the
        // same transaction commit.
        let before = store.writeStatistics
        let grouped = try await Self.enqueueInOneGroup(store, holding: admin, [EnqueueRequest(kind: "ok"), EnqueueRequest(kind: "poison")])
        let stored = try grouped[0].get()
        #expect((try? grouped[1].get()) == nil)
        let after = store.writeStatistics
        #expect(after.transactions - before.transactions == 2 && after.operations - before.operations == 3, "the two shared one transaction: \(before) → \(after)")
        #expect(try admin.scalar("SELECT count(*) FROM tasks WHERE id = '\(stored.task.id)'") == 1)
        #expect(try admin.scalar("SELECT count(*) FROM tasks") == 2)
    }

    /// A release whose write fails says so: the worker handing tasks back at shutdown must not
    /// believe they went back to their queue (they would wait out their leases, and a task of one
    /// attempt would then fail without having run). A lease already lost is still no error.
    @Test func aReleaseWhoseWriteFailsThrowsAndALostLeaseDoesNot() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("r.db")
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        _ = try await store.enqueue(batch: [EnqueueRequest(kind: "k"), EnqueueRequest(kind: "k")])
        let claimed = try await store.claim(queues: ["default"], limit: 2, owner: "w", leaseDuration: .seconds(30))
        try #require(claimed.count == 2)
        _ = try await store.complete(claimed[1].lease!, result: nil)
        let admin = try SQLiteConnection(path: path)
        try admin.execute("CREATE TRIGGER no_release BEFORE UPDATE ON tasks WHEN NEW.state = 'queued' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
        let error = await #expect(throws: SluiceError.self) { try await store.release([claimed[0].lease!]) }
        #expect(error?.code == .storage && error?.message.contains("disk on fire") == true, "\(String(describing: error))")
        #expect(try await store.require(claimed[0].id).state == .running)
        try admin.execute("DROP TRIGGER no_release")
        // The finished task's lease is lost: nothing to hand back, and no error for it.
        try await store.release([claimed[0].lease!, claimed[1].lease!])
        #expect(try await store.require(claimed[0].id).state == .queued)
        #expect(try await store.require(claimed[1].id).state == .succeeded)
    }

    /// An operation whose error makes SQLite roll the whole transaction back (a full disk does;
    /// here a trigger's RAISE(ROLLBACK)) answers every caller of its group with that error, alone
    /// or grouped: before, they learned "no transaction is active" or "no such savepoint", and the
    /// advice of the real error (free some space) was lost.
    @Test func anErrorThatEndsTheTransactionReachesEveryCallerOfItsGroup() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("g.db")
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        let admin = try SQLiteConnection(path: path)
        try admin.execute("CREATE TRIGGER full BEFORE INSERT ON tasks WHEN NEW.kind = 'poison' BEGIN SELECT RAISE(ROLLBACK, 'disk on fire'); END")
        let alone = await #expect(throws: SluiceError.self) { try await store.enqueue(EnqueueRequest(kind: "poison")) }
        #expect(alone?.message.contains("disk on fire") == true, "\(String(describing: alone))")
        // Grouped.
        let grouped = try await Self.enqueueInOneGroup(store, holding: admin, [EnqueueRequest(kind: "ok"), EnqueueRequest(kind: "poison")])
        var messages: [String] = []
        for result in grouped { if case .failure(let error as SluiceError) = result { messages.append(error.message) } }
        #expect(messages.count == 2 && messages.allSatisfy { $0.contains("disk on fire") }, "\(messages)")
        #expect(try admin.scalar("SELECT count(*) FROM tasks") == 1, "only the first, committed alone")
        _ = try await store.enqueue(EnqueueRequest(kind: "ok"))
        #expect(try admin.scalar("SELECT count(*) FROM tasks") == 2, "the writer goes on")
    }

    @Test func aCommitThatFailsAnswersEveryOperationOfItsGroupWithAnError() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("c.db")
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        // A deferred foreign key makes COMMIT itself fail when a 'doom' task is in the transaction.
        let admin = try SQLiteConnection(path: path)
        try admin.execute("""
            CREATE TABLE doom_parent (id INTEGER PRIMARY KEY);
            CREATE TABLE doom_child (parent INTEGER REFERENCES doom_parent (id) DEFERRABLE INITIALLY DEFERRED);
            CREATE TRIGGER doom AFTER INSERT ON tasks WHEN NEW.kind = 'doom' BEGIN INSERT INTO doom_child VALUES (42); END;
            """)
        let grouped = try await Self.enqueueInOneGroup(store, holding: admin, ["ok", "doom", "ok"].map { EnqueueRequest(kind: $0) })
        let answers = grouped.map { (try? $0.get()) != nil }
        // The commit failed: nobody in its group may be told their task was stored.
        #expect(answers == [false, false, false])
        #expect(try admin.scalar("SELECT count(*) FROM tasks") == 1)
        // The store goes on: the next write commits.
        _ = try await store.enqueue(EnqueueRequest(kind: "ok"))
        #expect(try admin.scalar("SELECT count(*) FROM tasks") == 2)
    }

    @Test func tasksSurviveReopening() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("r.db")
        var ids: [TaskID] = []
        do {
            let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
            ids = try await store.enqueue(batch: (0..<10).map { EnqueueRequest(kind: "k", args: ["i": .int(Int64($0))]) }).map(\.task.id)
        }
        let reopened = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        let page = try await reopened.list(TaskFilter(), limit: 100, after: nil)
        #expect(page.tasks.map(\.id) == ids.reversed())
        #expect(page.tasks.last?.args == ["i": 0])
    }

    private func schemaText(_ connection: SQLiteConnection) throws -> [String] {
        var rows: [String] = []
        try connection.query("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name") { rows.append($0.text(0)) }
        return rows
    }

    /// An idle pool's look for work costs the same whatever is due in other queues: it does not
    /// walk another queue's due tasks one by one at every poll (5,000 here; a nightly fan-out can
    /// be 200,000). It counts SQLite's virtual-machine steps, not time.
    @Test func anIdleLookForWorkDoesNotWalkAnotherQueuesDueTasks() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("idle.db")
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        let later = Date().addingTimeInterval(3600)
        _ = try await store.enqueue(batch: (0..<5000).map { _ in EnqueueRequest(kind: "k", queue: "fanout", runAt: later) })
        let connection = try SQLiteConnection(path: path)
        var statement: OpaquePointer?
        try #require(sqlite3_prepare_v2(connection.handle, SQLiteTaskStore.SQL.anyReady, -1, &statement, nil) == SQLITE_OK)
        defer { sqlite3_finalize(statement) }
        sqlite3_bind_text(statement, 1, "idle", -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
        sqlite3_bind_int64(statement, 2, Int64(later.addingTimeInterval(60).timeIntervalSince1970 * 1_000_000))
        #expect(sqlite3_step(statement) == SQLITE_ROW, "due tasks anywhere are work for a claim, which stages them")
        let steps = sqlite3_stmt_status(statement, SQLITE_STMTSTATUS_VM_STEP, 0)
        #expect(steps < 500, "\(steps) steps for one idle look")
        // Nothing due and nothing ready in the queue: no work, at the same cost.
        sqlite3_reset(statement)
        sqlite3_bind_int64(statement, 2, Int64(Date().timeIntervalSince1970 * 1_000_000))
        #expect(sqlite3_step(statement) == SQLITE_DONE)
        #expect(sqlite3_stmt_status(statement, SQLITE_STMTSTATUS_VM_STEP, 0) < 1000)
    }

    @Test func noHotStatementScansTheTasksTable() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: dir.path("plans.db")))
        // Enough rows in every state for the planner's statistics to mean something.
        let clock = SystemClock()
        _ = try await store.enqueue(batch: (0..<3000).map { i in
            EnqueueRequest(kind: "k", queue: ["a", "b", "c"][i % 3], runAt: i % 4 == 0 ? clock.now().addingTimeInterval(3600) : nil)
        })
        // Few tasks left running, as in a drain: statistics that say so once tempted the batched
        // completion into walking `tasks_leases` for every task it completes.
        for _ in 0..<4 {
            let claimed = try await store.claim(queues: ["a", "b"], limit: 300, owner: "w", leaseDuration: .seconds(60))
            _ = try await store.record(claimed.dropFirst(3).map { .complete($0.lease!, nil) }, thenClaim: [])
        }
        try await store.optimize()
        for (name, sql) in SQLiteTaskStore.hotStatements {
            let plan = try await store.queryPlan(sql, [])
            let scans = plan.filter { $0.hasPrefix("SCAN tasks") }
            #expect(scans.isEmpty, "\(name) scans the tasks table: \(plan)")
        }
        // The slot pruner walks the records by age (migration 0007), not the whole table.
        let slotPlan = try await store.queryPlan(ScheduleSQL.pruneSlots, [])
        #expect(slotPlan.contains { $0.contains("schedule_slots_age") } && !slotPlan.contains { $0.hasPrefix("SCAN schedule_slots") }, "\(slotPlan)")
    }

    /// SQLite turns `x IN (a, b, c)` with more than two constants into a temporary table, and in a
    /// CHECK or the predicate of a partial index it builds that table again for every row written:
    /// three times per task for claims and completions before migration 0006. No statement that
    /// writes tasks may do so.
    @Test func noHotStatementBuildsATableOfConstants() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("programs.db")
        _ = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        let connection = try SQLiteConnection(path: path)
        for (name, sql) in SQLiteTaskStore.hotStatements + [("insert", SQLiteTaskStore.SQL.insert)] {
            var program: [(opcode: String, p1: Int64)] = []
            try connection.query("EXPLAIN " + sql) { row in program.append((row.text(1), row.int(2))) }
            let constants: Set<String> = ["String8", "Integer", "Int64", "Real", "Null"]
            let lists = program.indices.filter { at in
                program[at].opcode == "OpenEphemeral" && at + 3 < program.count && constants.contains(program[at + 1].opcode)
                    && program[(at + 1)...(at + 3)].contains { $0.opcode == "IdxInsert" && $0.p1 == program[at].p1 }
            }
            #expect(lists.isEmpty, "\(name) fills a temporary table with constants at \(lists)")
        }
    }

    /// Version 6 rebuilds the tasks table: a file of version 5 keeps every task, column for column,
    /// its counts, and works on after the upgrade.
    @Test func upgradingAFileOfVersion5KeepsEveryTask() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        // Tasks in every state, written by the current store, then copied into a file of version 5.
        let current = dir.path("current.db")
        let clock = SystemClock()
        do {
            let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: current))
            _ = try await store.enqueue(batch: (0..<40).map { i in
                EnqueueRequest(kind: "k", queue: ["a", "b"][i % 2], args: ["i": .int(Int64(i))], priority: i % 3,
                               runAt: i % 5 == 0 ? clock.now().addingTimeInterval(3600) : nil, idempotencyKey: i % 7 == 0 ? "key-\(i)" : nil)
            })
            let claimed = try await store.claim(queues: ["a", "b"], limit: 20, owner: "w", leaseDuration: .seconds(60))
            _ = try await store.record(claimed.prefix(8).map { .complete($0.lease!, ["n": 1]) }, thenClaim: [])
            for (range, disposition) in [(8..<10, TaskFailure.Disposition.discard), (10..<12, .retryAfter(.seconds(3600))), (12..<14, .cancel)] {
                for task in claimed[range] { _ = try await store.fail(task.lease!, failure: TaskFailure("no", disposition: disposition)) }
            }
        }
        func rows(_ connection: SQLiteConnection, _ sql: String) throws -> [String] {
            var rows: [String] = []
            try connection.query(sql) { row in
                rows.append((0..<sqlite3_column_count(row.statement)).map { row.isNull($0) ? "NULL" : row.text($0) }.joined(separator: "|"))
            }
            return rows
        }
        let old = dir.path("v5.db")
        let connection = try SQLiteConnection(path: old)
        try Migrator(migrations: Array(Migration.sqlite.prefix(5))).migrate(connection, now: Date())
        try connection.execute("""
            ATTACH '\(current)' AS current;
            INSERT INTO tasks SELECT * FROM current.tasks;
            DELETE FROM queue_counts; INSERT INTO queue_counts SELECT * FROM current.queue_counts;
            DETACH current;
            """)
        let tasks = try rows(connection, "SELECT * FROM tasks ORDER BY id")
        let counts = try rows(connection, "SELECT * FROM queue_counts ORDER BY queue, state")
        #expect(Set(tasks.map { $0.split(separator: "|")[5] }) == ["scheduled", "queued", "running", "retrying", "succeeded", "failed", "cancelled"])
        let report = try Migrator().migrate(connection, now: Date())
        #expect(report.from == 5 && report.applied == ["0006_state_checks", "0007_slot_age"])
        #expect(try rows(connection, "SELECT * FROM tasks ORDER BY id") == tasks)
        #expect(try rows(connection, "SELECT * FROM queue_counts ORDER BY queue, state") == counts)
        #expect(try rows(connection, "PRAGMA integrity_check") == ["ok"])
        #expect(try rows(connection, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' AND sql IS NOT NULL ORDER BY name")
                == ["tasks_due", "tasks_finished", "tasks_idempotency", "tasks_leases", "tasks_ready"])
        connection.close()
        // And the store works on it: the pruner still walks `tasks_finished`; claims, completes and prunes.
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: old))
        let prunePlan = try await store.queryPlan(SQLiteTaskStore.SQL.prune, [])
        #expect(prunePlan.contains { $0.contains("tasks_finished") } && !prunePlan.contains { $0.hasPrefix("SCAN tasks") }, "\(prunePlan)")
        let next = try await store.claim(queues: ["a", "b"], limit: 100, owner: "w2", leaseDuration: .seconds(60))
        #expect(next.count == 12)
        _ = try await store.record(next.map { .complete($0.lease!, nil) }, thenClaim: [])
        #expect(try await store.prune(finishedBefore: .zero) == 8 + 2 + 2 + 12)
    }

    @Test func aMigrationEditedAfterItWasAppliedIsRefused() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("edited.db")
        _ = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        var edited = Migration.sqlite
        edited[1].sql += "\n-- an edit after release"
        let connection = try SQLiteConnection(path: path)
        let error = #expect(throws: SluiceError.self) { try Migrator(migrations: edited).check(connection) }
        #expect(error?.code == .incompatibleDatabase)
        #expect(error?.message.contains("0002_workers") == true)
        // The untouched list still opens it.
        #expect(try Migrator().check(connection) == Migration.sqlite.count)
    }
}
