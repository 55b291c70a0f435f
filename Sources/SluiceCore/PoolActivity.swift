import Foundation

/// What one pool did in one process over the recent past: the figures the pool advisor reasons
/// from. Sent with the process's registration, so `GET /v1/pools` can sum them across processes.
public struct PoolActivity: Sendable, Hashable, Codable {
    /// Seconds the last-minute figures cover (less than 60 just after start).
    public var window: Double
    /// Mean busy slots over the window.
    public var meanBusy: Double
    /// Mean target over the window.
    public var meanTarget: Double
    /// Tasks started and finished per second over the window.
    public var startRate: Double
    public var completionRate: Double
    /// How fast the ready backlog of the pool's queues grew (negative: shrank), tasks per second.
    public var backlogGrowth: Double
    /// Time from when a task could run to when a thread took it, over the window; `nil` without starts.
    public var waitP50: Double?
    public var waitP99: Double?
    /// Seconds the hour figures cover, and the most slots busy at once in that time.
    public var hourWindow: Double
    public var hourPeakBusy: Int

    public init(window: Double, meanBusy: Double, meanTarget: Double, startRate: Double, completionRate: Double,
                backlogGrowth: Double, waitP50: Double?, waitP99: Double?, hourWindow: Double, hourPeakBusy: Int) {
        self.window = window; self.meanBusy = meanBusy; self.meanTarget = meanTarget; self.startRate = startRate
        self.completionRate = completionRate; self.backlogGrowth = backlogGrowth; self.waitP50 = waitP50
        self.waitP99 = waitP99; self.hourWindow = hourWindow; self.hourPeakBusy = hourPeakBusy
    }

    /// Busy slots over target slots in the last minute, 0…1.
    public var utilisation: Double { meanTarget > 0 ? min(1, meanBusy / meanTarget) : 0 }
}

/// Keeps one sample per second of a pool's busy slots, target, backlog and counters for an hour,
/// and the wait times of recent starts, and turns them into a `PoolActivity`. A plain value: the
/// pool guards it with its lock, tests feed it numbers and times.
public struct PoolActivityRecorder: Sendable {
    /// One sample of the pool's state.
    public struct Sample: Sendable, Hashable {
        public var at: Date
        public var busy: Int
        public var target: Int
        public var waiting: Int
        /// Counters since start: tasks started and finished by the pool.
        public var started: Int
        public var finished: Int
        public init(at: Date, busy: Int, target: Int, waiting: Int, started: Int, finished: Int) {
            self.at = at; self.busy = busy; self.target = target; self.waiting = waiting
            self.started = started; self.finished = finished
        }
    }

    /// The last-minute window and the long window.
    public static let minute: Double = 60
    public static let hour: Double = 3600

    private var samples: [Sample] = []
    private var nextSample = 0
    private var waits: [(at: Date, seconds: Double)] = []
    private var nextWait = 0
    private let sampleCapacity: Int
    private let waitCapacity: Int

    public init(sampleCapacity: Int = 3600, waitCapacity: Int = 2048) {
        self.sampleCapacity = sampleCapacity
        self.waitCapacity = waitCapacity
    }

    /// Records the pool's state now (the registrar calls this every second).
    public mutating func add(_ sample: Sample) {
        if samples.count < sampleCapacity { samples.append(sample) } else { samples[nextSample] = sample }
        nextSample = (nextSample + 1) % sampleCapacity
    }

    /// Records how long a task waited for a slot.
    public mutating func addWait(_ seconds: Double, at: Date) {
        let entry = (at: at, seconds: max(0, seconds))
        if waits.count < waitCapacity { waits.append(entry) } else { waits[nextWait] = entry }
        nextWait = (nextWait + 1) % waitCapacity
    }

    /// The figures over the last minute and hour before `now`; `nil` before two samples exist.
    public func activity(now: Date) -> PoolActivity? {
        let hour = samples.filter { now.timeIntervalSince($0.at) <= Self.hour }.sorted { $0.at < $1.at }
        let minute = hour.filter { now.timeIntervalSince($0.at) <= Self.minute }
        guard minute.count >= 2, let first = minute.first, let last = minute.last else { return nil }
        let span = last.at.timeIntervalSince(first.at)
        guard span > 0 else { return nil }
        let recentWaits = waits.filter { now.timeIntervalSince($0.at) <= Self.minute }.map(\.seconds).sorted()
        func percentile(_ p: Double) -> Double? {
            recentWaits.isEmpty ? nil : recentWaits[min(recentWaits.count - 1, Int(Double(recentWaits.count) * p))]
        }
        let n = Double(minute.count)
        return PoolActivity(
            window: span,
            meanBusy: Double(minute.reduce(0) { $0 + $1.busy }) / n,
            meanTarget: Double(minute.reduce(0) { $0 + $1.target }) / n,
            startRate: Double(last.started - first.started) / span,
            completionRate: Double(last.finished - first.finished) / span,
            backlogGrowth: Double(last.waiting - first.waiting) / span,
            waitP50: percentile(0.5), waitP99: percentile(0.99),
            hourWindow: last.at.timeIntervalSince(hour[0].at),
            hourPeakBusy: hour.map(\.busy).max() ?? 0)
    }
}
