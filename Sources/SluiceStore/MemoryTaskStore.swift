import Foundation
import DequeModule
import HeapModule
import SluiceCore
import Synchronization

/// A task store in this process's memory: fast, and gone with the process. Fire-and-forget tasks
/// live here. It applies the same lifecycle rules as the durable stores (one conformance suite
/// checks both).
public final class MemoryTaskStore: TaskStore {
    /// Ready-queue order: higher priority, then earlier run time, then older id.
    struct ReadyEntry: Comparable {
        var priority: Int
        var runAt: Date
        var id: TaskID
        static func < (a: ReadyEntry, b: ReadyEntry) -> Bool {
            // Heap.popMax takes the "largest": make the best candidate the largest.
            if a.priority != b.priority { return a.priority < b.priority }
            if a.runAt != b.runAt { return a.runAt > b.runAt }
            return a.id > b.id
        }
    }

    struct DueEntry: Comparable {
        var runAt: Date
        var id: TaskID
        static func < (a: DueEntry, b: DueEntry) -> Bool { (a.runAt, a.id) < (b.runAt, b.id) }
    }

    struct IdempotencyKey: Hashable { var queue: String; var key: String }

    struct State {
        /// In id order, which is creation order: ids increase within a process.
        var tasks = TaskTable()
        /// Finished tasks, oldest first, for eviction.
        var finished = Deque<TaskID>()
        var ready: [String: Heap<ReadyEntry>] = [:]
        var due = Heap<DueEntry>()
        var running: Set<TaskID> = []
        var idempotency: [IdempotencyKey: TaskID] = [:]
        var schedules: [String: Schedule] = [:]
        /// Fired slots: schedule name → slot times (the uniqueness the durable stores keep by key).
        var slots: [String: [Date: Date]] = [:]
    }

    public let events = StoreEvents()
    /// No other process reaches this store: every enqueue is a local one.
    public var hearsEveryEnqueue: Bool { true }
    let state = Mutex(State())
    private let directory = Mutex(Directory())

    struct Directory {
        var workers: [String: WorkerInfo] = [:]
        var settings: [String: PoolSetting] = [:]
        var leaders: [String: Leadership] = [:]
        var paused: Set<String> = []
    }
    let clock: any WallClock
    let ids: TaskIDGenerator
    private let unitRandom: @Sendable () -> Double
    /// At most this many finished tasks are kept, and an eighth more between passes that forget
    /// the oldest finished first.
    public let finishedLimit: Int

    /// The number of finished tasks kept by default.
    public static let defaultFinishedLimit = 10_000

    /// A store on `clock`; `unitRandom` draws the backoff jitter (uniform in [0, 1]).
    public init(clock: any WallClock = SystemClock(), finishedLimit: Int = defaultFinishedLimit,
                unitRandom: @escaping @Sendable () -> Double = { .random(in: 0...1) }) {
        self.clock = clock
        self.finishedLimit = max(1, finishedLimit)
        self.ids = TaskIDGenerator(clock: clock)
        self.unitRandom = unitRandom
    }

    public func enqueue(_ request: EnqueueRequest) async throws -> EnqueueResult {
        try await enqueue(batch: [request])[0]
    }

    public func enqueue(batch requests: [EnqueueRequest]) async throws -> [EnqueueResult] {
        let now = clock.now()
        for request in requests { try request.validate(now: now) }
        let ids = self.ids
        return announce(enqueued: try state.withLock { state in try Self.insert(requests, ids: ids, now: now, in: &state) })
    }

    /// Stores validated requests (or finds the tasks their idempotency keys name), under the state's lock.
    static func insert(_ requests: [EnqueueRequest], ids: TaskIDGenerator, now: Date, in state: inout State) throws -> [EnqueueResult] {
        let tasks = requests.map { TaskRecord(id: ids.next(), request: $0, now: now) }
        // Every replay is checked before anything is stored, against stored tasks and earlier
        // ones of this batch: there is no transaction to roll a half-stored batch back.
        var firstOfKey: [IdempotencyKey: TaskRecord] = [:]
        for (request, task) in zip(requests, tasks) {
            guard let key = request.idempotencyKey else { continue }
            let slot = IdempotencyKey(queue: request.queue, key: key)
            if let first = state.idempotency[slot].flatMap({ state.tasks[$0] }) ?? firstOfKey[slot] {
                try first.checkReplay(of: request)
            } else {
                firstOfKey[slot] = task
            }
        }
        return tasks.map { task in
            if let key = task.idempotencyKey, let existing = state.idempotency[IdempotencyKey(queue: task.queue, key: key)],
               let stored = state.tasks[existing] {
                return EnqueueResult(task: stored, created: false)
            }
            state.tasks[task.id] = task
            if let key = task.idempotencyKey {
                state.idempotency[IdempotencyKey(queue: task.queue, key: key)] = task.id
            }
            Self.index(task, in: &state)
            return EnqueueResult(task: task, created: true)
        }
    }

