import CSQLite
import Foundation
import SluiceCore
import SluiceStore
import Synchronization

/// How to open a SQLite store.
public struct SQLiteStoreConfiguration: Sendable {
    /// `full` makes an acknowledged write survive power loss; `normal` may lose the last commits on
    /// power loss (never on a process crash) and is faster.
    public enum Synchronous: String, Sendable, CaseIterable {
        case full, normal
    }

    public var path: String
    public var synchronous: Synchronous = .full
    /// How long a write waits for another process's lock before failing.
    public var busyTimeout: Duration = .seconds(10)
    /// Apply pending migrations when opening (otherwise an old schema is refused).
    public var migrate = true
    /// Reader connections, each on its own thread: status reads and long-polls never queue
    /// behind one slow read.
    public var readers = 4
    public var clock: any WallClock = SystemClock()
    /// Draws backoff jitter, uniform in [0, 1].
    public var unitRandom: @Sendable () -> Double = { .random(in: 0...1) }
    /// Hear other processes' writes to the file (`WALWatch`), so that pools look for work at once
    /// rather than at their next poll: `sluice serve` and `sluice worker` do.
    public var watchOtherProcesses = false

    public init(path: String, synchronous: Synchronous = .full) {
        self.path = path
        self.synchronous = synchronous
    }
}

/// The durable store: one SQLite file in WAL mode, shared safely by a server and any number of
/// `sluice worker` processes. Writes go through one group-committing writer thread per process;
/// reads through a few reader connections of their own, which WAL never blocks.
public final class SQLiteTaskStore: TaskStore {
    public let configuration: SQLiteStoreConfiguration
    /// What opening the store migrated (`nil` when opened with `migrate = false`).
    public let migration: Migrator.Report?
    public let events = StoreEvents()
    /// Whether the next claim should skip the read-only look-ahead: set by an enqueue through this
    /// store and by a claim that found work (draining: more is likely), cleared by one that found none.
    /// Only idle polling pays the look-ahead, and it spares the write lock.
    private let expectWork = Atomic<Bool>(false)
    private let writer: SQLiteExecutor
    private let watch: WALWatch?
    private let readers: [SQLiteExecutor]
    private let nextReader = Atomic<Int>(0)
    let ids: TaskIDGenerator
    var clock: any WallClock { configuration.clock }

    /// Opens the store, refusing files that are not Sluice databases or are newer than this binary.
    public init(_ configuration: SQLiteStoreConfiguration) throws(SluiceError) {
        self.configuration = configuration
        ids = TaskIDGenerator(clock: configuration.clock)
        let path = configuration.path
        do {
            let write = try SQLiteConnection(path: path)
            try write.execute("PRAGMA busy_timeout = \(configuration.busyTimeout.milliseconds)")
            // Refuse foreign or newer files before any pragma below writes to them.
            let migrator = try Migrator()
            let version = try migrator.check(write)
            let mode = try Self.switchToWAL(write, within: configuration.busyTimeout)
            guard mode == "wal" else {
                throw SluiceError(.storage, "\(path): SQLite refused WAL mode (journal_mode is \(mode)); is the file on a network or read-only filesystem?")
            }
            try write.execute(Self.connectionPragmas(configuration.synchronous))
            migration = configuration.migrate ? try migrator.migrate(write, now: configuration.clock.now()) : nil
            if !configuration.migrate && version < migrator.latestVersion {
                throw SluiceError(.incompatibleDatabase, "\(path) has schema version \(version), this sluice needs \(migrator.latestVersion): run `sluice migrate --db \(path)`")
            }
            // Statistics for the planner, so that a grown table keeps its plans. ANALYZE samples
            // about 1,000 rows of each index instead of reading them all: it runs on the writer and
            // holds up every write while it runs, and SQLite re-analyzes a table whenever one of its
            // indexes has no statistics (an index that was empty when last analyzed, such as the
            // idempotency keys' in most files), so without the bound every new leader read the
            // whole table (half a second at 2,000,000 tasks, growing with the file).
            try write.execute("PRAGMA analysis_limit = 1000")
            try write.execute("PRAGMA optimize = 0x10002")
            // A write inside a transaction copies each page it changes into a statement journal, so
            // that it can be undone alone; past 64 KiB SQLite moves the journal to a temporary file,
            // and a drain's waves wrote every page twice, once there and once to the log. The
            // writer's transactions are bounded batches, so their journals (and temporary tables)
            // stay in memory. Set after migrating: a migration that rebuilds a large table reuses
            // freed pages that must all be journalled, 600 MB of memory for 2,100,000 tasks.
            try write.execute("PRAGMA temp_store = MEMORY")
            readers = try (0 ..< max(1, configuration.readers)).map { n in
                let read = try SQLiteConnection(path: path, create: false)
                try read.execute("PRAGMA busy_timeout = \(configuration.busyTimeout.milliseconds); PRAGMA query_only = ON")
                return SQLiteExecutor(connection: read, mode: .reader, name: "sluice-sqlite-reader-\(n)")
            }
            let writer = SQLiteExecutor(connection: write, mode: .writer, name: "sluice-sqlite-writer",
                                        syncsEveryCommit: configuration.synchronous == .full)
            self.writer = writer
            let events = self.events
            if configuration.watchOtherProcesses {
                // The watch's own connection, used on its thread only: it tells when a commit heard is visible.
                let versions = try SQLiteConnection(path: path, create: false)
                watch = WALWatch(walPath: write.walPath, name: "sluice-sqlite-watch",
                                 dataVersion: { (try? versions.scalar("PRAGMA data_version")) ?? nil },
                                 ownWrites: { (writer.inTransaction.load(ordering: .sequentiallyConsistent),
                                               writer.transactionsEnded.load(ordering: .sequentiallyConsistent)) },
                                 onForeignWrite: { events.heardForeignWrite() })
            } else {
                watch = nil
            }
        } catch let error as SQLiteError {
            throw SluiceError(.storage, error.description)
        } catch let error as SluiceError {
            throw error
        } catch {
            throw SluiceError(.storage, "\(path): \(error)")
        }
    }

