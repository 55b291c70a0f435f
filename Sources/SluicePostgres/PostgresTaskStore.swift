import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import SluiceCore
import SluiceStore
import Synchronization

/// The store for many hosts: one PostgreSQL database shared by a server and any number of
/// `sluice worker` processes. Claims take ready rows with `FOR UPDATE SKIP LOCKED`, outcomes are
/// fenced by owner and a per-claim token, and every time comes from the database's `now()`, so
/// hosts whose clocks disagree neither steal nor lose leases.
///
/// Its connection pool runs in `run()`: put the store in a `ServiceGroup` (the pool closes on
/// graceful shutdown), or use `withStore`. Call `open()` before the first use: it checks the server
/// and applies migrations on a connection of its own, so it needs no running pool.
public final class PostgresTaskStore: TaskStore, Service {
    public let configuration: PostgresStoreConfiguration
    public let events = StoreEvents()
    private let client: PostgresClient
    private let logger: Logger
    let ids: TaskIDGenerator
    private let migrationReport = Mutex<PostgresMigrator.Report?>(nil)
    private let wakeups: PostgresWakeups
    /// One element when tasks finished here since the last finish notice was sent.
    private let finishes = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    /// Whether tasks finished here since the last finish notice: what `withStore` announces as
    /// the store stops, when the sender is still waiting out its interval.
    private let finishedSinceNotice = Atomic<Bool>(false)
    private let group: EnqueueGroup
    /// Every statement runs under it: a lost answer becomes an error, not a wait forever.
    let statements = StatementWatch()
    /// Set once `open()` succeeded: the listener waits for it, so a wrong URL is one error, not two.
    private let opened = Atomic<Bool>(false)

    /// A store on `configuration`; no I/O until `run()` and `open()`.
    public init(_ configuration: PostgresStoreConfiguration, logger: Logger = Logger(label: "sluice.postgres")) {
        self.configuration = configuration
        self.logger = logger
        location = "PostgreSQL database \(configuration.database) at \(configuration.place)" + (configuration.schema.map { " (schema \($0))" } ?? "")
        ids = TaskIDGenerator(clock: configuration.clock ?? SystemClock())
        client = PostgresClient(configuration: configuration.clientConfiguration(), backgroundLogger: logger)
        wakeups = PostgresWakeups(schema: configuration.schema)
        group = EnqueueGroup(transactions: max(1, configuration.maximumConnections / 2))
        // The store owns `events`, so the observer never outlives it.
        events.onFinish { [unowned self] _ in
            finishedSinceNotice.store(true, ordering: .releasing)
            finishes.continuation.yield()
        }
    }