    public func task(_ id: TaskID) async throws -> TaskRecord? {
        state.withLock { $0.tasks[id] }
    }

    public func list(_ filter: TaskFilter, limit: Int, after cursor: TaskID?) async throws -> TaskPage {
        let limit = max(1, limit)
        return state.withLock { state in
            var page: [TaskRecord] = []
            var scanned = 0
            var lastScanned: TaskID?
            for task in state.tasks.values.reversed() where cursor.map({ task.id < $0 }) ?? true {
                if let ids = filter.ids {
                    if task.id > ids.upperBound { continue }
                    if task.id < ids.lowerBound { break }
                }
                if scanned == filter.scanLimit { break }
                scanned += 1
                lastScanned = task.id
                guard filter.matches(task) else { continue }
                if page.count == limit { return TaskPage(tasks: page, nextCursor: page.last?.id) }
                page.append(task)
            }
            // The scan stopped at its bound: the next page starts after the last row examined, so
            // no row is examined twice (the SQL stores answer alike).
            if scanned == filter.scanLimit, let lastScanned { return TaskPage(tasks: page, nextCursor: lastScanned, partial: true) }
            return TaskPage(tasks: page, nextCursor: nil)
        }
    }

    public func claim(queues: [String], limit: Int, owner: String, leaseDuration: Duration) async throws -> [TaskRecord] {
        let now = clock.now()
        return state.withLock { state in
            // Staging here too: due tasks are claimable on time without waiting for the stager.
            Self.stageDue(now: now, in: &state)
            var claimed: [TaskRecord] = []
            for queue in queues {
                while claimed.count < limit, let entry = state.ready[queue]?.popMax() {
                    // Entries are dropped lazily: skip ones whose task has moved on.
                    guard var task = state.tasks[entry.id], task.state == .queued,
                          task.priority == entry.priority, task.runAt == entry.runAt else { continue }
                    try! task.claim(owner: owner, now: now, leaseDuration: leaseDuration)
                    state.tasks[task.id] = task
                    state.running.insert(task.id)
                    claimed.append(task)
                }
            }
            return claimed
        }
    }

    public func nextReady(in queues: [String]) async throws -> [String: Date] {
        state.withLock { state in
            var heads: [String: Date] = [:]
            for queue in queues {
                // Entries are dropped lazily (as claims do): discard stale ones from the top first.
                while let entry = state.ready[queue]?.max {
                    if let task = state.tasks[entry.id], task.state == .queued, task.priority == entry.priority, task.runAt == entry.runAt {
                        heads[queue] = entry.runAt
                        break
                    }
                    _ = state.ready[queue]?.popMax()
                }
            }
            return heads
        }
    }

    public func heartbeat(_ leases: [TaskLease], leaseDuration: Duration) async throws -> [TaskID: LeaseStatus] {
        let now = clock.now()
        return state.withLock { state in
            var statuses: [TaskID: LeaseStatus] = [:]
            for lease in leases {
                guard var task = state.tasks[lease.taskID],
                      (try? task.renewLease(lease, now: now, leaseDuration: leaseDuration)) != nil else {
                    statuses[lease.taskID] = .lost
                    continue
                }
                state.tasks[task.id] = task
                statuses[lease.taskID] = task.cancelRequested ? .cancelRequested : .held
            }
            return statuses
        }
    }

    public func complete(_ lease: TaskLease, result: JSONValue) async throws -> TaskRecord {
        let now = clock.now()
        return announce(try update(lease.taskID) { task in try task.complete(lease, result: result, now: now) })
    }

    public func fail(_ lease: TaskLease, failure: TaskFailure) async throws -> TaskRecord {
        let now = clock.now()
        let unit = unitRandom()
        return announce(try update(lease.taskID) { task in try task.fail(lease, failure: failure, now: now, unit: unit) })
    }