    /// Pragmas for every connection that writes: durability as configured, and a page cache large
    /// enough for the hot part of the indexes (SQLite's default is 2 MB; pages are taken as used).
    public static func connectionPragmas(_ synchronous: SQLiteStoreConfiguration.Synchronous) -> String {
        "PRAGMA synchronous = \(synchronous.rawValue.uppercased()); PRAGMA foreign_keys = ON; PRAGMA cache_size = -32768"
    }

    deinit {
        watch?.stop()
        writer.close()
        readers.forEach { $0.close() }
    }

    public var longestWriteWait: Duration { configuration.busyTimeout }

    /// Writes waiting for the writer thread (for tests that need a group commit to form).
    public var pendingWrites: Int { writer.pendingCount }
    /// Other processes' writes heard so far, and every write heard (`watchOtherProcesses`).
    public var foreignWritesHeard: Int { watch?.heard.load(ordering: .relaxed) ?? 0 }
    public var writesHeard: Int { watch?.batches.load(ordering: .relaxed) ?? 0 }
    /// Writes the writer thread has taken up so far.
    public var writesTaken: Int { writer.taken.load(ordering: .relaxed) }

    /// How many write transactions this store committed, and how many operations they carried.
    public var writeStatistics: (transactions: Int, operations: Int) {
        (writer.transactions.load(ordering: .relaxed), writer.operations.load(ordering: .relaxed))
    }

    /// The PRAGMA settings in force on the writer connection (for tests and `/healthz`).
    public func pragmas() async throws -> [String: String] {
        try await write { connection in
            var values: [String: String] = [:]
            for name in ["journal_mode", "synchronous", "busy_timeout", "foreign_keys"] {
                values[name] = try Self.text(connection, "PRAGMA \(name)")
            }
            return values
        }
    }

    // MARK: - TaskStore

    public func enqueue(_ request: EnqueueRequest) async throws -> EnqueueResult {
        try await enqueue(batch: [request])[0]
    }

    public func enqueue(batch requests: [EnqueueRequest]) async throws -> [EnqueueResult] {
        let now = clock.now()
        for request in requests { try request.validate(now: now) }
        let ids = self.ids
        let clock = self.clock
        defer { expectWork.store(true, ordering: .relaxed) }
        return announce(enqueued: try await write { connection in
            let now = clock.now()
            var counts = CountDeltas()
            let results = try requests.map { request in try Self.insert(connection, request, ids: ids, now: now, counts: &counts) }
            try counts.flush(connection)
            return results
        })
    }

    /// Inserts one validated task (or finds the live task its idempotency key names) inside the
    /// caller's write transaction.
    static func insert(_ connection: SQLiteConnection, _ request: EnqueueRequest, ids: TaskIDGenerator, now: Date,
                       counts: inout CountDeltas) throws -> EnqueueResult {
        let task = TaskRecord(id: ids.next(), request: request, now: now)
        let inserted = try connection.run(SQL.insert, [
            .text(task.id.rawValue), .text(task.queue), .text(task.kind), .text(task.args.jsonText()),
            .integer(Int64(task.priority)), .text(task.state.rawValue), TaskRow.time(task.runAt),
            .integer(Int64(task.maxAttempts)), .integer(task.timeout.milliseconds),
            .integer(task.retryPolicy.base.milliseconds), .integer(task.retryPolicy.cap.milliseconds),
            TaskRow.text(task.idempotencyKey), TaskRow.time(task.createdAt),
        ])
        if inserted == 1 {
            counts.add(task.queue, task.state, 1)
            return EnqueueResult(task: task, created: true)
        }
        guard let key = task.idempotencyKey,
              let existing = try fetch(connection, SQL.byIdempotencyKey, [.text(task.queue), .text(key)]).first else {
            throw SluiceError(.storage, "task \(task.id) was not inserted and no idempotency key explains why")
        }
        try existing.checkReplay(of: request)
        return EnqueueResult(task: existing, created: false)
    }

    public func task(_ id: TaskID) async throws -> TaskRecord? {
        try await read { connection in try Self.fetch(connection, SQL.byID, [.text(id.rawValue)]).first }
    }

    public func tasks(_ ids: [TaskID], onlyFinal: Bool) async throws -> [TaskID: TaskRecord] {
        guard !ids.isEmpty else { return [:] }
        let list = SQLiteValue.text(JSONValue.array(ids.map { .string($0.rawValue) }).jsonText())
        let rows = try await read { connection in try Self.fetchStored(connection, SQL.byIDs, [list, .integer(onlyFinal ? 1 : 0)]) }
        return Dictionary(try rows.map { try $0.decode() }.map { ($0.id, $0) }) { first, _ in first }
    }

