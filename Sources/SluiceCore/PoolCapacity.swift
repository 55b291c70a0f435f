import Foundation

/// A pool's capacity at one moment in one process: what the seed's `/get_available_threads` wanted
/// to know, complete. Target and actual are both shown because a shrink waits for running tasks.
public struct PoolCapacity: Sendable, Hashable, Codable {
    public var name: String
    /// The queues it drains, earlier first.
    public var queues: [String]
    /// The concurrency asked for.
    public var target: Int
    /// Threads alive now.
    public var threads: Int
    /// Tasks running on a thread.
    public var busy: Int
    /// Threads waiting for work.
    public var idle: Int
    /// Threads still running a task that passed its deadline: not free until they return.
    public var stuck: Int
    /// Tasks this pool can take now: target − busy − stuck − claimed-but-unstarted.
    public var free: Int
    /// Ready tasks in its queues (all processes).
    public var waiting: Int
    /// Tasks of its queues waiting for a future time (scheduled or retrying).
    public var scheduled: Int
    /// Tasks finished here since start, and how many of those failed an attempt.
    public var processed: Int
    public var failed: Int
    /// Run time percentiles over the recent window, in seconds.
    public var runTimeP50: Double?
    public var runTimeP99: Double?
    public var autoscale: AutoscaleRange?
    /// What the pool did over the last minute and hour, for the advisor; `nil` until measured.
    public var activity: PoolActivity? = nil

    public init(name: String, queues: [String], target: Int, threads: Int, busy: Int, idle: Int, stuck: Int, free: Int,
                waiting: Int, scheduled: Int, processed: Int, failed: Int, runTimeP50: Double?, runTimeP99: Double?,
                autoscale: AutoscaleRange?) {
        self.name = name; self.queues = queues; self.target = target; self.threads = threads; self.busy = busy
        self.idle = idle; self.stuck = stuck; self.free = free; self.waiting = waiting; self.scheduled = scheduled
        self.processed = processed; self.failed = failed; self.runTimeP50 = runTimeP50; self.runTimeP99 = runTimeP99
        self.autoscale = autoscale
    }
}

/// Bounds for a pool that sizes itself: grows while tasks wait and every slot is busy, shrinks
/// after a quiet period.
public struct AutoscaleRange: Sendable, Hashable, Codable {
    public var min: Int
    public var max: Int
    public init(min: Int, max: Int) {
        self.min = min
        self.max = max
    }
}

/// A process that runs pools (`sluice serve` or `sluice worker`), as it last reported itself.
public struct WorkerInfo: Sendable, Hashable, Codable {
    public var id: String
    public var host: String
    public var pid: Int
    public var startedAt: Date
    public var heartbeatAt: Date
    public var pools: [PoolCapacity]
    /// The task kinds its handlers run.
    public var kinds: [String]

    public init(id: String, host: String, pid: Int, startedAt: Date, heartbeatAt: Date, pools: [PoolCapacity], kinds: [String] = []) {
        self.id = id; self.host = host; self.pid = pid; self.startedAt = startedAt; self.heartbeatAt = heartbeatAt
        self.pools = pools; self.kinds = kinds
    }
}

/// An operator's change to a pool, stored so that every process running the pool applies it.
public struct PoolSetting: Sendable, Hashable, Codable {
    public var pool: String
    /// One process, or `nil` for every process running the pool.
    public var worker: String?
    public var concurrency: Int?
    public var autoscale: AutoscaleRange?
    public var updatedAt: Date

    public init(pool: String, worker: String?, concurrency: Int?, autoscale: AutoscaleRange?, updatedAt: Date) {
        self.pool = pool; self.worker = worker; self.concurrency = concurrency; self.autoscale = autoscale
        self.updatedAt = updatedAt
    }

    /// Concurrency bounds every pool accepts.
    public static let concurrencyRange = 1...10_000
}