    public func release(_ leases: [TaskLease]) async throws {
        let now = clock.now()
        for lease in leases {
            _ = try? update(lease.taskID) { task in try task.release(lease, now: now) }
        }
    }

    public func cancel(_ id: TaskID) async throws -> TaskRecord {
        let now = clock.now()
        return announce(try update(id) { task in try task.requestCancel(now: now) })
    }

    public func retry(_ id: TaskID) async throws -> TaskRecord {
        let now = clock.now()
        return try update(id) { task in try task.retryByHand(now: now) }
    }

    public func delete(_ id: TaskID) async throws -> TaskRecord {
        try state.withLock { state in
            guard let task = state.tasks[id] else { throw SluiceError(.notFound, "no task has id \(id)") }
            try task.checkDeletable()
            state.tasks[id] = nil
            if let key = task.idempotencyKey { state.idempotency[IdempotencyKey(queue: task.queue, key: key)] = nil }
            return task
        }
    }

    public func record(_ outcomes: [TaskOutcome], thenClaim claims: [ClaimRequest]) async throws -> RecordResult {
        try await recordOneByOne(outcomes, thenClaim: claims)
    }

    public func stageDue(limit: Int) async throws -> Int {
        let now = clock.now()
        return state.withLock { Self.stageDue(now: now, in: &$0, limit: limit) }
    }

    public func rescueExpiredLeases(limit: Int) async throws -> RescueReport {
        let now = clock.now()
        var finished: [TaskRecord] = []
        defer { announce(finished: finished.map(RecordedTask.init)) }
        return state.withLock { state in
            var report = RescueReport()
            for id in state.running.sorted() where report.total < limit {
                guard var task = state.tasks[id], let lease = task.lease, lease.expiresAt < now else { continue }
                try! task.expireLease(now: now)
                state.tasks[id] = task
                index(task, in: &state)
                if task.state.isFinal { finished.append(task) }
                switch task.state {
                case .queued: report.requeued.append(id)
                case .failed: report.failed.append(id)
                default: report.cancelled.append(id)
                }
            }
            return report
        }
    }

    public func prune(finishedBefore retention: Duration, limit: Int) async throws -> Int {
        let cutoff = clock.now().addingTimeInterval(-retention.seconds)
        return state.withLock { state in
            let doomed = Array(state.tasks.values.lazy.filter { $0.state.isFinal && ($0.finishedAt ?? .distantFuture) < cutoff }.prefix(limit))
            Self.forget(doomed, in: &state)
            return doomed.count
        }
    }

    public func counts() async throws -> [QueueCounts] {
        state.withLock { state in
            QueueCounts.inQueueOrder(state.tasks.counts)
        }
    }

    // MARK: - Internals

    /// Applies `move` to one task under the lock and re-indexes it.
    private func update(_ id: TaskID, _ move: (inout TaskRecord) throws -> Void) throws -> TaskRecord {
        try state.withLock { state in
            guard var task = state.tasks[id] else { throw SluiceError(.notFound, "no task has id \(id)") }
            try move(&task)
            state.tasks[id] = task
            index(task, in: &state)
            return task
        }
    }

    /// Puts a task into the structure its state is looked up by.
    private func index(_ task: TaskRecord, in state: inout State) {
        Self.index(task, in: &state)
        guard task.state.isFinal else { return }
        state.finished.append(task.id)
        // Bounded memory: forget the oldest finished tasks, an eighth of the limit at a time (one
        // pass, see `forget`). A retried task may appear twice in `finished`; the state check skips
        // entries that are no longer final.
        guard state.finished.count > finishedLimit + finishedLimit / 8 else { return }
        var oldest: [TaskRecord] = []
        while state.finished.count > finishedLimit, let id = state.finished.popFirst() {
            if let old = state.tasks[id], old.state.isFinal { oldest.append(old) }
        }
        Self.forget(oldest, in: &state)
    }

    /// Forgets finished tasks and their idempotency keys, in one pass over the ordered table: taking
    /// tasks out one by one moves every later one each time, which for a busy server's evictions
    /// was a third of its time.
    private static func forget(_ tasks: [TaskRecord], in state: inout State) {
        guard !tasks.isEmpty else { return }
        for task in tasks {
            if let key = task.idempotencyKey { state.idempotency[IdempotencyKey(queue: task.queue, key: key)] = nil }
        }
        let ids = Set(tasks.map(\.id))
        state.tasks.removeAll { ids.contains($0) }
    }