    public func list(_ filter: TaskFilter, limit: Int, after cursor: TaskID?) async throws -> TaskPage {
        let limit = max(1, limit)
        // Which rows the page may examine: after the cursor, within the id range, newest first.
        var window: [String] = []
        var windowParameters: [SQLiteValue] = []
        if let cursor { window.append("id < ?"); windowParameters.append(.text(cursor.rawValue)) }
        if let ids = filter.ids {
            window.append("id >= ? AND id <= ?")
            windowParameters += [.text(ids.lowerBound.rawValue), .text(ids.upperBound.rawValue)]
        }
        let windowWhere = window.isEmpty ? "" : "WHERE " + window.joined(separator: " AND ")
        if filter.isIDOnly {
            // Nothing to skip: the primary key gives the page directly.
            let sql = "SELECT \(TaskRow.columns) FROM tasks \(windowWhere) ORDER BY id DESC LIMIT ?"
            let frozen = windowParameters + [.integer(Int64(limit + 1))]
            return try await read { connection in
                let rows = try Self.fetch(connection, sql, frozen)
                let page = Array(rows.prefix(limit))
                return TaskPage(tasks: page, nextCursor: rows.count > limit ? page.last?.id : nil)
            }
        }
        var conditions: [String] = []
        var parameters: [SQLiteValue] = []
        if let states = filter.states {
            conditions.append("state IN (\(states.map { _ in "?" }.joined(separator: ", ")))")
            parameters += states.sorted().map { .text($0.rawValue) }
        }
        if let queue = filter.queue { conditions.append("queue = ?"); parameters.append(.text(queue)) }
        if let kind = filter.kind { conditions.append("kind = ?"); parameters.append(.text(kind)) }
        if let text = filter.argsContains { conditions.append("instr(args, ?) > 0"); parameters.append(.text(text)) }
        for field in filter.argsFields {
            conditions.append(SQL.argsFieldEquals)
            let path = SQLiteValue.text("$.\"\(field.name)\"")
            // Unquoted, only a number's or boolean's spelling: `null` or `{…}` must not match those values.
            parameters += [path, field.scalarSpelling.map(SQLiteValue.text) ?? .null, .text(field.value)]
        }
        let sql = SQL.search(window: windowWhere, conditions: conditions.joined(separator: " AND "))
        let frozen = windowParameters + [.integer(Int64(filter.scanLimit))] + parameters + [.integer(Int64(limit + 1))]
        let lastSQL = "SELECT id FROM tasks \(windowWhere) ORDER BY id DESC LIMIT 1 OFFSET ?"
        let lastParameters = windowParameters + [.integer(Int64(filter.scanLimit - 1))]
        return try await read { connection in
            let rows = try Self.fetch(connection, sql, frozen)
            let page = Array(rows.prefix(limit))
            if rows.count > limit { return TaskPage(tasks: page, nextCursor: page.last?.id) }
            // Not full: either nothing more matches, or the scan stopped at its bound.
            var lastScanned: String?
            try connection.query(lastSQL, lastParameters) { row in lastScanned = row.text(0) }
            return TaskPage(tasks: page, nextCursor: lastScanned.flatMap(TaskID.init), partial: lastScanned != nil)
        }
    }

    public func claim(queues: [String], limit: Int, owner: String, leaseDuration: Duration) async throws -> [TaskRecord] {
        guard limit > 0, !queues.isEmpty else { return [] }
        let clock = self.clock
        // An idle poll costs a read, not the write lock: only claim when something may be ready.
        if !expectWork.load(ordering: .relaxed) {
            let now = clock.now()
            let mayHaveWork = try await read { connection in
                try queues.contains { queue in
                    try connection.scalar(SQL.anyReady, [.text(queue), TaskRow.time(now)]) != nil
                }
            }
            guard mayHaveWork else { return [] }
        }
        let request = ClaimRequest(queues: queues, limit: limit, owner: owner, leaseDuration: leaseDuration)
        // Not synced: a claim a power loss undoes puts its tasks back in their queues, and the
        // process that held them stopped with the machine.
        let claimed = try await write(durable: false) { connection in
            let now = clock.now()
            var counts = CountDeltas()
            try Self.stageDue(connection, now: now, limit: 1000, counts: &counts)
            let claimed = try Self.claim(connection, request, now: now, counts: &counts)
            try counts.flush(connection)
            return claimed
        }.map { try $0.decode() }
        expectWork.store(!claimed.isEmpty, ordering: .relaxed)
        return claimed
    }

