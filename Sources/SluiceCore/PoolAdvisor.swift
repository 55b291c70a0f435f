import Foundation

/// The advisor's reading of one pool: a verdict, the numbers behind it, and a size that would fix it.
public struct PoolAdvice: Sendable, Hashable {
    public enum Verdict: String, Sendable, Hashable {
        /// Tasks wait for a slot: the pool is the bottleneck.
        case saturated
        case ok
        /// Most slots stayed unused over the long window.
        case idle
        /// Not enough data yet (the first seconds after start).
        case unknown
    }

    public var verdict: Verdict
    /// The verdict in words, with its numbers.
    public var message: String
    /// Tasks arriving per second (started plus backlog growth), the mean run time, and their product:
    /// the slots busy on average that the arrivals need (Little's law, L = λ·W).
    public var arrivalRate: Double?
    public var serviceTime: Double?
    public var offeredLoad: Double?
    /// The smallest concurrency whose expected wait stays under the target (M/M/c), or for an idle
    /// pool the hour's peak with some headroom; `nil` when there is nothing to suggest. It is the
    /// size of each process's pool, as `PATCH /v1/pools/{name}` sets it: the slots needed spread
    /// over the processes that run the pool.
    public var recommendedConcurrency: Int?
}

/// Reads a pool's recent activity and says whether its concurrency fits its load.
///
/// The model (docs/API.md, "The pool advisor"): arrivals λ are the tasks started per second plus the
/// growth of the ready backlog (once `steadyWindow` seconds of samples exist: before that a burst's
/// first seconds would read as a flood); the service time S is the run-time median. By Little's law
/// a pool needs λ·S slots busy on average. Waiting for a slot is modelled as an M/M/c queue: the
/// expected wait with c slots is Erlang C(c, λS)·S / (c − λS), and the steady size is the smallest c
/// that keeps it under `targetWait`. A standing backlog is work to clear on top of that: B tasks of
/// S seconds within `drainTime` need B·S/`drainTime` more slots. The advice is the larger. The pool
/// is *saturated* when tasks wait and it is ≥ 90 % busy or the median wait passed the target;
/// *idle* when nothing waits and its peak over the long window used at most half its slots.
public enum PoolAdvisor {
    /// The wait the advice aims to stay under, in seconds.
    public static let targetWait = 0.1
    /// Seconds of samples before the backlog's growth counts as arrivals.
    public static let steadyWindow = 15.0
    /// How soon the advice aims to clear a standing backlog, in seconds.
    public static let drainTime = 60.0