    /// Looks at every due entry: this store holds few delayed tasks, and only a fetcher that
    /// polls less often than every 50 ms asks (one whose stores hear every enqueue).
    public func nextDue(in queues: [String], within horizon: Duration) async throws -> Duration? {
        let now = clock.now()
        let end = now.addingTimeInterval(horizon.seconds)
        let wanted = Set(queues)
        return state.withLock { state in
            var first: Date?
            for entry in state.due.unordered where entry.runAt <= end && entry.runAt < (first ?? .distantFuture) {
                // Entries are dropped lazily: skip ones whose task has moved on.
                guard let task = state.tasks[entry.id], task.runAt == entry.runAt, task.state == .scheduled || task.state == .retrying,
                      wanted.contains(task.queue) else { continue }
                first = entry.runAt
            }
            return first.map { .seconds(max(0, $0.timeIntervalSince(now))) }
        }
    }

    private static func index(_ task: TaskRecord, in state: inout State) {
        if task.state == .running { state.running.insert(task.id) } else { state.running.remove(task.id) }
        switch task.state {
        case .queued:
            state.ready[task.queue, default: Heap()].insert(ReadyEntry(priority: task.priority, runAt: task.runAt, id: task.id))
        case .scheduled, .retrying:
            state.due.insert(DueEntry(runAt: task.runAt, id: task.id))
        default:
            break
        }
    }

    @discardableResult
    private static func stageDue(now: Date, in state: inout State, limit: Int = .max) -> Int {
        var staged = 0
        while staged < limit, let next = state.due.min, next.runAt <= now {
            _ = state.due.popMin()
            guard var task = state.tasks[next.id], task.runAt == next.runAt, task.stageIfDue(now: now) else { continue }
            state.tasks[task.id] = task
            index(task, in: &state)
            staged += 1
        }
        return staged
    }

}

extension MemoryTaskStore: WorkerDirectory {
    public func recordWorker(_ worker: WorkerInfo) async throws {
        var worker = worker
        worker.heartbeatAt = clock.now().storedPrecision
        directory.withLock { directory in
            if let known = directory.workers[worker.id], known.host == worker.host, known.pid == worker.pid { worker.startedAt = known.startedAt }
            directory.workers[worker.id] = worker
        }
    }

    public func workers(seenWithin window: Duration) async throws -> [WorkerInfo] {
        let cutoff = clock.now().addingTimeInterval(-window.seconds)
        return directory.withLock { $0.workers.values.filter { $0.heartbeatAt >= cutoff }.sorted { $0.id < $1.id } }
    }

    public func removeWorker(_ id: String) async throws {
        directory.withLock { $0.workers[id] = nil }
    }

    public func savePoolSetting(_ setting: PoolSetting) async throws {
        var setting = setting
        setting.updatedAt = clock.now().storedPrecision
        directory.withLock { $0.settings["\(setting.pool)\u{0}\(setting.worker ?? "*")"] = setting }
    }

    public func poolSettings() async throws -> [PoolSetting] {
        directory.withLock { $0.settings.values.sorted { ($0.pool, $0.worker ?? "*") < ($1.pool, $1.worker ?? "*") } }
    }

    public func setQueuePaused(_ queue: String, _ paused: Bool) async throws {
        directory.withLock { directory in
            if paused { directory.paused.insert(queue) } else { directory.paused.remove(queue) }
        }
    }

    public func pausedQueues() async throws -> Set<String> {
        directory.withLock { $0.paused }
    }

    public func acquireLeadership(_ name: String, owner: String, for duration: Duration) async throws -> Bool {
        let now = clock.now()
        return directory.withLock { directory in
            if let current = directory.leaders[name], current.owner != owner, current.expiresAt > now { return false }
            directory.leaders[name] = Leadership(name: name, owner: owner, expiresAt: now.addingTimeInterval(duration.seconds).storedPrecision)
            return true
        }
    }

    public func resignLeadership(_ name: String, owner: String) async throws {
        directory.withLock { directory in
            if directory.leaders[name]?.owner == owner { directory.leaders[name] = nil }
        }
    }

    public func leader(_ name: String) async throws -> Leadership? {
        let now = clock.now()
        return directory.withLock { $0.leaders[name].flatMap { $0.expiresAt > now ? $0 : nil } }
    }
}