    public func heartbeat(_ leases: [TaskLease], leaseDuration: Duration) async throws -> [TaskID: LeaseStatus] {
        guard !leases.isEmpty else { return [:] }
        let clock = self.clock
        return try await write(durable: false) { connection in
            let expires = clock.now().addingTimeInterval(leaseDuration.seconds)
            var statuses: [TaskID: LeaseStatus] = [:]
            for lease in leases {
                var status = LeaseStatus.lost
                try connection.query(SQL.heartbeat, [
                    TaskRow.time(expires), .text(lease.taskID.rawValue), .text(lease.owner), .integer(lease.token),
                ]) { row in status = row.int(0) != 0 ? .cancelRequested : .held }
                statuses[lease.taskID] = status
            }
            return statuses
        }
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
        let clock = self.clock
        let units = outcomes.map { _ in configuration.unitRandom() }
        // The hot path: every completion in one fenced UPDATE, which does what `TaskRecord.complete`
        // does when no cancel is pending. One statement instead of one per task: each statement
        // with RETURNING builds a temporary table for its rows. It returns what a notice needs, not
        // the whole task (`RecordedTask`). A task named by two outcomes goes the general way with
        // both, so that each gets its own answer.
        var named: [TaskID: Int] = [:]
        for outcome in outcomes { named[outcome.lease.taskID, default: 0] += 1 }
        let batched = outcomes.compactMap { outcome -> JSONValue? in
            guard case .complete(let lease, let value) = outcome, named[lease.taskID] == 1 else { return nil }
            return .array([.string(lease.taskID.rawValue), .string(lease.owner), .int(lease.token), .string(value.jsonText())])
        }
        let completions: SQLiteValue? = batched.isEmpty ? nil : .text(JSONValue.array(batched).jsonText())
        // Claimed rows come back as stored and are decoded after the commit (`TaskRow.Stored`);
        // batched completions as the queue and kind a notice needs.
        let written = try await write { connection in
            let now = clock.now()
            var recorded: [Result<RecordedTask, SluiceError>] = []
            recorded.reserveCapacity(outcomes.count)
            var counts = CountDeltas()
            var completed: [String: (queue: String, kind: String)] = [:]
            if let completions {
                completed.reserveCapacity(batched.count)
                try connection.query(SQL.complete, [TaskRow.time(now), completions]) { row in completed[row.text(0)] = (row.text(1), row.text(2)) }
            }
            for (outcome, unit) in zip(outcomes, units) {
                do {
                    switch outcome {
                    case .complete(let lease, let value):
                        // A completion the batch refused goes the general way, which applies the
                        // rule (a pending cancel wins) or explains why not.
                        if let done = completed[lease.taskID.rawValue] {
                            counts.move(done.queue, from: .running, to: .succeeded)
                            recorded.append(.success(RecordedTask(id: lease.taskID, queue: done.queue, kind: done.kind, state: .succeeded)))
                        } else {
                            recorded.append(.success(RecordedTask(try Self.move(connection, lease.taskID) { try $0.complete(lease, result: value, now: now) })))
                        }
                    case .fail(let lease, let failure):
                        recorded.append(.success(RecordedTask(try Self.move(connection, lease.taskID) { try $0.fail(lease, failure: failure, now: now, unit: unit) })))
                    }
                } catch let error as SluiceError where [.leaseLost, .notFound, .invalidTransition].contains(error.code) {
                    recorded.append(.failure(error))
                }
            }
            if !claims.isEmpty { try Self.stageDue(connection, now: now, limit: 1000, counts: &counts) }
            let claimed = try claims.map { try Self.claim(connection, $0, now: now, counts: &counts) }
            try counts.flush(connection)
            return (recorded: recorded, claimed: claimed)
        }
        let result = RecordResult(recorded: written.recorded, claimed: try written.claimed.map { try $0.map { try $0.decode() } })
        announce(finished: result.recorded.compactMap { try? $0.get() })
        if !claims.isEmpty { expectWork.store(result.claimed.contains { !$0.isEmpty }, ordering: .relaxed) }
        return result
    }

    public func release(_ leases: [TaskLease]) async throws {
        let clock = self.clock
        try await write { connection in
            for lease in leases {
                // A lease already lost (or a task gone) has nothing to hand back; a failed write is an
                // error (the caller must not think the task went back to its queue).
                do {
                    _ = try Self.move(connection, lease.taskID) { task in try task.release(lease, now: clock.now()) }
                } catch let error as SluiceError where [.leaseLost, .notFound, .invalidTransition].contains(error.code) {
                    continue
                }
            }
        }
    }

    public func cancel(_ id: TaskID) async throws -> TaskRecord {
        try await update(id) { task, now, _ in try task.requestCancel(now: now) }
    }

    public func retry(_ id: TaskID) async throws -> TaskRecord {
        try await update(id) { task, now, _ in try task.retryByHand(now: now) }
    }

    public func nextReady(in queues: [String]) async throws -> [String: Date] {
        try await read { connection in
            var heads: [String: Date] = [:]
            for queue in queues {
                try connection.query(SQL.nextReady, [.text(queue)]) { row in heads[queue] = Date(microsecondsSince1970: row.int(0)) }
            }
            return heads
        }
    }

    public func nextDue(in queues: [String], within horizon: Duration) async throws -> Duration? {
        let now = clock.now().microsecondsSince1970
        let end = now + horizon.microseconds
        return try await read { connection in
            var soonest: [(queue: String, dueIn: Double)] = []
            try connection.query(SQL.nextDue, [.integer(end), .integer(Int64(NextDue.lookLimit))]) { row in
                soonest.append((row.text(0), Double(row.int(1) - now) / 1_000_000))
            }
            return NextDue.answer(soonest, in: queues)
        }
    }

    public func delete(_ id: TaskID) async throws -> TaskRecord {
        try await write { connection in
            guard let task = try Self.fetch(connection, SQL.byID, [.text(id.rawValue)]).first else {
                throw SluiceError(.notFound, "no task has id \(id)")
            }
            try task.checkDeletable()
            _ = try connection.run(SQL.delete, [.text(id.rawValue), .text(task.state.rawValue)])
            var counts = CountDeltas()
            counts.add(task.queue, task.state, -1)
            try counts.flush(connection)
            return task
        }
    }

    public func stageDue(limit: Int) async throws -> Int {
        let clock = self.clock
        return try await write { connection in
            var counts = CountDeltas()
            let staged = try Self.stageDue(connection, now: clock.now(), limit: limit, counts: &counts)
            try counts.flush(connection)
            return staged
        }
    }

    public func rescueExpiredLeases(limit: Int) async throws -> RescueReport {
        let clock = self.clock
        let (report, finished) = try await write { connection in
            let now = clock.now()
            var report = RescueReport()
            var finished: [TaskRecord] = []
            for var task in try Self.fetch(connection, SQL.expiredLeases, [TaskRow.time(now), .integer(Int64(max(1, limit)))]) {
                let before = task
                try task.expireLease(now: now)
                try Self.save(connection, task, replacing: before)
                if task.state.isFinal { finished.append(task) }
                switch task.state {
                case .queued: report.requeued.append(task.id)
                case .failed: report.failed.append(task.id)
                default: report.cancelled.append(task.id)
                }
            }
            return (report, finished)
        }
        announce(finished: finished.map(RecordedTask.init))
        return report
    }

