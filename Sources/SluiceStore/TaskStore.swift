import Foundation
import SluiceCore

/// Filters for listing and searching tasks; `nil` means any.
public struct TaskFilter: Sendable, Hashable {
    public var states: Set<TaskState>?
    public var queue: String?
    public var kind: String?
    /// Ids within this range: an id prefix, or a creation-time range (ids sort by creation).
    public var ids: ClosedRange<TaskID>?
    /// A substring of the args' JSON text.
    public var argsContains: String?
    /// Top-level args fields and the value each must have, compared as text: a string's value, or a
    /// number's or boolean's JSON spelling as stored (`42`, `2.5`, `3.0`, `true`). Null, objects and
    /// arrays match nothing. Every store follows this rule.
    public var argsFields: [ArgsField] = []

    /// One `args.NAME=VALUE` condition.
    public struct ArgsField: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }

        /// `value` when it is spelled as a JSON number or boolean, so that a number or boolean field
        /// may match it; `nil` when only a string can.
        public var scalarSpelling: String? {
            if value == "true" || value == "false" { return value }
            return value.wholeMatch(of: /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/) != nil ? value : nil
        }

        /// Whether a field holding `field` passes.
        public func matches(_ field: JSONValue) -> Bool {
            switch field {
            case .string(let text): text == value
            case .int, .double, .bool: scalarSpelling != nil && TaskFilter.text(of: field) == value
            case .null, .array, .object: false
            }
        }

        /// Field names the stores accept: letters, digits, `_` and `-` (they go into a JSON path).
        public static func isValidName(_ name: String) -> Bool {
            !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "-" }
                && name.unicodeScalars.allSatisfy(\.isASCII)
        }
    }

    /// How many rows one page may examine when the filter needs more than the id order: a search
    /// with few matches in a million tasks answers a partial page with a cursor instead of scanning all.
    public static let defaultScanLimit = 10_000
    /// This filter's bound on examined rows (tests lower it).
    public var scanLimit = TaskFilter.defaultScanLimit

    public init(states: Set<TaskState>? = nil, queue: String? = nil, kind: String? = nil, ids: ClosedRange<TaskID>? = nil,
                argsContains: String? = nil, argsFields: [ArgsField] = []) {
        self.states = states
        self.queue = queue
        self.kind = kind
        self.ids = ids
        self.argsContains = argsContains
        self.argsFields = argsFields
    }

    /// Whether the filter needs nothing but the id order (no row has to be examined and skipped).
    public var isIDOnly: Bool { states == nil && queue == nil && kind == nil && argsContains == nil && argsFields.isEmpty }

    /// Whether the filter has no condition at all, and so matches every task.
    public var matchesEverything: Bool { isIDOnly && ids == nil }

    /// Whether `task` passes the filter.
    public func matches(_ task: TaskRecord) -> Bool {
        guard (states?.contains(task.state) ?? true) && (queue.map { $0 == task.queue } ?? true)
            && (kind.map { $0 == task.kind } ?? true) && (ids.map { $0.contains(task.id) } ?? true) else { return false }
        if let argsContains, !String(decoding: task.args.jsonBytes(), as: UTF8.self).contains(argsContains) { return false }
        for field in argsFields {
            guard let value = task.args[field.name], field.matches(value) else { return false }
        }
        return true
    }

    /// A field's value as `args.NAME=VALUE` compares it: a string's value, or a number's or
    /// boolean's JSON text as the stores hold it (`3.0` stays `3.0`).
    public static func text(of value: JSONValue) -> String? {
        switch value {
        case .string(let text): text
        case .int, .double, .bool: String(decoding: value.jsonBytes(), as: UTF8.self)
        default: nil
        }
    }
}

/// One page of tasks, newest first, and the cursor of the next page (`nil` on the last).
public struct TaskPage: Sendable, Hashable {
    public var tasks: [TaskRecord]
    public var nextCursor: TaskID?
    /// The page stopped at the filter's `scanLimit` examined rows before it was full: more may match
    /// after `nextCursor`.
    public var partial: Bool

    public init(tasks: [TaskRecord], nextCursor: TaskID?, partial: Bool = false) {
        self.tasks = tasks
        self.nextCursor = nextCursor
        self.partial = partial
    }
}

/// How many tasks of one queue are in each state.
public struct QueueCounts: Sendable, Hashable {
    public var queue: String
    public var counts: [TaskState: Int]