    /// The advice for a pool of `target` slots in total, run by `processes` processes, with
    /// `waiting` ready tasks (in queues not paused).
    public static func advise(target: Int, waiting: Int, runTimeP50: Double?, activity: PoolActivity?, processes: Int = 1,
                              targetWait: Double = targetWait) -> PoolAdvice {
        guard let activity else {
            return PoolAdvice(verdict: .unknown, message: "unknown: measuring (the advisor needs a few seconds of samples)")
        }
        // A total of slots as a size for each process, within what a pool may be.
        let processes = max(1, processes)
        let largest = PoolSetting.concurrencyRange.upperBound * processes
        func perProcess(_ total: Int) -> Int {
            min(PoolSetting.concurrencyRange.upperBound, max(1, (total + processes - 1) / processes))
        }
        func sizeText(_ total: Int) -> String {
            let each = perProcess(total)
            return processes == 1 ? "concurrency \(each)" : "concurrency \(each) in each of the \(processes) processes (\(each * processes) in all)"
        }
        let utilisation = activity.utilisation
        let steady = activity.window >= steadyWindow
        let arrival = activity.startRate + (steady ? max(0, activity.backlogGrowth) : 0)
        let service = runTimeP50.flatMap { $0 > 0 ? $0 : nil }
        let load = service.map { arrival * $0 }
        // Slots to keep up with the arrivals, and to clear what already waits within `drainTime`.
        let keepUp = load.map { minimumServers(load: $0, serviceTime: service!, targetWait: targetWait, cap: largest) }
        let clear = service.map { Int((arrival * $0 + Double(waiting) * $0 / drainTime).rounded(.up)) }
        let needed = keepUp.map { max($0, clear ?? 0) }
        let waitP50 = activity.waitP50 ?? 0
        // No wait is measured until a task starts: say so rather than "0.00 s".
        let waitText = activity.waitP50.map { "tasks wait \(format($0)) s (p50)" } ?? "no task started in the last minute"
        let busyText = "\(format(activity.meanBusy)) of \(slots(activity.meanTarget)) slots busy on average (\(Int((utilisation * 100).rounded())) %)"
        let loadText = service.map { "\(format(arrival)) tasks/s × \(format($0)) s per task = \(format(arrival * $0)) slots needed (Little's law)" }

        if waiting > 0 && (utilisation >= 0.9 || waitP50 > targetWait) {
            var message = "saturated: \(waiting) tasks waiting; \(activity.waitP50 == nil ? waitText : waitText + " for a slot"); \(busyText)"
            if let loadText { message += "; \(loadText)" }
            let beyond = (clear ?? 0) > largest
                || (keepUp == largest && load.map { expectedWait(servers: largest, load: $0, serviceTime: service!) > targetWait } == true)
            if beyond {
                message += "; more than \(largest) slots would be needed, more than \(sizeText(largest)) gives: make the tasks shorter or add processes"
            } else if let needed, let keepUp, needed > target {
                message += needed > keepUp
                    ? "; \(sizeText(needed)) would keep up and clear the \(waiting) waiting in about \(Int(drainTime / 60)) min"
                    : "; \(sizeText(needed)) would keep the wait under \(format(targetWait)) s"
            } else if service == nil {
                message += "; no run times yet to size it by"
            } else {
                message += "; the backlog is draining, but raise the concurrency to drain it sooner"
            }
            return PoolAdvice(verdict: .saturated, message: message, arrivalRate: arrival, serviceTime: service, offeredLoad: load,
                              recommendedConcurrency: needed.map { perProcess(min(largest, max($0, target + 1))) })
        }
        let suggestion = perProcess(max(1, Int((Double(activity.hourPeakBusy) * 1.25).rounded(.up)), keepUp ?? 1))
        if waiting == 0, target > 1, activity.hourWindow >= 60, activity.hourPeakBusy * 2 <= target, suggestion * processes < target {
            let unused = target - activity.hourPeakBusy
            let minutes = Int((activity.hourWindow / 60).rounded())
            return PoolAdvice(verdict: .idle,
                              message: "idle: \(unused) of \(target) threads unused for the last \(minutes) min (at most \(activity.hourPeakBusy) busy at once); \(sizeText(suggestion * processes)) would do",
                              arrivalRate: arrival, serviceTime: service, offeredLoad: load, recommendedConcurrency: suggestion)
        }
        var message = "ok: \(busyText); \(waitText)"
        if let loadText { message += "; \(loadText)" }
        return PoolAdvice(verdict: .ok, message: message, arrivalRate: arrival, serviceTime: service, offeredLoad: load,
                          recommendedConcurrency: nil)
    }

    /// A mean number of slots: whole when it is (nearly) whole, as a pool's size mostly is.
    static func slots(_ value: Double) -> String {
        abs(value - value.rounded()) < 0.05 ? String(Int(value.rounded())) : format(value)
    }

    /// The expected wait for a slot in an M/M/c queue with `servers` slots, offered `load` (λ·S)
    /// and mean service time `serviceTime`; infinite when the load reaches the slots.
    public static func expectedWait(servers: Int, load: Double, serviceTime: Double) -> Double {
        let c = Double(servers)
        guard load > 0 else { return 0 }
        guard c > load else { return .infinity }
        // Erlang B by its recurrence (stable for thousands of servers), then Erlang C from it.
        var b = 1.0
        for k in 1...servers { b = load * b / (Double(k) + load * b) }
        let erlangC = c * b / (c - load * (1 - b))
        return erlangC * serviceTime / (c - load)
    }

    /// The fewest slots whose expected wait is at most `targetWait`, capped at `cap` (the largest
    /// pool by default). Walks Erlang B's recurrence once, testing each c above the load: O(c), not O(c²).
    public static func minimumServers(load: Double, serviceTime: Double, targetWait: Double,
                                      cap: Int = PoolSetting.concurrencyRange.upperBound) -> Int {
        guard load > 0 else { return 1 }
        var b = 1.0
        for servers in 1...cap {
            let c = Double(servers)
            b = load * b / (c + load * b)
            guard c > load else { continue }
            let erlangC = c * b / (c - load * (1 - b))
            if erlangC * serviceTime / (c - load) <= targetWait { return servers }
        }
        return cap
    }

    /// A number for a sentence: two significant decimals below 10, one below 100, none above.
    public static func format(_ value: Double) -> String {
        switch abs(value) {
        case ..<10: String(format: "%.2f", value)
        case ..<100: String(format: "%.1f", value)
        default: String(format: "%.0f", value)
        }
    }
}