    public func prune(finishedBefore retention: Duration, limit: Int) async throws -> Int {
        let cutoff = clock.now().addingTimeInterval(-retention.seconds)
        var total = 0
        // Small transactions, so that pruning a large backlog never holds the write lock for long.
        while total < limit {
            let batch = min(500, limit - total)
            let deleted = try await write { connection in
                var counts = CountDeltas()
                var deleted = 0
                try connection.query(SQL.prune, [TaskRow.time(cutoff), .integer(Int64(batch))]) { row in
                    deleted += 1
                    if let state = TaskState(rawValue: row.text(1)) { counts.add(row.text(0), state, -1) }
                }
                try counts.flush(connection)
                return deleted
            }
            total += deleted
            if deleted < batch { break }
        }
        return total
    }

    public func counts() async throws -> [QueueCounts] {
        try await read { connection in
            var byQueue: [String: [TaskState: Int]] = [:]
            try connection.query(SQL.counts) { row in
                if let state = TaskState(rawValue: row.text(1)) { byQueue[row.text(0), default: [:]][state] = Int(row.int(2)) }
            }
            return QueueCounts.inQueueOrder(byQueue)
        }
    }

    /// Counts by queue and state taken from the tasks themselves (a full scan): for tests that
    /// check the counters, never for a hot path.
    public func recount() async throws -> [QueueCounts] {
        try await read { connection in
            var byQueue: [String: [TaskState: Int]] = [:]
            try connection.query(SQL.recount) { row in
                if let state = TaskState(rawValue: row.text(1)) { byQueue[row.text(0), default: [:]][state] = Int(row.int(2)) }
            }
            return QueueCounts.inQueueOrder(byQueue)
        }
    }

    /// Refreshes the planner's statistics; maintenance runs it now and then.
    public func optimize() async throws {
        try await write { connection in try connection.execute("PRAGMA optimize") }
    }

    /// The statements that run on every claim, outcome, heartbeat, status read and maintenance
    /// pass: none may scan `tasks` (a test checks their plans).
    public static let hotStatements: [(name: String, sql: String)] = [
        ("nextReady", SQL.nextReady), ("nextDue", SQL.nextDue),
        ("byID", SQL.byID), ("byIDs", SQL.byIDs), ("byIdempotencyKey", SQL.byIdempotencyKey), ("due", SQL.due), ("stage", SQL.stage),
        ("claim", SQL.claim), ("anyReady", SQL.anyReady), ("heartbeat", SQL.heartbeat), ("complete", SQL.complete),
        ("save", SQL.save), ("expiredLeases", SQL.expiredLeases), ("prune", SQL.prune), ("counts", SQL.counts),
        ("addCount", SQL.addCount), ("acquireLeadership", SQL.acquireLeadership),
    ]

    /// SQLite's plan for `sql`, one line per step (for the test that forbids full scans).
    public func queryPlan(_ sql: String, _ parameters: [SQLiteValue]) async throws -> [String] {
        try await read { connection in
            var lines: [String] = []
            try connection.query("EXPLAIN QUERY PLAN " + sql, parameters) { row in lines.append(row.text(3)) }
            return lines
        }
    }

    // MARK: - Internals

    /// Loads one task, applies a lifecycle move to it and writes it back, in one write transaction.
    private func update(_ id: TaskID, _ move: @escaping @Sendable (inout TaskRecord, Date, Double) throws -> Void) async throws -> TaskRecord {
        let clock = self.clock
        let unit = configuration.unitRandom()
        return announce(try await write { connection in
            try Self.move(connection, id) { task in try move(&task, clock.now(), unit) }
        })
    }

    /// Loads a task, applies a lifecycle move and writes it back if it changed; inside the caller's
    /// write transaction, so nothing else changes the row in between.
    private static func move(_ connection: SQLiteConnection, _ id: TaskID, _ move: (inout TaskRecord) throws -> Void) throws -> TaskRecord {
        guard var task = try fetch(connection, SQL.byID, [.text(id.rawValue)]).first else {
            throw SluiceError(.notFound, "no task has id \(id)")
        }
        let before = task
        try move(&task)
        if task != before { try save(connection, task, replacing: before) }
        return task
    }

    /// Runs `body` in a write transaction. `durable: false` is for bookkeeping that a power loss
    /// may undo without harm (claims, lease and worker heartbeats, leadership): its commit skips
    /// the fsync, and the next durable commit's fsync covers it.
    func write<T: Sendable>(durable: Bool = true, _ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await Self.mapErrors { try await writer.perform(durable: durable, body) }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        let reader = readers[nextReader.wrappingAdd(1, ordering: .relaxed).oldValue % readers.count]
        return try await Self.mapErrors { try await reader.perform(body) }
    }

    /// Claims for `request` inside the caller's write transaction, which stages due tasks first, so
    /// that they are claimable on time without waiting for the leader's stager.
    private static func claim(_ connection: SQLiteConnection, _ request: ClaimRequest, now: Date, counts: inout CountDeltas) throws -> [TaskRow.Stored] {
        guard request.limit > 0, !request.queues.isEmpty else { return [] }
        let expires = now.addingTimeInterval(request.leaseDuration.seconds)
        var claimed: [TaskRow.Stored] = []
        for queue in request.queues where claimed.count < request.limit {
            let rows = try fetchStored(connection, SQL.claim, [
                TaskRow.time(now), .text(request.owner), TaskRow.time(expires), .text(queue), .integer(Int64(request.limit - claimed.count)),
            ], expected: request.limit - claimed.count)
            counts.move(queue, from: .queued, to: .running, rows.count)
            // RETURNING gives no order: restore the claim order.
            claimed += rows.sorted { ($0.priority, $1.runAt, $1.id) > ($1.priority, $0.runAt, $0.id) }
        }
        return claimed
    }