    public init(queue: String, counts: [TaskState: Int]) {
        self.queue = queue
        self.counts = counts
    }

    /// One entry per queue of `byQueue`, in queue order: what every store's `counts()` answers.
    public static func inQueueOrder(_ byQueue: [String: [TaskState: Int]]) -> [QueueCounts] {
        byQueue.sorted { $0.key < $1.key }.map { QueueCounts(queue: $0.key, counts: $0.value) }
    }

    /// A pool's backlog in `counts`: the ready tasks of its `queues` and those waiting for a time.
    /// A paused queue's ready tasks wait for the operator, not for a slot: they are left out.
    public static func backlog(of queues: [String], in counts: [QueueCounts], paused: Set<String>) -> (waiting: Int, scheduled: Int) {
        counts.filter { queues.contains($0.queue) }.reduce(into: (waiting: 0, scheduled: 0)) { total, queue in
            if !paused.contains(queue.queue) { total.waiting += queue.counts[.queued] ?? 0 }
            total.scheduled += (queue.counts[.scheduled] ?? 0) + (queue.counts[.retrying] ?? 0)
        }
    }
}

/// What a heartbeat learned about one lease.
public enum LeaseStatus: Sendable, Hashable {
    /// Renewed; or, in a store whose heartbeat skips rows another transaction holds (PostgreSQL),
    /// still ours and renewed by the next beat.
    case held
    /// As `held`, and someone asked to cancel the task: stop it.
    case cancelRequested
    /// No longer ours (expired and recovered, or finished): stop and do not report.
    case lost
}

/// What a rescue pass did with expired leases.
public struct RescueReport: Sendable, Hashable {
    public var requeued: [TaskID] = []
    public var failed: [TaskID] = []
    public var cancelled: [TaskID] = []

    public init(requeued: [TaskID] = [], failed: [TaskID] = [], cancelled: [TaskID] = []) {
        self.requeued = requeued
        self.failed = failed
        self.cancelled = cancelled
    }

    public var total: Int { requeued.count + failed.count + cancelled.count }
}

/// One attempt's outcome, as a worker reports it to the store the task came from.
public enum TaskOutcome: Sendable, Hashable {
    case complete(TaskLease, JSONValue)
    case fail(TaskLease, TaskFailure)

    /// A success with `result`, or, when the result cannot be stored (it holds a NUL character,
    /// which PostgreSQL refuses, or nests too deep to be read back), a failure that says so and is
    /// not retried: a retry would return it again.
    public static func completed(_ lease: TaskLease, _ result: JSONValue) -> TaskOutcome {
        switch result.unstorable(nesting: JSONValue.maxNesting) {
        case nil: .complete(lease, result)
        case .nul?: .fail(lease, TaskFailure(Self.nulResultMessage, disposition: .discard))
        case .tooDeep?: .fail(lease, TaskFailure(Self.deepResultMessage, disposition: .discard))
        }
    }

    private static let nulResultMessage = "the result holds the NUL character (\\u0000), which cannot be stored; return binary data as base64"
    private static let deepResultMessage = "the result nests arrays and objects more than \(JSONValue.maxNesting) levels deep, which cannot be stored"

    /// The lease the outcome is fenced by.
    public var lease: TaskLease {
        switch self {
        case .complete(let lease, _), .fail(let lease, _): lease
        }
    }
}

/// A claim to make in the same transaction as a batch of outcomes: a pool's free slots.
public struct ClaimRequest: Sendable, Hashable {
    public var queues: [String]
    public var limit: Int
    public var owner: String
    public var leaseDuration: Duration

    public init(queues: [String], limit: Int, owner: String, leaseDuration: Duration) {
        self.queues = queues
        self.limit = limit
        self.owner = owner
        self.leaseDuration = leaseDuration
    }
}

/// What `record(_:thenClaim:)` did: what each outcome left its task as, or why it was refused (a
/// lost lease), in order, and the tasks claimed for each claim request, in order.
public struct RecordResult: Sendable {
    public var recorded: [Result<RecordedTask, SluiceError>]
    public var claimed: [[TaskRecord]]

    public init(recorded: [Result<RecordedTask, SluiceError>], claimed: [[TaskRecord]]) {
        self.recorded = recorded
        self.claimed = claimed
    }
}