    /// Runs the connection pool, the connection that listens for other processes' enqueues and
    /// finishes (unless `listen` is off), and the sender of this process's finish notices, until
    /// the task is cancelled.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.sendFinishNotices() }
            if configuration.listen {
                group.addTask {
                    while !self.opened.load(ordering: .acquiring) {
                        guard (try? await Task.sleep(for: .milliseconds(20))) != nil else { return }
                    }
                    await self.wakeups.listen(self.configuration, events: self.events, logger: self.logger, readyQueues: { connection in
                        Set(try await self.rows(connection, SQL.ReadyQueues.self, Binds()).map { try $0[0].decode(String.self) })
                    }, probe: { connection in
                        // Watched: no answer within the limit closes the connection and throws.
                        _ = try await self.statements.rows(PostgresQuery(unsafeSQL: "SELECT 1"), on: connection,
                                                           limit: self.configuration.listenProbeTimeout, place: self.location, logger: self.logger)
                    })
                }
            }
            await client.run()
            group.cancelAll()
        }
    }

    /// Tells other processes, after the commits that finished tasks here, that tasks finished: at
    /// most once per `finishNoticeInterval` (one NOTIFY per transaction would serialise commits on the
    /// server's notification queue), and once more at its end when tasks finished meanwhile, so
    /// that the last finish of a burst is announced too. Sent on its own, after the commit, so a
    /// listener that reads the tasks at once sees them finished. Runs once per store, as `run()`
    /// does (the stream ends with it). Finishes in the last interval before the store stops are
    /// announced by `withStore` as it stops (`announceFinishes`).
    private func sendFinishNotices() async {
        for await _ in finishes.stream {
            guard opened.load(ordering: .acquiring) else { continue }
            await announceFinishes()
            guard (try? await Task.sleep(for: configuration.finishNoticeInterval)) != nil else { return }
        }
    }

    /// Sends one finish notice if tasks finished here since the last, waiting for an answer at most
    /// `limit`.
    func announceFinishes(limit: Duration? = nil) async {
        guard finishedSinceNotice.exchange(false, ordering: .acquiringAndReleasing) else { return }
        do {
            _ = try await connection { connection in
                try await self.rows(connection, SQL.Notify.self, Binds(self.wakeups.channel, self.wakeups.finishedPayload), limit: limit)
            }
        } catch {
            logger.debug("announcing finished tasks failed (waiting requests elsewhere poll): \(PostgresErrors.describe(error))")
        }
    }

    /// Outcome batches a worker writes at once: see `configuration.outcomeBatchesInFlight`.
    public var outcomeBatchesInFlight: Int { configuration.outcomeBatchesInFlight }

    /// True while the listening connection is up: pools then poll only as a backstop.
    public var hearsEveryEnqueue: Bool { configuration.listen && wakeups.isListening }

    /// Runs the pool, opens the store and hands it to `body`; the pool stops when `body` returns.
    public static func withStore<T: Sendable>(_ configuration: PostgresStoreConfiguration, logger: Logger = Logger(label: "sluice.postgres"),
                                              _ body: (PostgresTaskStore) async throws -> T) async throws -> T {
        let store = PostgresTaskStore(configuration, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            try await store.open()
            let result = try await body(store)
            // Finishes of the last interval, while the pool still runs; a server that does not
            // answer holds the stop up for about a second (waiters elsewhere poll): the statement's
            // own limit once it is sent, the sleep while a connection is awaited.
            await withTaskGroup(of: Void.self) { announcing in
                announcing.addTask { await store.announceFinishes(limit: .seconds(1)) }
                announcing.addTask { try? await Task.sleep(for: .seconds(1)) }
                await announcing.next()
                announcing.cancelAll()
            }
            return result
        }
    }

    /// Lock waits are bounded by the session's `lock_timeout`.
    public var longestWriteWait: Duration { configuration.lockTimeout }

    /// Where the store lives, for messages: built once, since every statement carries it.
    public let location: String

    /// What opening the store migrated (`nil` before `open()` or with `migrate = false`).
    public var migration: PostgresMigrator.Report? { migrationReport.withLock { $0 } }

    /// Checks that the server answers and takes the login (one clear error naming host and port if
    /// not), then applies pending migrations, or refuses an older schema when `migrate` is off.
    /// The check uses a connection of its own: the pool would keep retrying a dead server.
    @discardableResult
    public func open() async throws -> PostgresMigrator.Report? {
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: try configuration.connectionConfiguration(), id: 0, logger: logger)
        } catch {
            throw PostgresErrors.connectFailure(error, place: configuration.place, user: configuration.username, database: configuration.database)
        }
        do {
            let migrator = try PostgresMigrator()
            var report: PostgresMigrator.Report?
            if configuration.migrate {
                report = try await migrator.migrate(connection, place: location, schema: configuration.schema,
                                                    now: configuration.clock?.now(), logger: logger)
            } else {
                let version = try await migrator.check(connection, place: location, logger: logger)
                if version < migrator.latestVersion {
                    throw SluiceError(.incompatibleDatabase, "\(location) has schema version \(version), this sluice needs \(migrator.latestVersion): run `sluice migrate`")
                }
            }
            try? await connection.close()
            migrationReport.withLock { $0 = report }
            opened.store(true, ordering: .releasing)
            return report
        } catch {
            try? await connection.close()
            if let error = error as? SluiceError { throw error }
            throw SluiceError(.storage, "\(location): \(PostgresErrors.describe(error))")
        }
    }

    // MARK: - TaskStore

    /// One task. Enqueues that arrive together share a statement (`EnqueueGroup`): with many
    /// clients at once, one commit serves them all instead of each waiting for its own.
    public func enqueue(_ request: EnqueueRequest) async throws -> EnqueueResult {
        try await group.enqueue(request) { requests in
            // One statement, so no BEGIN and COMMIT: it commits alone, all or nothing.
            let results = try await self.connection { connection in try await self.insert(requests, on: connection, each: true) }
            _ = self.announce(enqueued: results.compactMap { try? $0.get() })
            return results
        }
    }

    /// Single enqueues so far and the transactions that carried them (group commit at work).
    public var groupCommits: (enqueues: Int, transactions: Int) { (group.stats.enqueues, group.stats.transactions) }

    public func enqueue(batch requests: [EnqueueRequest]) async throws -> [EnqueueResult] {
        guard !requests.isEmpty else { return [] }
        return announce(enqueued: try await transaction { connection in try await self.insert(requests, on: connection) })
    }

    /// Enqueues inside the caller's own transaction on `connection` (after its `BEGIN`), so that an
    /// application's rows and its tasks commit or roll back together: the reason to keep a queue in
    /// the application's database. Nothing is committed here. After committing, call
    /// `announce(enqueued:)` with the result to wake this process's pools at once; other processes
    /// find the tasks at their next poll. The connection's `search_path` must reach the store's
    /// schema (`configuration.schema`, when set), as the store's own connections do.
    public func enqueue(batch requests: [EnqueueRequest], in connection: PostgresConnection) async throws -> [EnqueueResult] {
        guard !requests.isEmpty else { return [] }
        return try await mapErrors { try await insert(requests, on: connection) }
    }

    /// Inserts a batch all or nothing: the first refusal is thrown before anything is inserted or,
    /// for an idempotency key that names a different task, after (the caller rolls back).
    func insert(_ requests: [EnqueueRequest], on connection: PostgresConnection) async throws -> [EnqueueResult] {
        try await insert(requests, on: connection, each: false).map { try $0.get() }
    }

    /// Inserts tasks (or finds the live task an idempotency key names), counts them and wakes the
    /// listeners, in one statement (`SQL.insertBatch`) that takes its time from the database. With
    /// `each`, a request refused (invalid, or an idempotency key naming a different task) gets its
    /// own error and the others go in, and the statement may run outside a transaction: it commits
    /// alone. Without, the first refusal is thrown (inside a transaction, which the caller rolls back).
    func insert(_ requests: [EnqueueRequest], on connection: PostgresConnection, each: Bool) async throws -> [Result<EnqueueResult, SluiceError>] {
        let ids = self.ids
        // Only for the limit on how far ahead a task may be due (a year): the host's clock is
        // close enough for that, and asking the database first would cost a round trip.
        let hostNow = configuration.clock?.now() ?? Date()
        var results = [Result<EnqueueResult, SluiceError>?](repeating: nil, count: requests.count)
        for (index, request) in requests.enumerated() {
            do { try request.validate(now: hostNow) } catch { if each { results[index] = .failure(error) } else { throw error } }
        }
        let valid = requests.indices.filter { results[$0] == nil }
        guard !valid.isEmpty else { return results.map { $0! } }
        // Built for the columns the request implies (defaults filled in); the times are the database's.
        let tasks = valid.map { TaskRecord(id: ids.next(), request: requests[$0], now: hostNow) }
        // Delivered at commit, to every process listening (a rollback sends nothing).
        let payloads = wakeups.payloads(for: Set(tasks.map(\.queue)))
        // The database answers what it decided (state and times) for each row inserted; the rest is
        // what was sent, so nothing is parsed back (the args above all).
        var inserted: [String: TaskRecord] = [:]
        let byID = Dictionary(uniqueKeysWithValues: tasks.map { ($0.id.rawValue, $0) })
        for row in try await self.rows(connection, SQL.InsertBatch.self, Binds(
            nowParameter, tasks.map(\.id.rawValue), tasks.map(\.queue), tasks.map(\.kind), tasks.map { $0.args.jsonText() },
            tasks.map { Int64($0.priority) }, valid.map { requests[$0].runAt?.storedPrecision.microsecondsSince1970 ?? 0 },
            tasks.map { Int64($0.maxAttempts) }, tasks.map { Int64($0.timeout.milliseconds) },
            tasks.map { Int64($0.retryPolicy.base.milliseconds) }, tasks.map { Int64($0.retryPolicy.cap.milliseconds) },
            tasks.map { $0.idempotencyKey ?? "" }, wakeups.channel, payloads,
            valid.map { requests[$0].delay.map { max(0, $0.microseconds) } ?? -1 })) {
            let id = try row[0].decode(String.self)
            guard var task = byID[id], let state = TaskState(rawValue: try row[1].decode(String.self)) else {
                throw SluiceError(.storage, "the database inserted a task this enqueue did not send: \(id)")
            }
            task.state = state
            task.runAt = try row[2].decode(Timestamp.self).date
            task.createdAt = try row[3].decode(Timestamp.self).date
            inserted[id] = task
        }
        for (index, task) in zip(valid, tasks) {
            if let stored = inserted[task.id.rawValue] {
                results[index] = .success(EnqueueResult(task: stored, created: true))
                continue
            }
            // Not inserted: an idempotency key named a live task (committed before this statement).
            // Grouped (`each`), the statement has committed the others: a failure here is this
            // request's alone (its task deleted or pruned since, or the lookup failed).
            do {
                guard let key = task.idempotencyKey else {
                    throw SluiceError(.storage, "task \(task.id) was not inserted and no idempotency key explains why")
                }
                guard let existing = try await self.tasks(connection, SQL.byIdempotencyKey, Binds(task.queue, key)).first else {
                    throw SluiceError(.storage, "the task idempotency key \(key) named was deleted as this enqueue ran; send it again")
                }
                try existing.checkReplay(of: requests[index])
                results[index] = .success(EnqueueResult(task: existing, created: false))
            } catch {
                let refusal = error as? SluiceError ?? SluiceError(.storage, "\(location): \(PostgresErrors.describe(error))")
                if each { results[index] = .failure(refusal) } else { throw refusal }
            }
        }
        return results.map { $0! }
    }

    public func task(_ id: TaskID) async throws -> TaskRecord? {
        try await connection { connection in try await self.tasks(connection, SQL.ByID.self, Binds(id.rawValue)).first }
    }

    public func tasks(_ ids: [TaskID], onlyFinal: Bool) async throws -> [TaskID: TaskRecord] {
        guard !ids.isEmpty else { return [:] }
        let found = try await connection { connection in
            try await self.tasks(connection, SQL.ByIDs.self, Binds(ids.map(\.rawValue), onlyFinal))
        }
        return Dictionary(found.map { ($0.id, $0) }) { first, _ in first }
    }

    public func list(_ filter: TaskFilter, limit: Int, after cursor: TaskID?) async throws -> TaskPage {
        let limit = max(1, limit)
        var values: [any PostgresThrowingDynamicTypeEncodable] = []
        func parameter(_ value: any PostgresThrowingDynamicTypeEncodable) -> String {
            values.append(value)
            return "$\(values.count)"
        }
        // Which rows the page may examine: after the cursor, within the id range, newest first.
        var window: [String] = []
        if let cursor { window.append("t.id < \(parameter(cursor.rawValue))") }
        if let ids = filter.ids { window.append("t.id BETWEEN \(parameter(ids.lowerBound.rawValue)) AND \(parameter(ids.upperBound.rawValue))") }
        let windowWhere = window.isEmpty ? "" : "WHERE " + window.joined(separator: " AND ")
        let windowCount = values.count
        var conditions: [String] = []
        if let states = filter.states { conditions.append("t.state = ANY(\(parameter(states.map(\.rawValue).sorted()))::text[])") }
        if let queue = filter.queue { conditions.append("t.queue = \(parameter(queue))") }
        if let kind = filter.kind { conditions.append("t.kind = \(parameter(kind))") }
        if let text = filter.argsContains { conditions.append("strpos(t.args::text, \(parameter(text))) > 0") }
        for field in filter.argsFields {
            // A string by its value; a number or boolean by its text, only when VALUE is spelled as one;
            // null, objects and arrays never (as in every store).
            let name = parameter(field.name), value = parameter(field.value)
            let scalar = field.scalarSpelling == nil ? "false" : "t.args ->> \(name) = \(value)"
            conditions.append("""
                CASE jsonb_typeof(t.args -> \(name)) WHEN 'string' THEN t.args ->> \(name) = \(value) \
                WHEN 'number' THEN \(scalar) WHEN 'boolean' THEN \(scalar) ELSE false END
                """)
        }
        let sql = filter.isIDOnly
            // Nothing to skip: the primary key gives the page directly.
            ? "SELECT \(PostgresTaskRow.columns) FROM tasks t \(windowWhere) ORDER BY t.id DESC LIMIT \(parameter(limit + 1))"
            : SQL.search(window: windowWhere, scan: parameter(filter.scanLimit), conditions: conditions.joined(separator: " AND "),
                         limit: parameter(limit + 1))
        var binds = try Binds()
        for value in values { try binds.bindings.append(value) }
        var lastBinds = try Binds()
        for value in values.prefix(windowCount) { try lastBinds.bindings.append(value) }
        lastBinds.bindings.append(filter.scanLimit - 1)
        let lastSQL = "SELECT t.id FROM tasks t \(windowWhere) ORDER BY t.id DESC LIMIT 1 OFFSET $\(windowCount + 1)"
        let (frozen, frozenLast, idOnly) = (binds, lastBinds, filter.isIDOnly)
        return try await connection { connection in
            let rows = try await self.tasks(connection, sql, frozen)
            let page = Array(rows.prefix(limit))
            if rows.count > limit || idOnly { return TaskPage(tasks: page, nextCursor: rows.count > limit ? page.last?.id : nil) }
            // Not full: either nothing more matches, or the scan stopped at its bound.
            let last = try await self.rows(connection, lastSQL, frozenLast).first.map { try $0[0].decode(String.self) }
            return TaskPage(tasks: page, nextCursor: last.flatMap(TaskID.init), partial: last != nil)
        }
    }

    public func claim(queues: [String], limit: Int, owner: String, leaseDuration: Duration) async throws -> [TaskRecord] {
        guard limit > 0, !queues.isEmpty else { return [] }
        let request = ClaimRequest(queues: queues, limit: limit, owner: owner, leaseDuration: leaseDuration)
        let now = nowParameter
        return try await transaction { connection in
            var counts = CountDeltas()
            let claimed = try await self.claim(connection, request, now: now, counts: &counts)
            try await counts.flush(connection, on: self)
            return claimed
        }
    }

    public func heartbeat(_ leases: [TaskLease], leaseDuration: Duration) async throws -> [TaskID: LeaseStatus] {
        guard !leases.isEmpty else { return [:] }
        let binds = try Binds(nowParameter, leaseDuration.microseconds, leases.map(\.taskID.rawValue), leases.map(\.owner), leases.map(\.token))
        // A beat that hangs (a connection left half-open by a failover) gives up within a third of
        // the lease, so the next beat, on another connection, still renews it in time; the
        // statement limit (30 s) is as long as the default lease.
        let limit = min(configuration.statementTimeout, leaseDuration / 3)
        let renewed = try await connection { connection in try await self.rows(connection, SQL.Heartbeat.self, binds, limit: limit) }
        var statuses = Dictionary(leases.map { ($0.taskID, LeaseStatus.lost) }, uniquingKeysWith: { a, _ in a })
        for row in renewed {
            guard let id = TaskID(try row[0].decode(String.self)) else { continue }
            statuses[id] = try row[1].decode(Bool.self) ? .cancelRequested : .held
        }
        return statuses
    }

    /// One outcome, the whole task back: the general way, which reads the row anyway.
    public func complete(_ lease: TaskLease, result: JSONValue) async throws -> TaskRecord {
        try await update(lease.taskID) { task, now, _ in try task.complete(lease, result: result, now: now) }
    }

    public func fail(_ lease: TaskLease, failure: TaskFailure) async throws -> TaskRecord {
        try await update(lease.taskID) { task, now, unit in try task.fail(lease, failure: failure, now: now, unit: unit) }
    }

    public func record(_ outcomes: [TaskOutcome], thenClaim claims: [ClaimRequest]) async throws -> RecordResult {
        guard !outcomes.isEmpty || !claims.isEmpty else { return RecordResult(recorded: [], claimed: []) }
        let units = outcomes.map { _ in configuration.unitRandom() }
        let result = try await transaction { connection in
            var counts = CountDeltas()
            var recorded = [Result<RecordedTask, SluiceError>?](repeating: nil, count: outcomes.count)
            // The hot path: every completion of a task named once in the batch, in one fenced
            // UPDATE doing what `TaskRecord.complete` does when no cancel is pending; it returns
            // what a notice needs, not the whole task (`RecordedTask`). A refusal falls through to
            // the general path, which applies the rule or explains why not.
            let named = Dictionary(outcomes.map { ($0.lease.taskID, 1) }, uniquingKeysWith: +)
            let fast = outcomes.indices.filter { index in
                if case .complete = outcomes[index] { named[outcomes[index].lease.taskID] == 1 } else { false }
            }
            // The statements take the database's time themselves (`now()`, the same all through the
            // transaction); the general path computes in Swift and reads it first, only when it runs.
            var knownNow = configuration.clock?.now().storedPrecision
            // Outcomes for the general path lock their rows one by one: lock them all first, in id
            // order, so that this batch and a heartbeat never wait for each other in a cycle.
            if fast.count < outcomes.count {
                _ = try await self.rows(connection, SQL.LockInOrder.self, Binds(Array(Set(outcomes.map(\.lease.taskID.rawValue)))))
            }
            if !fast.isEmpty {
                let binds = try Binds(
                    knownNow.map(Timestamp.init), fast.map { outcomes[$0].lease.taskID.rawValue }, fast.map { outcomes[$0].lease.owner },
                    fast.map { outcomes[$0].lease.token },
                    fast.map { index -> String in if case .complete(_, let value) = outcomes[index] { value.jsonText() } else { "null" } },
                    fast.map { Int64($0) })
                for row in try await self.rows(connection, SQL.CompleteBatch.self, binds) {
                    let (queue, kind, index) = (try row[0].decode(String.self), try row[1].decode(String.self), try row[2].decode(Int.self))
                    recorded[index] = .success(RecordedTask(id: outcomes[index].lease.taskID, queue: queue, kind: kind, state: .succeeded))
                    counts.move(queue, from: .running, to: .succeeded)
                }
            }
            for (index, outcome) in outcomes.enumerated() where recorded[index] == nil {
                if knownNow == nil { knownNow = try await self.now(connection) }
                let now = knownNow!
                do {
                    switch outcome {
                    case .complete(let lease, let value):
                        recorded[index] = .success(RecordedTask(try await self.move(connection, lease.taskID, counts: &counts) {
                            try $0.complete(lease, result: value, now: now)
                        }))
                    case .fail(let lease, let failure):
                        recorded[index] = .success(RecordedTask(try await self.move(connection, lease.taskID, counts: &counts) {
                            try $0.fail(lease, failure: failure, now: now, unit: units[index])
                        }))
                    }
                } catch let error as SluiceError where [.leaseLost, .notFound, .invalidTransition].contains(error.code) {
                    recorded[index] = .failure(error)
                }
            }
            var claimed: [[TaskRecord]] = []
            for claim in claims { claimed.append(try await self.claim(connection, claim, now: knownNow.map(Timestamp.init), counts: &counts)) }
            try await counts.flush(connection, on: self)
            return RecordResult(recorded: recorded.map { $0! }, claimed: claimed)
        }
        announce(finished: result.recorded.compactMap { try? $0.get() })
        return result
    }

    public func release(_ leases: [TaskLease]) async throws {
        guard !leases.isEmpty else { return }
        try await transaction { connection in
            let now = try await self.now(connection)
            var counts = CountDeltas()
            for lease in leases.sorted(by: { $0.taskID.rawValue < $1.taskID.rawValue }) {  // id order, as every batch locks
                // A lease already lost (or a task gone) has nothing to hand back.
                do {
                    _ = try await self.move(connection, lease.taskID, counts: &counts) { try $0.release(lease, now: now) }
                } catch let error as SluiceError where [.leaseLost, .notFound, .invalidTransition].contains(error.code) {
                    continue
                }
            }
            try await counts.flush(connection, on: self)
        }
    }

    public func cancel(_ id: TaskID) async throws -> TaskRecord {
        try await update(id) { task, now, _ in try task.requestCancel(now: now) }
    }

    public func retry(_ id: TaskID) async throws -> TaskRecord {
        try await update(id) { task, now, _ in try task.retryByHand(now: now) }
    }

    public func nextReady(in queues: [String]) async throws -> [String: Date] {
        try await connection { connection in
            var heads: [String: Date] = [:]
            for queue in queues {
                if let row = try await self.rows(connection, SQL.NextReady.self, Binds(queue)).first { heads[queue] = try row[0].decode(Timestamp.self).date }
            }
            return heads
        }
    }

    /// Tells the other processes, at this transaction's commit, that `queues` have ready tasks (at
    /// most once per queue per `PostgresWakeups.notifyInterval` from this process, as enqueues).
    func announce(readyIn queues: Set<String>, on connection: PostgresConnection) async throws {
        let payloads = wakeups.payloads(for: queues)
        guard !payloads.isEmpty else { return }
        _ = try await rows(connection, SQL.NotifyAll.self, Binds(wakeups.channel, payloads))
    }

    public func nextDue(in queues: [String], within horizon: Duration) async throws -> Duration? {
        try await connection { connection in
            let rows = try await self.rows(connection, SQL.NextDue.self, Binds(self.nowParameter, horizon.microseconds, Int64(NextDue.lookLimit)))
            return NextDue.answer(try rows.map { (try $0[0].decode(String.self), try $0[1].decode(Double.self)) }, in: queues)
        }
    }

    public func delete(_ id: TaskID) async throws -> TaskRecord {
        try await transaction { connection in
            guard let task = try await self.tasks(connection, SQL.byIDForUpdate, Binds(id.rawValue)).first else {
                throw SluiceError(.notFound, "no task has id \(id)")
            }
            try task.checkDeletable()
            _ = try await self.rows(connection, SQL.delete, Binds(id.rawValue))
            var counts = CountDeltas()
            counts.add(task.queue, task.state, -1)
            try await counts.flush(connection, on: self)
            return task
        }
    }

    public func stageDue(limit: Int) async throws -> Int {
        let now = nowParameter
        return try await transaction { connection in
            var counts = CountDeltas()
            let staged = try await self.stageDue(connection, now: now, limit: limit, counts: &counts)
            try await counts.flush(connection, on: self)
            return staged
        }
    }

    public func rescueExpiredLeases(limit: Int) async throws -> RescueReport {
        let (report, finished) = try await transaction { connection in
            let now = try await self.now(connection)
            var counts = CountDeltas()
            var report = RescueReport()
            var finished: [TaskRecord] = []
            for var task in try await self.tasks(connection, SQL.expiredLeases, Binds(Timestamp(now), max(1, limit))) {
                let before = task
                try task.expireLease(now: now)
                try await self.save(connection, task, replacing: before, counts: &counts)
                if task.state.isFinal { finished.append(task) }
                switch task.state {
                case .queued: report.requeued.append(task.id)
                case .failed: report.failed.append(task.id)
                default: report.cancelled.append(task.id)
                }
            }
            try await counts.flush(connection, on: self)
            return (report, finished)
        }
        announce(finished: finished.map(RecordedTask.init))
        return report
    }

    public func prune(finishedBefore retention: Duration, limit: Int) async throws -> Int {
        let now = nowParameter
        var total = 0
        // Small transactions, so that pruning a large backlog never holds many row locks for long.
        while total < limit {
            let batch = min(500, limit - total)
            let deleted = try await transaction { connection in
                var counts = CountDeltas()
                let rows = try await self.rows(connection, SQL.prune, Binds(now, retention.microseconds, batch))
                for row in rows {
                    if let state = TaskState(rawValue: try row[1].decode(String.self)) { counts.add(try row[0].decode(String.self), state, -1) }
                }
                try await counts.flush(connection, on: self)
                return rows.count
            }
            total += deleted
            if deleted < batch { break }
        }
        return total
    }

    public func counts() async throws -> [QueueCounts] {
        try await byQueue(SQL.counts)
    }

    /// Counts by queue and state taken from the tasks themselves (a full scan): for tests that
    /// check the counters, never for a hot path.
    public func recount() async throws -> [QueueCounts] {
        try await byQueue(SQL.recount)
    }

    /// Refreshes the planner's statistics (autovacuum does too; maintenance calls this hourly).
    public func optimize() async throws {
        _ = try await connection { connection in try await self.rows(connection, SQL.analyze, Binds()) }
    }

    /// The statements that run on every claim, outcome, heartbeat, status read and maintenance
    /// pass, with typical parameters: none may scan `tasks` (a test checks their plans).
    var hotStatements: [(name: String, sql: String, binds: Binds)] {
        get throws {
            let id = "01JD0000000000000000000000", now = Timestamp(Date(microsecondsSince1970: 1_750_000_000_000_000))
            return [
                ("byID", SQL.byID, try Binds(id)),
                ("byIDs", SQL.byIDs, try Binds([id, "01JD0000000000000000000001"], true)),
                ("byIDForUpdate", SQL.byIDForUpdate, try Binds(id)),
                ("byIdempotencyKey", SQL.byIdempotencyKey, try Binds("default", "key")),
                ("stage", SQL.stage, try Binds(now, 1000)),
                ("nextDue", SQL.nextDue, try Binds(now, 1_000_000 as Int64, 100 as Int64)),
                ("claim", SQL.claim, try Binds(now, "w", 30_000_000, "default", 10)),
                ("heartbeat", SQL.heartbeat, try Binds(now, 30_000_000, [id], ["w"], [Int64(1)])),
                ("completeBatch", SQL.completeBatch, try Binds(now, [id], ["w"], [Int64(1)], ["null"], [Int64(0)])),
                ("save", SQL.save, try Binds("queued", now, 1, 3, nil as String?, nil as String?, "[]", false, nil as Timestamp?,
                                             nil as Timestamp?, nil as String?, nil as String?, nil as Timestamp?, nil as Int64?, id, "running", 1)),
                ("expiredLeases", SQL.expiredLeases, try Binds(now, 1000)),
                ("prune", SQL.prune, try Binds(now, 60_000_000, 500)),
            ]
        }
    }

    /// PostgreSQL's plan for `sql`, one line per node (for the test that forbids full scans).
    func queryPlan(_ sql: String, _ binds: Binds) async throws -> [String] {
        try await connection { connection in
            try await self.rows(connection, "EXPLAIN " + sql, binds).map { try $0[0].decode(String.self) }
        }
    }

    // MARK: - Internals

    /// `now` for a statement: the configured clock's, or NULL, which the statement turns into the
    /// database's `now()`.
    var nowParameter: Timestamp? { configuration.clock.map { Timestamp($0.now()) } }

    /// The current transaction's time: the configured clock's, or the database's `now()` (the
    /// transaction's start, the same for every statement in it).
    func now(_ connection: PostgresConnection) async throws -> Date {
        if let clock = configuration.clock { return clock.now().storedPrecision }
        return try await rows(connection, SQL.Now.self, Binds())[0][0].decode(Timestamp.self).date
    }

    private func byQueue(_ sql: String) async throws -> [QueueCounts] {
        let rows = try await connection { connection in try await self.rows(connection, sql, Binds()) }
        var byQueue: [String: [TaskState: Int]] = [:]
        for row in rows {
            if let state = TaskState(rawValue: try row[1].decode(String.self)) { byQueue[try row[0].decode(String.self), default: [:]][state] = try row[2].decode(Int.self) }
        }
        return QueueCounts.inQueueOrder(byQueue)
    }

    /// Loads one task, applies a lifecycle move to it and writes it back, in one transaction.
    private func update(_ id: TaskID, _ move: @escaping @Sendable (inout TaskRecord, Date, Double) throws -> Void) async throws -> TaskRecord {
        let unit = configuration.unitRandom()
        return announce(try await transaction { connection in
            let now = try await self.now(connection)
            var counts = CountDeltas()
            let task = try await self.move(connection, id, counts: &counts) { task in try move(&task, now, unit) }
            try await counts.flush(connection, on: self)
            return task
        })
    }

    /// Loads a task locked (`FOR UPDATE`), applies a lifecycle move and writes it back if it
    /// changed; inside the caller's transaction, so nothing else changes the row in between.
    private func move(_ connection: PostgresConnection, _ id: TaskID, counts: inout CountDeltas,
                      _ move: (inout TaskRecord) throws -> Void) async throws -> TaskRecord {
        guard var task = try await tasks(connection, SQL.byIDForUpdate, Binds(id.rawValue)).first else {
            throw SluiceError(.notFound, "no task has id \(id)")
        }
        let before = task
        try move(&task)
        if task != before { try await save(connection, task, replacing: before, counts: &counts) }
        return task
    }

    /// Writes a task's mutable columns, fenced on the state and attempt it was read with.
    private func save(_ connection: PostgresConnection, _ task: TaskRecord, replacing before: TaskRecord, counts: inout CountDeltas) async throws {
        if task.state != before.state { try before.state.checkTransition(to: task.state, task: task.id) }
        let changed = try await rows(connection, SQL.save, Binds(
            task.state.rawValue, Timestamp(task.runAt), task.attempt, task.maxAttempts, task.result?.jsonText(), task.error,
            PostgresTaskRow.encodeErrors(task.attemptErrors), task.cancelRequested, task.startedAt.map(Timestamp.init),
            task.finishedAt.map(Timestamp.init), task.worker, task.lease?.owner, task.lease.map { Timestamp($0.expiresAt) },
            task.lease?.token, task.id.rawValue, before.state.rawValue, before.attempt))
        guard changed.count == 1 else { throw SluiceError(.storage, "task \(task.id) changed underneath its update") }
        counts.move(task.queue, from: before.state, to: task.state)
    }

    /// Stages due tasks, then claims for `request`, inside the caller's transaction: one statement
    /// per queue.
    private func claim(_ connection: PostgresConnection, _ request: ClaimRequest, now: Timestamp?, counts: inout CountDeltas) async throws -> [TaskRecord] {
        guard request.limit > 0, !request.queues.isEmpty else { return [] }
        // Due tasks are claimable on time, without waiting for the leader's stager.
        try await stageDue(connection, now: now, limit: 1000, counts: &counts)
        var claimed: [TaskRecord] = []
        for queue in request.queues where claimed.count < request.limit {
            let rows = try await tasks(connection, SQL.Claim.self, Binds(
                now, request.owner, request.leaseDuration.microseconds, queue, request.limit - claimed.count))
            counts.move(queue, from: .queued, to: .running, rows.count)
            // RETURNING gives no order: restore the claim order.
            claimed += rows.sorted { ($0.priority, $1.runAt, $1.id) > ($1.priority, $0.runAt, $0.id) }
        }
        return claimed
    }

    /// Moves at most `limit` scheduled and retrying tasks whose time has come to `queued`.
    @discardableResult
    private func stageDue(_ connection: PostgresConnection, now: Timestamp?, limit: Int, counts: inout CountDeltas) async throws -> Int {
        let rows = try await rows(connection, SQL.Stage.self, Binds(now, max(1, limit)))
        for row in rows {
            if let state = TaskState(rawValue: try row[1].decode(String.self)) { counts.move(try row[0].decode(String.self), from: state, to: .queued) }
        }
        return rows.count
    }

    /// Runs `body` on a pooled connection inside BEGIN … COMMIT; rolls back when it throws.
    func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await mapErrors {
            try await client.withConnection { connection in
                _ = try await rows(connection, "BEGIN", Binds())
                do {
                    let value = try await body(connection)
                    _ = try await rows(connection, "COMMIT", Binds())
                    return value
                } catch {
                    if !connection.isClosed { _ = try? await rows(connection, "ROLLBACK", Binds()) }
                    throw error
                }
            }
        }
    }

    /// Runs `body` on a pooled connection, each statement its own transaction.
    func connection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await mapErrors { try await client.withConnection { connection in try await body(connection) } }
    }

    private func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as SluiceError {
            throw error
        } catch let error as PSQLError where error.code == .poolClosed {
            throw SluiceError(.closed, "the store is closed")
        } catch {
            throw SluiceError(.storage, "\(location): \(PostgresErrors.describe(error))")
        }
    }

    func rows(_ connection: PostgresConnection, _ sql: String, _ binds: Binds) async throws -> [PostgresRandomAccessRow] {
        try await statements.rows(PostgresQuery(unsafeSQL: sql, binds: binds.bindings), on: connection, limit: configuration.statementTimeout,
                                      place: location, logger: logger).map { $0.makeRandomAccess() }
    }

    func tasks(_ connection: PostgresConnection, _ sql: String, _ binds: Binds) async throws -> [TaskRecord] {
        try await rows(connection, sql, binds).map(PostgresTaskRow.decode)
    }

    /// A hot statement, prepared on `connection` at its first use there (see `PreparedSQL`); sent
    /// unnamed, planned at each call, behind a pooler in transaction mode (`listen` off), where a
    /// statement prepared on one server connection is unknown to the next.
    func rows<Key: PreparedSQL>(_ connection: PostgresConnection, _ key: Key.Type, _ binds: Binds, limit: Duration? = nil) async throws -> [PostgresRandomAccessRow] {
        let limit = limit ?? configuration.statementTimeout
        guard configuration.listen else {
            return try await statements.rows(PostgresQuery(unsafeSQL: Key.sql, binds: binds.bindings), on: connection, limit: limit,
                                             place: location, logger: logger).map { $0.makeRandomAccess() }
        }
        return try await statements.rows(PreparedStatement<Key>(bindings: binds.bindings), on: connection, limit: limit,
                                         place: location, logger: logger).map { $0.makeRandomAccess() }
    }

    func tasks<Key: PreparedSQL>(_ connection: PostgresConnection, _ key: Key.Type, _ binds: Binds) async throws -> [TaskRecord] {
        try await rows(connection, key, binds).map(PostgresTaskRow.decode)
    }
}