    /// Moves at most `limit` scheduled and retrying tasks whose time has come to `queued`.
    @discardableResult
    private static func stageDue(_ connection: SQLiteConnection, now: Date, limit: Int, counts: inout CountDeltas) throws -> Int {
        var due: [(id: String, queue: String, state: TaskState)] = []
        try connection.query(SQL.due, [TaskRow.time(now), .integer(Int64(limit))]) { row in
            due.append((row.text(0), row.text(1), TaskState(rawValue: row.text(2)) ?? .scheduled))
        }
        for task in due {
            try connection.run(SQL.stage, [.text(task.id)])
            counts.move(task.queue, from: task.state, to: .queued)
        }
        return due.count
    }

    private static func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as SQLiteError {
            throw SluiceError(.storage, error.advice.map { "\($0): \(error.description)" } ?? error.description)
        } catch is SQLiteStoreClosed {
            throw SluiceError(.closed, "the store is closed")
        }
    }

    /// The rows as stored; `expected`, the most the caller may get, spares growing the array on the
    /// writer thread (up to a bound: an idle pool's claim of many slots usually finds nothing).
    static func fetchStored(_ connection: SQLiteConnection, _ sql: String, _ parameters: [SQLiteValue], expected: Int = 0) throws -> [TaskRow.Stored] {
        var rows: [TaskRow.Stored] = []
        rows.reserveCapacity(min(expected, 256))
        try connection.query(sql, parameters) { row in rows.append(TaskRow.Stored(row)) }
        return rows
    }

    static func fetch(_ connection: SQLiteConnection, _ sql: String, _ parameters: [SQLiteValue]) throws -> [TaskRecord] {
        try fetchStored(connection, sql, parameters).map { try $0.decode() }
    }

    /// Writes a task's mutable columns, fenced on the state and attempt it was read with.
    private static func save(_ connection: SQLiteConnection, _ task: TaskRecord, replacing before: TaskRecord) throws {
        try before.state.checkTransitionOrStay(to: task.state, task: task.id)
        let changed = try connection.run(SQL.save, [
            .text(task.state.rawValue), TaskRow.time(task.runAt), .integer(Int64(task.attempt)),
            .integer(Int64(task.maxAttempts)), TaskRow.text(task.result?.jsonText()), TaskRow.text(task.error),
            .text(TaskRow.encodeErrors(task.attemptErrors)), .integer(task.cancelRequested ? 1 : 0),
            TaskRow.time(task.startedAt), TaskRow.time(task.finishedAt), TaskRow.text(task.worker),
            TaskRow.text(task.lease?.owner), TaskRow.time(task.lease?.expiresAt), task.lease.map { .integer($0.token) } ?? .null,
            .text(task.id.rawValue), .text(before.state.rawValue), .integer(Int64(before.attempt)),
        ])
        guard changed == 1 else { throw SluiceError(.storage, "task \(task.id) changed underneath its update") }
        var counts = CountDeltas()
        counts.move(task.queue, from: before.state, to: task.state)
        try counts.flush(connection)
    }

    /// `PRAGMA journal_mode = WAL`, tried again while another process holds the file's lock (two
    /// processes opening a new file at once): the switch answers SQLITE_BUSY at once, without
    /// waiting out the busy timeout as other statements do.
    private static func switchToWAL(_ connection: SQLiteConnection, within timeout: Duration) throws(SQLiteError) -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                return try text(connection, "PRAGMA journal_mode = WAL")
            } catch where (error.code == SQLITE_BUSY || error.code == SQLITE_LOCKED) && ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
    }

    private static func text(_ connection: SQLiteConnection, _ sql: String) throws(SQLiteError) -> String {
        var value = ""
        try connection.query(sql) { row in value = row.text(0) }
        return value
    }

    /// Every statement the store runs, named.
    enum SQL {
        static let insert = """
            INSERT INTO tasks (id, queue, kind, args, priority, state, run_at, max_attempts, timeout_ms,
                               backoff_base_ms, backoff_cap_ms, idempotency_key, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT DO NOTHING
            """
        static let byID = "SELECT \(TaskRow.columns) FROM tasks WHERE id = ?"
        /// Many tasks by id, the ids given as a JSON array: one primary-key seek each; only the
        /// final ones when ?2 is 1.
        static let byIDs = """
            SELECT \(TaskRow.columns) FROM tasks WHERE id IN (SELECT value FROM json_each(?1))
              AND (?2 = 0 OR state = 'succeeded' OR state = 'failed' OR state = 'cancelled')
            """
        static let byIdempotencyKey = "SELECT \(TaskRow.columns) FROM tasks WHERE queue = ? AND idempotency_key = ?"
        /// Scheduled and retrying tasks whose time has come, oldest first (walks `tasks_due`).
        static let due = """
            SELECT id, queue, state FROM tasks WHERE state IN ('scheduled', 'retrying') AND run_at <= ?1 ORDER BY run_at LIMIT ?2
            """
        static let stage = "UPDATE tasks SET state = 'queued' WHERE id = ?1 AND state IN ('scheduled', 'retrying')"
        /// One statement per queue: the subquery walks `tasks_ready` in claim order and stops at LIMIT.
        /// The token is drawn per row; it is positive and never 0.
        static let claim = """
            UPDATE tasks
            SET state = 'running', attempt = attempt + 1, started_at = ?1, worker = ?2,
                lease_owner = ?2, lease_expires_at = ?3, lease_token = (random() & 9223372036854775807) | 1
            WHERE id IN (SELECT id FROM tasks WHERE state = 'queued' AND queue = ?4
                         ORDER BY priority DESC, run_at, id LIMIT ?5)
            RETURNING \(TaskRow.columns)
            """
        /// Whether a queue has a task to claim now (ready, or scheduled/retrying and due).
        /// Whether a claim may find work: a ready task of the queue, or a due task of any queue (the
        /// claim stages up to 1,000 due tasks, whatever their queue). Testing the queue of due tasks
        /// too walked every due task of every other queue, one by one, at every idle poll: after a
        /// fan-out of 200,000 tasks due at once, until the stager had moved them all.
        static let anyReady = """
            SELECT 1 WHERE EXISTS (SELECT 1 FROM tasks WHERE state = 'queued' AND queue = ?1)
                OR EXISTS (SELECT 1 FROM tasks WHERE state IN ('scheduled', 'retrying') AND run_at <= ?2)
            """
        static let heartbeat = """
            UPDATE tasks SET lease_expires_at = ?
            WHERE id = ? AND state = 'running' AND lease_owner = ? AND lease_token = ?
            RETURNING cancel_requested
            """
        /// Completes a batch: ?2 is a JSON array of [task id, lease owner, lease token, result as JSON text].
        /// `+tasks.state` keeps `tasks_leases` out of the plan: with statistics that say few tasks
        /// run, the planner would otherwise walk every running task for each completion. It returns
        /// what a finish notice needs: RETURNING copies its rows into a temporary table first.
        static let complete = """
            UPDATE tasks
            SET state = 'succeeded', result = json_extract(done.value, '$[3]'), error = NULL, finished_at = ?1,
                lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL
            FROM json_each(?2) AS done
            WHERE tasks.id = json_extract(done.value, '$[0]') AND +tasks.state = 'running'
                AND tasks.lease_owner = json_extract(done.value, '$[1]') AND tasks.lease_token = json_extract(done.value, '$[2]')
                AND tasks.cancel_requested = 0
            RETURNING id, queue, kind
            """
        static let save = """
            UPDATE tasks
            SET state = ?, run_at = ?, attempt = ?, max_attempts = ?, result = ?, error = ?, attempt_errors = ?,
                cancel_requested = ?, started_at = ?, finished_at = ?, worker = ?, lease_owner = ?, lease_expires_at = ?,
                lease_token = ?
            WHERE id = ? AND state = ? AND attempt = ?
            """
        /// Walks `tasks_leases` from the oldest expiry; no ORDER BY, which would make it scan.
        static let expiredLeases = "SELECT \(TaskRow.columns) FROM tasks WHERE state = 'running' AND lease_expires_at < ? LIMIT ?"
        /// Walks `tasks_finished`, whose predicate it spells the same way (see migration 0006).
        static let prune = """
            DELETE FROM tasks WHERE id IN (
                SELECT id FROM tasks WHERE (state = 'succeeded' OR state = 'failed' OR state = 'cancelled') AND finished_at < ? LIMIT ?)
            RETURNING queue, state
            """
        /// A search: at most `scanLimit` rows after the cursor, newest first, then the filters.
        static func search(window: String, conditions: String) -> String {
            """
            SELECT \(TaskRow.columns) FROM (SELECT * FROM tasks \(window) ORDER BY id DESC LIMIT ?)
            WHERE \(conditions) ORDER BY id DESC LIMIT ?
            """
        }
        /// `args.NAME=VALUE`: the field's JSON text is VALUE (when spelled as a number or boolean;
        /// else NULL, which matches nothing) or VALUE quoted (a string). One parse of `args` per row:
        /// a search may test 10,000 of them.
        static let argsFieldEquals = "(args -> ?) IN (?, json_quote(?))"
        static let delete = "DELETE FROM tasks WHERE id = ? AND state = ?"
        /// The head of a queue in claim order: one seek into `tasks_ready`.
        static let nextReady = "SELECT run_at FROM tasks WHERE state = 'queued' AND queue = ? ORDER BY priority DESC, run_at, id LIMIT 1"
        /// The tasks due soonest, whatever their queue: `tasks_due` in order, stopped at LIMIT.
        static let nextDue = "SELECT queue, run_at FROM tasks WHERE state IN ('scheduled', 'retrying') AND run_at <= ?1 ORDER BY run_at LIMIT ?2"
        /// The counters, not the tasks: a few rows whatever the table's size.
        static let counts = "SELECT queue, state, n FROM queue_counts WHERE n <> 0"
        static let recount = "SELECT queue, state, count(*) FROM tasks GROUP BY queue, state"
        static let addCount = """
            INSERT INTO queue_counts (queue, state, n) VALUES (?1, ?2, ?3)
            ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n
            """
    }
}