/// The storage contract: every verb the queue needs, in terms of tasks and queues only, so that the
/// SQLite store, the in-memory store and a later PostgreSQL store are interchangeable.
public protocol TaskStore: Sendable {
    /// In-process notices of enqueues and finished tasks.
    var events: StoreEvents { get }
    /// The longest a write may wait for another process's lock before failing: a heartbeat may
    /// take that long, so leases must last several times longer.
    var longestWriteWait: Duration { get }
    /// Whether `events` hears every enqueue, other processes' too (PostgreSQL while its LISTEN
    /// connection is up; the memory store, which no other process reaches): pools then poll only
    /// as a backstop. Read often; must be cheap.
    var hearsEveryEnqueue: Bool { get }
    /// How many outcome batches a worker's completer should write at once. Several pay where the
    /// store merges concurrent writes into one commit (SQLite's group commit); one pays where each
    /// is a transaction of its own that would contend with the others (PostgreSQL).
    var outcomeBatchesInFlight: Int { get }
    /// Stores one task, or returns the live task its idempotency key already names.
    func enqueue(_ request: EnqueueRequest) async throws -> EnqueueResult
    /// Stores many tasks atomically: all of them or none.
    func enqueue(batch requests: [EnqueueRequest]) async throws -> [EnqueueResult]
    /// The task with this id, or `nil`.
    func task(_ id: TaskID) async throws -> TaskRecord?
    /// The tasks of `ids` that exist (only the final ones with `onlyFinal`), by id, in one read
    /// (one round trip however many).
    func tasks(_ ids: [TaskID], onlyFinal: Bool) async throws -> [TaskID: TaskRecord]
    /// Tasks newest first, after `cursor` when given, examining at most the filter's `scanLimit` rows.
    func list(_ filter: TaskFilter, limit: Int, after cursor: TaskID?) async throws -> TaskPage
    /// Claims up to `limit` ready tasks of `queues` for `owner`: earlier queues first, then by
    /// priority (higher first), run time and id. Each claimed task has a lease and its attempt counted.
    func claim(queues: [String], limit: Int, owner: String, leaseDuration: Duration) async throws -> [TaskRecord]
    /// Renews the leases `owner` holds and reports each one's status.
    func heartbeat(_ leases: [TaskLease], leaseDuration: Duration) async throws -> [TaskID: LeaseStatus]
    /// Records a success; refused with `leaseLost` unless the lease is current.
    func complete(_ lease: TaskLease, result: JSONValue) async throws -> TaskRecord
    /// Records a failed attempt; retries, fails or cancels the task as the failure and attempts decide.
    func fail(_ lease: TaskLease, failure: TaskFailure) async throws -> TaskRecord
    /// Hands claimed but unstarted tasks back to their queues.
    func release(_ leases: [TaskLease]) async throws
    /// Cancels a waiting task, or flags a running one for its worker.
    func cancel(_ id: TaskID) async throws -> TaskRecord
    /// Puts a failed or cancelled task back in its queue.
    func retry(_ id: TaskID) async throws -> TaskRecord
    /// Deletes a finished task (succeeded, failed or cancelled); refuses a live one with `invalidTransition`.
    func delete(_ id: TaskID) async throws -> TaskRecord
    /// Records a batch of outcomes and then makes `claims`, in one transaction where the store has
    /// them: one commit per wave of tasks instead of two. An outcome whose lease was lost is
    /// reported in `recorded`, not thrown; a storage failure throws and records nothing.
    func record(_ outcomes: [TaskOutcome], thenClaim claims: [ClaimRequest]) async throws -> RecordResult
    /// Makes scheduled and retrying tasks whose time has come claimable, at most `limit`; returns how many.
    func stageDue(limit: Int) async throws -> Int
    /// Requeues (or fails, when out of attempts) at most `limit` running tasks whose lease has expired.
    func rescueExpiredLeases(limit: Int) async throws -> RescueReport
    /// Deletes at most `limit` tasks that finished more than `retention` ago; returns how many.
    func prune(finishedBefore retention: Duration, limit: Int) async throws -> Int
    /// Task counts by state for every queue that has tasks; cheap (no scan of the tasks).
    func counts() async throws -> [QueueCounts]
    /// For each of `queues` with a ready task, the run time of the one a claim would take next (the
    /// head: highest priority, then earliest): how long the front of the queue has waited. One index
    /// seek per queue.
    func nextReady(in queues: [String]) async throws -> [String: Date]
    /// How long until the first scheduled or retrying task of `queues` falls due, by the store's
    /// clock, when that is within `horizon`; nil when none does. A fetcher that would sleep longer
    /// asks, so that a delayed task or a retry starts on time and not at the next poll. It may
    /// answer early (the SQL stores look at a bounded number of tasks due soon, whatever their
    /// queue), never late.
    func nextDue(in queues: [String], within horizon: Duration) async throws -> Duration?
    /// Refreshes what the engine's planner knows of the tables, so a grown table keeps its plans.
    func optimize() async throws
}

