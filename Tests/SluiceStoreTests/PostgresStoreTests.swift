import Foundation
import Logging
import PostgresNIO
import SluiceCore
@testable import SluicePostgres
import SluiceStore
import SluiceTestSupport
import Testing

/// What only the PostgreSQL store has: its URL, its migrations, its connection errors, and claims
/// from many connections at once. The conformance suite covers the rest.
@Suite(.timeLimit(.minutes(4))) struct PostgresStoreTests {
    /// Shows in the output, as cancelled with the reason, when the conformance suite left PostgreSQL out.
    @Test func conformanceSuiteOnPostgreSQL() throws {
        _ = try TestPostgres.configuration()
        #expect(StoreKind.allCases.contains(.postgres))
    }

    @Test func embeddedMigrationsMatchTheFilesInMigrations() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("migrations").appendingPathComponent("postgres")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(!files.isEmpty)
        let onDisk = try files.map { Migration(file: $0, sql: try String(contentsOf: folder.appendingPathComponent($0), encoding: .utf8)) }
        #expect(Migration.postgres == onDisk, "run tools/embed-migrations after editing migrations/")
        #expect(try PostgresMigrator(migrations: onDisk).latestVersion == files.count)
    }

    @Test func migrationsWithGapsOrDuplicatesAreRefused() {
        let one = Migration(file: "0001_a.sql", sql: "CREATE TABLE a (x int)")
        #expect(throws: SluiceError.self) { try PostgresMigrator(migrations: [one, Migration(file: "0003_c.sql", sql: "")]) }
        #expect(throws: SluiceError.self) { try PostgresMigrator(migrations: [one, Migration(file: "0001_b.sql", sql: "")]) }
    }

    @Test func databaseURLs() throws {
        let full = try PostgresStoreConfiguration(url: "postgres://ann:s%40cret@db.example:6543/queue?sslmode=require&search_path=jobs")
        #expect(full.endpoint == .tcp(host: "db.example", port: 6543))
        #expect(full.username == "ann" && full.password == "s@cret" && full.database == "queue")
        #expect(full.tls == .require && full.schema == "jobs")
        let plain = try PostgresStoreConfiguration(url: "postgresql://bob@localhost/app")
        #expect(plain.endpoint == .tcp(host: "localhost", port: 5432) && plain.password == nil && plain.tls == .disable && plain.schema == nil)
        let socket = try PostgresStoreConfiguration(url: "postgres://bob@/app?host=/var/run/postgresql")
        #expect(socket.endpoint == .unixSocket(path: "/var/run/postgresql/.s.PGSQL.5432"))
        let ipv6 = try PostgresStoreConfiguration(url: "postgres://bob@[::1]:5433/app")
        #expect(ipv6.endpoint == .tcp(host: "::1", port: 5433) && ipv6.place == "[::1]:5433")
        for wrong in ["mysql://a@b/c", "postgres://b:5432/c", "postgres://a@b:5432", "postgres://a@b:5432/c?sslmode=maybe", "not a url",
                      "postgres://a@b:5432/c?search_path=jobs,public"] {
            let error = #expect(throws: SluiceError.self, "\(wrong)") { try PostgresStoreConfiguration(url: wrong) }
            #expect(error?.field == "database")
        }
        // The password never appears in the message, even in a URL Foundation cannot read.
        for wrong in ["mysql://a:hunter2@b/c", "postgres://a:hunter2@127.0.0.1:abc/db", "postgres://a:hunter2@b:1:2/c"] {
            let error = #expect(throws: SluiceError.self) { try PostgresStoreConfiguration(url: wrong) }
            #expect(error?.message.contains("hunter2") == false && error?.message.contains("a:***@") == true, "\(error?.message ?? "")")
        }
    }

    @Test func anUnreachableServerIsOneErrorNamingHostAndPort() async throws {
        // A port nobody listens on: bound and closed again.
        let port = try closedPort()
        var configuration = try PostgresStoreConfiguration(url: "postgres://sluice:x@127.0.0.1:\(port)/postgres")
        configuration.connectTimeout = .seconds(3)
        let error = await #expect(throws: SluiceError.self) {
            try await PostgresTaskStore.withStore(configuration) { _ in }
        }
        #expect(error?.message.contains("127.0.0.1:\(port)") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("cannot reach PostgreSQL") == true, "\(error?.message ?? "")")
    }

    @Test func aRefusedLoginSaysSo() async throws {
        var configuration = try TestPostgres.configuration()
        configuration.password = "certainly-not-the-password"
        let error = await #expect(throws: SluiceError.self) {
            try await PostgresTaskStore.withStore(configuration) { _ in }
        }
        #expect(error?.message.contains("refused the login of user \(configuration.username)") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains(configuration.place) == true)
    }

    /// The same on a new database in its default schema, as `sluice serve` and `sluice worker`
    /// started together on a fresh server do. Each once found the other's tables missing from its
    /// stale catalog cache and failed ("relation sluice_migrations already exists").
    @Test func migrateOnceWhenFourProcessesOpenAnEmptyDatabaseAtOnce() async throws {
        let base = try TestPostgres.configuration()
        for round in 0..<3 {
            let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
            try await TestPostgres.execute(base, "CREATE DATABASE \(name)")
            var fresh = base
            fresh.database = String(name)
            let configuration = fresh
            do {
                let reports = try await withThrowingTaskGroup(of: PostgresMigrator.Report?.self) { group in
                    for _ in 0..<4 { group.addTask { try await PostgresTaskStore.withStore(configuration) { $0.migration } } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                // Processes may share the migrations between them, and their reports arrive in any order.
                let applied = reports.compactMap { $0 }.flatMap(\.applied).sorted()
                #expect(applied == Migration.postgres.map(\.name), "round \(round): each migration applied exactly once")
            } catch {
                Issue.record("round \(round): \(error)")
            }
            try await TestPostgres.execute(base, "DROP DATABASE \(name) WITH (FORCE)")
        }
    }

    @Test func migrateOnceEvenWhenFourProcessesOpenAtOnce() async throws {
        try await TestPostgres.withSchema { configuration in
            let reports = try await withThrowingTaskGroup(of: PostgresMigrator.Report?.self) { group in
                for _ in 0..<4 { group.addTask { try await PostgresTaskStore.withStore(configuration) { $0.migration } } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            // Each migration takes the lock on its own, so processes may share the work (one applies
            // 0001-0003, another 0004); the reports arrive in any order.
            let applied = reports.compactMap { $0 }.flatMap(\.applied).sorted()
            #expect(applied == Migration.postgres.map(\.name), "each migration applied exactly once")
            let again = try await PostgresTaskStore.withStore(configuration) { $0.migration }
            #expect(again?.applied == [] && again?.to == Migration.postgres.count)
            // Lock waits are bounded as the store says (heartbeats must not outlast leases).
            let lockTimeout = try await PostgresTaskStore.withStore(configuration) { store in
                try await store.connection { connection in
                    try await connection.query("SHOW lock_timeout", logger: Logger(label: "sluice.test")).collect()[0].decode(String.self)
                }
            }
            #expect(lockTimeout == "10s")
        }
    }

    @Test func aNewerOrEditedSchemaIsRefusedUntouched() async throws {
        try await TestPostgres.withSchema { configuration in
            _ = try await PostgresTaskStore.withStore(configuration) { _ in }
            let qualified = "\(configuration.schema!).sluice_migrations"
            // Edited: the recorded checksum differs from this binary's.
            try await TestPostgres.execute(configuration, "UPDATE \(qualified) SET checksum = 'abc' WHERE version = 1")
            let edited = await #expect(throws: SluiceError.self) { try await PostgresTaskStore.withStore(configuration) { _ in } }
            #expect(edited?.code == .incompatibleDatabase && edited?.message.contains("applied with other text") == true)
            try await TestPostgres.execute(configuration, "UPDATE \(qualified) SET checksum = '\(Migration.postgres[0].checksum)' WHERE version = 1")
            // Newer: a version this binary does not know.
            let next = Migration.postgres.count + 1
            try await TestPostgres.execute(configuration, "INSERT INTO \(qualified) VALUES (\(next), 'future', now(), 'f')")
            let newer = await #expect(throws: SluiceError.self) { try await PostgresTaskStore.withStore(configuration) { _ in } }
            #expect(newer?.code == .incompatibleDatabase && newer?.message.contains("schema version \(next)") == true)
        }
    }

    /// Eight connections claiming from one queue at once: every task is claimed exactly once.
    @Test func eightConnectionsClaimEachTaskOnce() async throws {
        let taskCount = 2000
        try await TestPostgres.withSchema { base in
            var configuration = base
            configuration.maximumConnections = 8
            try await PostgresTaskStore.withStore(configuration) { store in
                let ids = Set(try await store.enqueue(batch: (0..<taskCount).map { EnqueueRequest(kind: "k", args: ["i": .int(Int64($0))]) }).map(\.task.id))
                let claims = try await withThrowingTaskGroup(of: [TaskID].self) { group in
                    for n in 0..<8 {
                        group.addTask {
                            var mine: [TaskID] = []
                            while true {
                                let batch = try await store.claim(queues: ["default"], limit: 7, owner: "conn-\(n)", leaseDuration: .seconds(60))
                                if batch.isEmpty { return mine }
                                mine += batch.map(\.id)
                                _ = try await store.record(batch.map { .complete($0.lease!, nil) }, thenClaim: [])
                            }
                        }
                    }
                    return try await group.reduce(into: [[TaskID]]()) { $0.append($1) }
                }
                let all = claims.flatMap { $0 }
                #expect(all.count == taskCount, "claimed \(all.count) times for \(taskCount) tasks")
                #expect(Set(all) == ids)
                #expect(claims.filter { !$0.isEmpty }.count > 1, "only one connection ever got work")
                #expect(try await store.counts() == [QueueCounts(queue: "default", counts: [.succeeded: taskCount])])
                #expect(try await store.recount() == store.counts())
                let page = try await store.list(TaskFilter(), limit: taskCount, after: nil)
                #expect(page.tasks.allSatisfy { $0.attempt == 1 && $0.state == .succeeded })
            }
        }
    }

    /// A heartbeat never waits for a row another transaction holds: it renews the other leases at
    /// once and answers the busy one `held`, renewing it at the next beat. Waiting held up every
    /// lease of the process until `lock_timeout` failed the whole heartbeat (the cluster run saw
    /// leases expire on a live worker so, and its tasks run twice at once).
    @Test func aHeartbeatSkipsARowAnotherTransactionHoldsAndRenewsTheRest() async throws {
        try await TestPostgres.withSchema { base in
            var configuration = base
            configuration.lockTimeout = .seconds(3)
            try await PostgresTaskStore.withStore(configuration) { store in
                _ = try await store.enqueue(batch: (0..<4).map { EnqueueRequest(kind: "k", args: ["i": .int(Int64($0))]) })
                let claimed = try await store.claim(queues: ["default"], limit: 4, owner: "w", leaseDuration: .seconds(60))
                try #require(claimed.count == 4)
                let leases = claimed.map { $0.lease! }
                let busy = claimed[0], done = claimed[3]
                _ = try await store.complete(done.lease!, result: nil)
                try await TestPostgres.withConnection(configuration, id: 9) { other, logger in
                    try await other.query("BEGIN", logger: logger)
                    try await other.query("SELECT 1 FROM tasks WHERE id = \(busy.id.rawValue) FOR UPDATE", logger: logger)
                    let statuses = try await store.heartbeat(leases, leaseDuration: .seconds(3600))
                    #expect(statuses[busy.id] == .held, "the busy row is still ours")
                    #expect(statuses[done.id] == .lost, "a finished task's lease is lost, busy rows or not")
                    #expect(statuses[claimed[1].id] == .held && statuses[claimed[2].id] == .held)
                    for task in claimed[1...2] {
                        let expires = try #require(try await store.task(task.id)?.lease?.expiresAt)
                        #expect(expires > busy.lease!.expiresAt.addingTimeInterval(1800), "renewed for an hour")
                    }
                    #expect(try await store.task(busy.id)?.lease?.expiresAt == busy.lease!.expiresAt, "not renewed while held")
                    try await other.query("ROLLBACK", logger: logger)
                }
                _ = try await store.heartbeat(leases, leaseDuration: .seconds(3600))
                let renewed = try #require(try await store.task(busy.id)?.lease?.expiresAt)
                #expect(renewed > busy.lease!.expiresAt.addingTimeInterval(1800), "renewed at the next beat")
            }
        }
    }

    /// A heartbeat that gets no answer gives up within a third of its lease, not after the
    /// statement limit (30 s, the default lease itself), so the next beat can renew in time. Here a
    /// lock held on the whole table (with no `lock_timeout` to end the wait) stands for a
    /// connection that hangs.
    @Test func aHeartbeatWithoutAnAnswerGivesUpWithinAThirdOfTheLease() async throws {
        try await TestPostgres.withSchema { base in
            var configuration = base
            configuration.lockTimeout = .seconds(120)
            try await PostgresTaskStore.withStore(configuration) { store in
                _ = try await store.enqueue(EnqueueRequest(kind: "k"))
                let claimed = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: .seconds(60))
                let lease = try #require(claimed.first?.lease)
                try await TestPostgres.withConnection(configuration, id: 9) { other, logger in
                    try await other.query("BEGIN", logger: logger)
                    try await other.query("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE", logger: logger)
                    let start = ContinuousClock.now
                    let error = await #expect(throws: SluiceError.self) {
                        _ = try await store.heartbeat([lease], leaseDuration: .seconds(3))
                    }
                    let waited = ContinuousClock.now - start
                    #expect(error?.code == .storage, "\(String(describing: error))")
                    #expect(waited < .seconds(10), "gave up after \(waited), with a lease of 3 s")
                    try await other.query("ROLLBACK", logger: logger)
                }
                #expect(await eventually { (try? await store.heartbeat([lease], leaseDuration: .seconds(60)))?[lease.taskID] == .held },
                        "the next beat renews")
            }
        }
    }

    /// Every statement is watched (postgres-nio can lose an answer), by one watcher for all those in
    /// flight: a timer each cost a draining worker a tenth of its CPU. A burst of statements shares
    /// one watcher, and a statement that outlasts its limit still fails with a storage error
    /// naming it, after which the store goes on (its pool replaces the closed connection).
    @Test func statementsShareOneWatcherWhichStillEndsAStatementPastItsLimit() async throws {
        try await TestPostgres.withSchema { base in
            var configuration = base
            configuration.statementTimeout = .seconds(1)
            try await PostgresTaskStore.withStore(configuration) { store in
                let id = try await store.enqueue(EnqueueRequest(kind: "k")).task.id
                let burst = ContinuousClock.now
                for _ in 0..<200 { _ = try await store.task(id) }
                // A watcher stops at a look that finds nothing in flight, so a slow machine may
                // start one per `checkEvery`; never one per statement.
                let started = store.statements.watchersStarted
                let bound = Int((ContinuousClock.now - burst) / store.statements.checkEvery) + 2
                #expect(started >= 1 && started <= min(bound, 100), "\(started) watchers for 200 statements one after another")
                let clock = ContinuousClock.now
                let error = await #expect(throws: SluiceError.self) {
                    // The server's own statement_timeout off, as for an answer lost on the way.
                    try await store.connection { connection in
                        _ = try await store.rows(connection, "SET statement_timeout = 0", Binds())
                        return try await store.rows(connection, "SELECT pg_sleep(30)", Binds())
                    }
                }
                #expect(error?.code == .storage && error?.message.contains("no answer from PostgreSQL within 1") == true, "\(String(describing: error))")
                #expect(ContinuousClock.now - clock < .seconds(10), "ended by its limit, not by pg_sleep")
                // A read may still get the closing connection once (a storage error, which callers retry).
                #expect(await eventually { (try? await store.task(id)?.state) == .queued }, "the store goes on once its pool replaced the connection")
            }
        }
    }

    /// A statement the store gives up on is cancelled by the server too: an enqueue refused with
    /// "try again" after its limit must not be stored afterwards (the retry would store it twice).
    /// A trigger holds inserts to one queue for 2 s against a limit of 1 s.
    @Test func anEnqueueRefusedAtItsLimitIsNotStoredAfterwards() async throws {
        try await TestPostgres.withSchema { base in
            var configuration = base
            configuration.statementTimeout = .seconds(1)
            try await PostgresTaskStore.withStore(configuration) { store in
                try await store.connection { connection in
                    _ = try await store.rows(connection, """
                        CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$
                        """, Binds())
                    _ = try await store.rows(connection, "CREATE TRIGGER slow BEFORE INSERT ON tasks FOR EACH ROW WHEN (NEW.queue = 'slowq') EXECUTE FUNCTION slow_insert()", Binds())
                }
                await #expect(throws: SluiceError.self) { try await store.enqueue(EnqueueRequest(kind: "k", queue: "slowq")) }
                try await Task.sleep(for: .seconds(2))  // past when the server would have committed it
                let stored = try await store.connection { connection in
                    try await store.rows(connection, "SELECT count(*) FROM tasks WHERE queue = 'slowq'", Binds())
                }
                #expect(try stored[0][0].decode(Int.self) == 0, "the refused enqueue was stored all the same")
            }
        }
    }

    /// Single enqueues from many callers at once share transactions, and a refusal stays with its
    /// own caller: an invalid request and a reused idempotency key with other args fail alone,
    /// every other enqueue is stored once.
    @Test func concurrentSingleEnqueuesShareCommitsAndFailAlone() async throws {
        try await TestPostgres.withSchema { base in
            var configuration = base
            configuration.maximumConnections = 4
            try await PostgresTaskStore.withStore(configuration) { store in
                let first = try await store.enqueue(EnqueueRequest(kind: "k", args: ["n": 0], idempotencyKey: "same"))
                let callers = 400
                let outcomes = await withTaskGroup(of: (Int, Result<EnqueueResult, SluiceError>).self) { group in
                    for n in 1...callers {
                        group.addTask {
                            let request = switch n {
                            case 7: EnqueueRequest(kind: "", args: [:])  // invalid: no kind
                            case 11: EnqueueRequest(kind: "k", args: ["n": 11], idempotencyKey: "same")  // conflicts with `first`
                            case 13: EnqueueRequest(kind: "k", args: ["n": 0], idempotencyKey: "same")  // a true replay
                            default: EnqueueRequest(kind: "k", args: ["n": .int(Int64(n))])
                            }
                            do { return (n, .success(try await store.enqueue(request))) } catch let error as SluiceError {
                                return (n, .failure(error))
                            } catch { return (n, .failure(SluiceError(.storage, "\(error)"))) }
                        }
                    }
                    return await group.reduce(into: [Int: Result<EnqueueResult, SluiceError>]()) { $0[$1.0] = $1.1 }
                }
                #expect((try? outcomes[7]?.get()) == nil && outcomes[7].map { if case .failure(let e) = $0 { e.code == .invalidArgument } else { false } } == true)
                #expect(outcomes[11].map { if case .failure(let e) = $0 { e.code == .idempotencyConflict } else { false } } == true)
                let replay = try #require(try outcomes[13]?.get())
                #expect(replay.task.id == first.task.id && !replay.created)
                let created = outcomes.values.compactMap { try? $0.get() }.filter(\.created)
                #expect(created.count == callers - 3)
                for result in created { #expect(try await store.task(result.task.id)?.state == .queued) }
                #expect(try await store.counts() == [QueueCounts(queue: "default", counts: [.queued: callers - 2])])
                let commits = store.groupCommits
                #expect(commits.enqueues == callers + 1)
                #expect(commits.transactions < commits.enqueues / 2, "\(commits): single enqueues did not share transactions")
            }
        }
    }

    /// A grouped enqueue whose idempotency key named a task that is gone by the time the store
    /// looks it up (deleted or pruned in between) fails alone: the others in its statement were
    /// committed and say so. A test trigger makes that gap happen on cue.
    @Test func aKeyedEnqueueWhoseTaskVanishedFailsAloneInItsGroup() async throws {
        try await TestPostgres.withSchema { base in
            var configuration = base
            configuration.maximumConnections = 2
            try await PostgresTaskStore.withStore(configuration) { store in
                _ = try await store.enqueue(EnqueueRequest(kind: "k", idempotencyKey: "vanish"))
                try await TestPostgres.execute(configuration, """
                    CREATE FUNCTION vanish() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                      IF NEW.idempotency_key = 'vanish' THEN DELETE FROM tasks WHERE idempotency_key = 'vanish'; RETURN NULL; END IF;
                      RETURN NEW; END $$
                    """)
                try await TestPostgres.execute(configuration, "CREATE TRIGGER vanish BEFORE INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION vanish()")
                let callers = 200
                let outcomes = await withTaskGroup(of: (Int, Bool).self) { group in
                    for n in 1...callers {
                        group.addTask {
                            let request = EnqueueRequest(kind: "k", args: ["n": .int(Int64(n))], idempotencyKey: n == 100 ? "vanish" : nil)
                            return (n, (try? await store.enqueue(request)) != nil)
                        }
                    }
                    return await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
                }
                #expect(outcomes[100] == false)
                #expect(outcomes.filter { !$0.value }.map(\.key) == [100], "\(outcomes.filter { !$0.value }.count) enqueues failed")
                #expect(store.groupCommits.transactions < store.groupCommits.enqueues / 2, "\(store.groupCommits): no groups formed")
            }
        }
    }

    /// After ANALYZE on a populated schema, no hot statement plans a sequential scan of tasks.
    @Test func noHotStatementScansTheTasksTable() async throws {
        try await TestPostgres.withSchema { configuration in
            try await PostgresTaskStore.withStore(configuration) { store in
                _ = try await store.enqueue(batch: (0..<3000).map { i in
                    EnqueueRequest(kind: "k", queue: ["default", "mail", "video"][i % 3], priority: i % 5, idempotencyKey: "key-\(i)")
                })
                let held = try await store.claim(queues: ["default", "mail"], limit: 1000, owner: "w", leaseDuration: .seconds(60))
                _ = try await store.record(held.prefix(600).map { .complete($0.lease!, nil) }, thenClaim: [])
                try await store.optimize()
                for statement in try store.hotStatements {
                    let plan = try await store.queryPlan(statement.sql, statement.binds)
                    #expect(!plan.contains { $0.contains("Seq Scan on tasks") }, "\(statement.name): \(plan.joined(separator: "\n"))")
                }
            }
        }
    }

    func closedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                guard bind(fd, raw, length) == 0, getsockname(fd, raw, &length) == 0 else { throw SluiceError(.storage, "no free port") }
            }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