extension SQLiteTaskStore: WorkerDirectory {
    public func recordWorker(_ worker: WorkerInfo) async throws {
        let pools = String(decoding: try JSONCoders.encoder.encode(worker.pools), as: UTF8.self)
        let kinds = String(decoding: try JSONCoders.encoder.encode(worker.kinds), as: UTF8.self)
        let clock = self.clock
        try await write(durable: false) { connection in
            try connection.run(SQL.recordWorker, [
                .text(worker.id), .text(worker.host), .integer(Int64(worker.pid)), TaskRow.time(worker.startedAt),
                TaskRow.time(clock.now()), .text(pools), .text(kinds),
            ])
            // Forget processes silent for a day, so the table does not grow without bound.
            try connection.run(SQL.forgetWorkers, [TaskRow.time(clock.now().addingTimeInterval(-86_400))])
        }
    }

    public func workers(seenWithin window: Duration) async throws -> [WorkerInfo] {
        let cutoff = clock.now().addingTimeInterval(-window.seconds)
        return try await read { connection in
            var workers: [WorkerInfo] = []
            try connection.query(SQL.workers, [TaskRow.time(cutoff)]) { row in
                let pools = try JSONCoders.decoder.decode([PoolCapacity].self, from: Data(row.text(5).utf8))
                let kinds = try JSONCoders.decoder.decode([String].self, from: Data(row.text(6).utf8))
                workers.append(WorkerInfo(id: row.text(0), host: row.text(1), pid: Int(row.int(2)),
                                          startedAt: Date(microsecondsSince1970: row.int(3)),
                                          heartbeatAt: Date(microsecondsSince1970: row.int(4)), pools: pools, kinds: kinds))
            }
            return workers
        }
    }