/// How the SQL stores answer `nextDue` from the tasks due soonest, whatever their queue (one
/// bounded index walk, however many tasks other queues hold).
public enum NextDue {
    /// How many of the soonest tasks a store looks at.
    public static let lookLimit = 100

    /// The wait until the first of `soonest` (due in that many seconds, soonest first) in `queues`;
    /// failing that, when the look stopped at `lookLimit`, until the last one looked at (look again
    /// then); otherwise none.
    public static func answer(_ soonest: [(queue: String, dueIn: Double)], in queues: [String]) -> Duration? {
        let due = soonest.first { queues.contains($0.queue) } ?? (soonest.count >= lookLimit ? soonest.last : nil)
        return due.map { .seconds(max(0, $0.dueIn)) }
    }

    /// How long to sleep for a task due in `due`: a millisecond past it, so that the claim's clock
    /// has reached it. One due already (zero) is one the last claim did not stage: a paused queue,
    /// a claim of nothing, more due than a claim stages; the leader's stager takes it within a
    /// second, and looking again every 10 ms meanwhile bounds the cost of asking.
    public static func wake(forDue due: Duration) -> Duration {
        due > .zero ? due + .milliseconds(1) : .milliseconds(10)
    }
}

extension TaskStore {
    public var longestWriteWait: Duration { .zero }

    /// Other processes' enqueues are found by polling, by default.
    public var hearsEveryEnqueue: Bool { false }

    public var outcomeBatchesInFlight: Int { 4 }

    /// Nothing to refresh, by default.
    public func optimize() async throws {}

    /// Requeues running tasks whose lease has expired, up to 1000.
    public func rescueExpiredLeases() async throws -> RescueReport { try await rescueExpiredLeases(limit: 1000) }

    /// Deletes tasks that finished more than `retention` ago, 1000 at most.
    public func prune(finishedBefore retention: Duration) async throws -> Int { try await prune(finishedBefore: retention, limit: 1000) }

    /// Records outcomes one by one, then claims: for stores without transactions to share.
    public func recordOneByOne(_ outcomes: [TaskOutcome], thenClaim claims: [ClaimRequest]) async throws -> RecordResult {
        var recorded: [Result<RecordedTask, SluiceError>] = []
        for outcome in outcomes {
            do {
                switch outcome {
                case .complete(let lease, let result): recorded.append(.success(RecordedTask(try await complete(lease, result: result))))
                case .fail(let lease, let failure): recorded.append(.success(RecordedTask(try await fail(lease, failure: failure))))
                }
            } catch let error as SluiceError where error.code == .leaseLost || error.code == .notFound {
                recorded.append(.failure(error))
            }
        }
        var claimed: [[TaskRecord]] = []
        for claim in claims {
            claimed.append(try await self.claim(queues: claim.queues, limit: claim.limit, owner: claim.owner, leaseDuration: claim.leaseDuration))
        }
        return RecordResult(recorded: recorded, claimed: claimed)
    }

    /// The tasks of `ids` that exist, by id, in one read.
    public func tasks(_ ids: [TaskID]) async throws -> [TaskID: TaskRecord] {
        try await tasks(ids, onlyFinal: false)
    }

    /// One read per task: for stores written elsewhere that have no read of many at once.
    public func tasks(_ ids: [TaskID], onlyFinal: Bool) async throws -> [TaskID: TaskRecord] {
        var found: [TaskID: TaskRecord] = [:]
        for id in ids { if let task = try await task(id), !onlyFinal || task.state.isFinal { found[id] = task } }
        return found
    }

    /// The task with this id, or a `notFound` error.
    public func require(_ id: TaskID) async throws -> TaskRecord {
        guard let task = try await task(id) else { throw SluiceError(.notFound, "no task has id \(id)") }
        return task
    }
}