extension PostgresTaskStore.SQL {
    // The hot statements, prepared per connection (`PreparedSQL`); every parameter in them is cast.
    enum InsertBatch: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.insertBatch } }
    enum Claim: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.claim } }
    enum Stage: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.stage } }
    enum Heartbeat: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.heartbeat } }
    enum CompleteBatch: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.completeBatch } }
    enum LockInOrder: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.lockInOrder } }
    enum AddCounts: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.addCounts } }
    enum ByID: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.byID } }
    enum ByIDs: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.byIDs } }
    enum NextReady: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.nextReady } }
    enum NextDue: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.nextDue } }
    enum ReadyQueues: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.readyQueues } }
    enum Now: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.now } }
    enum Notify: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.notify } }
    enum NotifyAll: PreparedSQL { static var sql: String { PostgresTaskStore.SQL.notifyAll } }
}

extension PostgresTaskStore {
    /// Every statement the store runs, named. `$1` of a statement that takes `now` is either the
    /// configured clock's time or NULL; `coalesce($1::timestamptz, now())` then takes the database's.
    enum SQL {
        static let now = "SELECT now()"
        static let notify = "SELECT pg_notify($1::text, $2::text)"
        static let notifyAll = "SELECT count(*) FROM (SELECT pg_notify($1::text, payload) FROM unnest($2::text[]) AS payload) sent"
        /// The counter row a connection adds to (migration 0003): one of 16 per queue and state, so
        /// that writers on different connections seldom wait for each other's.
        static let countShard = "pg_backend_pid() % 16"
        static let readyQueues = "SELECT queue FROM queue_counts WHERE state = 'queued' GROUP BY queue HAVING sum(n) > 0"
        /// A batch as one statement: the columns as arrays, due times as microseconds since 1970
        /// (exact, unlike a float; 0 for none, which is "now" as any past time is), no idempotency
        /// key as '', and `$15` each task's delay in microseconds from that `now` (-1 for none: its due
        /// time `$7` then). The tasks' times are `$1` or the database's `now()`. It also adds the inserted
        /// rows to the counters (as `addCounts`, in key order) and sends the wake-ups `$14` on
        /// channel `$13` when anything was inserted. Returns what the database decided for each row
        /// inserted: id, state, due time and creation time.
        static let insertBatch = """
            WITH clock AS (SELECT coalesce($1::timestamptz, now()) AS now),
            ins AS (
                INSERT INTO tasks AS t (id, queue, kind, args, priority, state, run_at, max_attempts, timeout_ms,
                                        backoff_base_ms, backoff_cap_ms, idempotency_key, created_at)
                SELECT r.id, r.queue, r.kind, r.args::jsonb, r.priority,
                       CASE WHEN r.due > clock.now THEN 'scheduled' ELSE 'queued' END, r.due,
                       r.max_attempts, r.timeout_ms, r.backoff_base_ms, r.backoff_cap_ms, nullif(r.idempotency_key, ''), clock.now
                FROM (SELECT u.*, CASE WHEN u.delay_us >= 0 THEN clock.now + u.delay_us * interval '1 microsecond'
                                       ELSE greatest(timestamptz 'epoch' + u.run_at * interval '1 microsecond', clock.now) END AS due
                      FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[],
                                  $10::bigint[], $11::bigint[], $12::text[], $15::bigint[])
                           AS u(id, queue, kind, args, priority, run_at, max_attempts, timeout_ms, backoff_base_ms, backoff_cap_ms,
                                idempotency_key, delay_us), clock) r, clock
                ON CONFLICT DO NOTHING
                RETURNING t.id, t.queue, t.state, t.run_at, t.created_at
            ), counted AS (
                INSERT INTO queue_counts (queue, state, shard, n)
                SELECT queue, state, \(countShard), count(*) FROM ins GROUP BY 1, 2 ORDER BY 1, 2
                ON CONFLICT (queue, state, shard) DO UPDATE SET n = queue_counts.n + excluded.n
            )
            SELECT ins.id, ins.state, ins.run_at, ins.created_at,
                   (SELECT count(*) FROM (SELECT pg_notify($13::text, payload) FROM unnest($14::text[]) AS payload) sent)
            FROM ins
            """
        static let byID = "SELECT \(PostgresTaskRow.columns) FROM tasks t WHERE t.id = $1::text"
        static let byIDs = """
            SELECT \(PostgresTaskRow.columns) FROM tasks t
            WHERE t.id = ANY($1::text[]) AND (NOT $2::boolean OR t.state IN ('succeeded', 'failed', 'cancelled'))
            """
        static let byIDForUpdate = "SELECT \(PostgresTaskRow.columns) FROM tasks t WHERE t.id = $1 FOR UPDATE"
        static let byIdempotencyKey = "SELECT \(PostgresTaskRow.columns) FROM tasks t WHERE t.queue = $1 AND t.idempotency_key = $2"
        /// Scheduled and retrying tasks whose time has come, oldest first (walks `tasks_due`);
        /// rows another transaction holds are left for the next pass.
        static let stage = """
            WITH due AS (
                SELECT id, state FROM tasks
                WHERE state IN ('scheduled', 'retrying') AND run_at <= coalesce($1::timestamptz, now())
                ORDER BY run_at LIMIT $2::bigint
                FOR UPDATE SKIP LOCKED
            )
            UPDATE tasks t SET state = 'queued' FROM due WHERE t.id = due.id
            RETURNING t.queue, due.state
            """
        /// One statement per queue. The CTE walks `tasks_ready` in claim order, skips rows other
        /// claimers hold, and stops at LIMIT (inside the CTE: outside it the planner may update
        /// more rows than the limit). The token is drawn per row, positive and never 0.
        static let claim = """
            WITH ready AS (
                SELECT id FROM tasks
                WHERE state = 'queued' AND queue = $4::text
                ORDER BY priority DESC, run_at, id
                LIMIT $5::bigint
                FOR UPDATE SKIP LOCKED
            ), clock AS (SELECT coalesce($1::timestamptz, now()) AS now)
            UPDATE tasks t
            SET state = 'running', attempt = t.attempt + 1, started_at = clock.now, worker = $2::text, lease_owner = $2::text,
                lease_expires_at = clock.now + $3::bigint * interval '1 microsecond',
                lease_token = 1 + (random() * 9.2e18)::bigint
            FROM ready, clock
            WHERE t.id = ready.id
            RETURNING \(PostgresTaskRow.columns)
            """
        /// Every lease of the batch renewed in one statement; a lease missing from the answer is lost.
        /// Rows are locked in id order, as every batch that writes several tasks locks them. A row
        /// another transaction holds (the worker's own completion batch, a cancel, the rescuer) is
        /// skipped, not waited for: it is answered from the statement's snapshot, still held but
        /// renewed at the next beat. Waiting would let one busy row hold up every lease of the
        /// process until `lock_timeout` failed them all, and leases then expired on a live worker.
        static let heartbeat = """
            WITH l AS (
                SELECT * FROM unnest($3::text[], $4::text[], $5::bigint[]) AS l(id, owner, token)
            ), mine AS (
                SELECT t.id FROM tasks t JOIN l ON t.id = l.id
                WHERE t.state = 'running' AND t.lease_owner = l.owner AND t.lease_token = l.token
                ORDER BY t.id
                FOR UPDATE OF t SKIP LOCKED
            ), renewed AS (
                UPDATE tasks t SET lease_expires_at = coalesce($1::timestamptz, now()) + $2::bigint * interval '1 microsecond'
                FROM mine WHERE t.id = mine.id
                RETURNING t.id, t.cancel_requested
            )
            SELECT id, cancel_requested FROM renewed
            UNION ALL
            SELECT t.id, t.cancel_requested FROM tasks t JOIN l ON t.id = l.id
            WHERE t.state = 'running' AND t.lease_owner = l.owner AND t.lease_token = l.token
              AND NOT EXISTS (SELECT FROM mine WHERE mine.id = t.id)
            """
        /// Locks the named tasks in id order, before a batch's other statements write them.
        static let lockInOrder = "SELECT 1 FROM tasks WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
        /// Every fast-path completion of a batch, fenced by owner and token; returns what a finish
        /// notice needs (queue, kind) and the outcome's index (`ord`), not the whole task.
        static let completeBatch = """
            WITH done AS (
                SELECT t.id, c.result, c.ord FROM tasks t
                JOIN unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[]) AS c(id, owner, token, result, ord) ON t.id = c.id
                WHERE t.state = 'running' AND t.lease_owner = c.owner AND t.lease_token = c.token AND NOT t.cancel_requested
                ORDER BY t.id
                FOR UPDATE OF t
            )
            UPDATE tasks t
            SET state = 'succeeded', result = done.result::jsonb, error = NULL, finished_at = coalesce($1::timestamptz, now()), lease_owner = NULL,
                lease_expires_at = NULL, lease_token = NULL
            FROM done WHERE t.id = done.id
            RETURNING t.queue, t.kind, done.ord
            """
        static let save = """
            UPDATE tasks
            SET state = $1, run_at = $2, attempt = $3, max_attempts = $4, result = $5::jsonb, error = $6,
                attempt_errors = $7::jsonb, cancel_requested = $8, started_at = $9, finished_at = $10, worker = $11,
                lease_owner = $12, lease_expires_at = $13, lease_token = $14
            WHERE id = $15 AND state = $16 AND attempt = $17
            RETURNING 1
            """
        /// Walks `tasks_leases`; rows another transaction holds are left for the next pass.
        static let expiredLeases = """
            SELECT \(PostgresTaskRow.columns) FROM tasks t
            WHERE t.state = 'running' AND t.lease_expires_at < $1
            LIMIT $2
            FOR UPDATE SKIP LOCKED
            """
        static let prune = """
            WITH gone AS (
                SELECT id FROM tasks
                WHERE state IN ('succeeded', 'failed', 'cancelled')
                  AND finished_at < coalesce($1::timestamptz, now()) - $2::bigint * interval '1 microsecond'
                LIMIT $3
                FOR UPDATE SKIP LOCKED
            )
            DELETE FROM tasks t USING gone WHERE t.id = gone.id
            RETURNING t.queue, t.state
            """
        /// A search: at most `scan` rows after the cursor, newest first, then the filters.
        static func search(window: String, scan: String, conditions: String, limit: String) -> String {
            """
            SELECT \(PostgresTaskRow.columns) FROM (SELECT * FROM tasks t \(window) ORDER BY t.id DESC LIMIT \(scan)) t
            WHERE \(conditions) ORDER BY t.id DESC LIMIT \(limit)
            """
        }
        static let delete = "DELETE FROM tasks WHERE id = $1"
        /// The head of a queue in claim order: one seek into `tasks_ready`.
        static let nextReady = "SELECT run_at FROM tasks WHERE state = 'queued' AND queue = $1::text ORDER BY priority DESC, run_at, id LIMIT 1"
        /// The tasks due soonest, whatever their queue, and in how many seconds: `tasks_due` in
        /// order, stopped at LIMIT.
        static let nextDue = """
            SELECT queue, extract(epoch FROM run_at - coalesce($1::timestamptz, now()))::float8 FROM tasks
            WHERE state IN ('scheduled', 'retrying') AND run_at <= coalesce($1::timestamptz, now()) + $2::bigint * interval '1 microsecond'
            ORDER BY run_at LIMIT $3::bigint
            """
        /// The counters, not the tasks: a few rows whatever the table's size.
        /// The counters are sharded by connection (migration 0003): a queue and state is the sum.
        static let counts = "SELECT queue, state, sum(n)::bigint FROM queue_counts GROUP BY queue, state HAVING sum(n) <> 0"
        static let recount = "SELECT queue, state, count(*) FROM tasks GROUP BY queue, state"
        /// One transaction's counter changes, in key order (see `CountDeltas`).
        static let addCounts = """
            INSERT INTO queue_counts (queue, state, shard, n)
            SELECT queue, state, \(countShard), n FROM unnest($1::text[], $2::text[], $3::bigint[]) AS c(queue, state, n) ORDER BY 1, 2
            ON CONFLICT (queue, state, shard) DO UPDATE SET n = queue_counts.n + excluded.n
            """
        static let analyze = "ANALYZE tasks, queue_counts"
    }
}