    public func removeWorker(_ id: String) async throws {
        _ = try await write { connection in try connection.run("DELETE FROM workers WHERE id = ?", [.text(id)]) }
    }

    public func savePoolSetting(_ setting: PoolSetting) async throws {
        let now = clock.now()
        _ = try await write { connection in
            try connection.run(SQL.savePoolSetting, [
                .text(setting.pool), .text(setting.worker ?? "*"),
                setting.concurrency.map { .integer(Int64($0)) } ?? .null,
                setting.autoscale.map { .integer(Int64($0.min)) } ?? .null,
                setting.autoscale.map { .integer(Int64($0.max)) } ?? .null,
                TaskRow.time(now),
            ])
        }
    }

    public func poolSettings() async throws -> [PoolSetting] {
        try await read { connection in
            var settings: [PoolSetting] = []
            try connection.query(SQL.poolSettings) { row in
                let worker = row.text(1)
                settings.append(PoolSetting(
                    pool: row.text(0), worker: worker == "*" ? nil : worker, concurrency: row.optionalInt(2).map { Int($0) },
                    autoscale: row.optionalInt(3).map { AutoscaleRange(min: Int($0), max: Int(row.int(4))) },
                    updatedAt: Date(microsecondsSince1970: row.int(5))))
            }
            return settings
        }
    }
}

extension SQLiteTaskStore {
    public func setQueuePaused(_ queue: String, _ paused: Bool) async throws {
        let clock = self.clock
        _ = try await write { connection in
            try connection.run(paused ? SQL.pauseQueue : SQL.resumeQueue, paused ? [.text(queue), TaskRow.time(clock.now())] : [.text(queue)])
        }
    }

    public func pausedQueues() async throws -> Set<String> {
        try await read { connection in
            var queues = Set<String>()
            try connection.query(SQL.pausedQueues) { row in queues.insert(row.text(0)) }
            return queues
        }
    }

    public func acquireLeadership(_ name: String, owner: String, for duration: Duration) async throws -> Bool {
        let clock = self.clock
        return try await write(durable: false) { connection in
            let now = clock.now()
            return try connection.scalar(SQL.acquireLeadership, [
                .text(name), .text(owner), TaskRow.time(now.addingTimeInterval(duration.seconds)), TaskRow.time(now),
            ]) != nil
        }
    }

    public func resignLeadership(_ name: String, owner: String) async throws {
        _ = try await write { connection in try connection.run(SQL.resignLeadership, [.text(name), .text(owner)]) }
    }

    public func leader(_ name: String) async throws -> Leadership? {
        let now = clock.now()
        return try await read { connection in
            var leader: Leadership?
            try connection.query(SQL.leader, [.text(name), TaskRow.time(now)]) { row in
                leader = Leadership(name: name, owner: row.text(0), expiresAt: Date(microsecondsSince1970: row.int(1)))
            }
            return leader
        }
    }
}

extension SQLiteTaskStore.SQL {
    /// Takes the lease when free or expired, renews it when ours; returns a row only if ours now.
    static let acquireLeadership = """
        INSERT INTO leadership (name, owner, expires_at, elected_at) VALUES (?1, ?2, ?3, ?4)
        ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,
            elected_at = CASE WHEN leadership.owner = excluded.owner THEN leadership.elected_at ELSE excluded.elected_at END
        WHERE leadership.owner = excluded.owner OR leadership.expires_at <= ?4
        RETURNING 1
        """
    static let resignLeadership = "DELETE FROM leadership WHERE name = ? AND owner = ?"
    static let pauseQueue = "INSERT INTO paused_queues (queue, paused_at) VALUES (?, ?) ON CONFLICT (queue) DO NOTHING"
    static let resumeQueue = "DELETE FROM paused_queues WHERE queue = ?"
    static let pausedQueues = "SELECT queue FROM paused_queues"
    static let leader = "SELECT owner, expires_at FROM leadership WHERE name = ? AND expires_at > ?"
    static let recordWorker = """
        INSERT INTO workers (id, host, pid, started_at, heartbeat_at, pools, kinds) VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, pools = excluded.pools, kinds = excluded.kinds,
            started_at = CASE WHEN workers.host = excluded.host AND workers.pid = excluded.pid THEN workers.started_at ELSE excluded.started_at END,
            host = excluded.host, pid = excluded.pid
        """
    static let forgetWorkers = "DELETE FROM workers WHERE heartbeat_at < ?"
    static let workers = "SELECT id, host, pid, started_at, heartbeat_at, pools, kinds FROM workers WHERE heartbeat_at >= ? ORDER BY id"
    static let savePoolSetting = """
        INSERT INTO pool_settings (pool, worker, concurrency, autoscale_min, autoscale_max, updated_at) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (pool, worker) DO UPDATE SET concurrency = excluded.concurrency, autoscale_min = excluded.autoscale_min,
            autoscale_max = excluded.autoscale_max, updated_at = excluded.updated_at
        """
    static let poolSettings = "SELECT pool, worker, concurrency, autoscale_min, autoscale_max, updated_at FROM pool_settings ORDER BY pool, worker"
}

extension TaskState {
    /// Like `checkTransition`, but staying in the same state (a heartbeat, a cancel request) is fine.
    func checkTransitionOrStay(to next: TaskState, task: TaskID) throws(SluiceError) {
        if next != self { try checkTransition(to: next, task: task) }
    }
}