@Suite(.timeLimit(.minutes(4))) struct PostgresMigrationTextTests {
    @Test func statementsAreSplitAtSemicolonsOutsideQuotesAndComments() {
        let migration = Migration(file: "0001_x.sql", sql: """
            -- a comment; with a semicolon
            CREATE TABLE a (x text DEFAULT ';'); -- trailing
            COMMENT ON TABLE a IS 'it''s; fine';
            CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;
            """)
        #expect(migration.statements == [
            "CREATE TABLE a (x text DEFAULT ';')",
            "COMMENT ON TABLE a IS 'it''s; fine'",
            "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
        ])
    }
}

/// The reason to keep a queue in PostgreSQL: an application's row and its task commit or roll back
/// together, in the application's own transaction.
@Suite(.timeLimit(.minutes(4))) struct PostgresTransactionalEnqueueTests {
    @Test func tasksEnqueuedInTheCallersTransactionCommitAndRollBackWithIt() async throws {
        try await TestPostgres.withSchema { configuration in
            try await PostgresTaskStore.withStore(configuration) { store in
                try await TestPostgres.withConnection(configuration, id: 7) { app, logger in
                    try await enqueueWithTheApplication(store, app, logger)
                }
            }
        }
    }

    func enqueueWithTheApplication(_ store: PostgresTaskStore, _ app: PostgresConnection, _ logger: Logger) async throws {
        try await app.query("CREATE TABLE orders (id int PRIMARY KEY)", logger: logger)
        let order = EnqueueRequest(kind: "ship", args: ["order": 1])

        // Rolled back: neither the order nor its task exists, and the counts never saw it.
        try await app.query("BEGIN", logger: logger)
        try await app.query("INSERT INTO orders VALUES (1)", logger: logger)
        let lost = try await store.enqueue(batch: [order], in: app)
        #expect(lost.count == 1 && lost[0].created)
        #expect(try await store.task(lost[0].task.id) == nil, "not visible before the caller commits")
        try await app.query("ROLLBACK", logger: logger)
        #expect(try await store.task(lost[0].task.id) == nil)
        #expect(try await store.counts().isEmpty)
        let orders = try await app.query("SELECT count(*) FROM orders", logger: logger).collect()
        #expect(try orders[0].decode(Int.self) == 0)

        // Committed: both exist, and the task is claimable like any other.
        try await app.query("BEGIN", logger: logger)
        try await app.query("INSERT INTO orders VALUES (2)", logger: logger)
        let kept = try await store.enqueue(batch: [EnqueueRequest(kind: "ship", args: ["order": 2])], in: app)
        try await app.query("COMMIT", logger: logger)
        _ = store.announce(enqueued: kept)
        #expect(try await store.task(kept[0].task.id)?.state == .queued)
        #expect(try await store.counts() == [QueueCounts(queue: "default", counts: [.queued: 1])])
        let claimed = try await store.claim(queues: ["default"], limit: 5, owner: "w", leaseDuration: .seconds(30))
        #expect(claimed.map(\.id) == [kept[0].task.id])
    }
}
