import Foundation
import SluiceCore

/// One pool across every live process: capacity summed, activity combined, and the advisor's
/// reading. The API encodes it as JSON and the console draws it.
struct PoolSummary: Sendable {
    var name: String
    var queues: [String]
    var target = 0, actual = 0, busy = 0, idle = 0, stuck = 0, free = 0, processed = 0, failed = 0
    /// Global counts of the pool's queues (every process reports the same).
    var waiting: Int
    var scheduled: Int
    var runTimeP50: Double?
    var runTimeP99: Double?
    /// The processes' activity combined (rates and busy slots summed, waits the worst), `nil` until measured.
    var activity: PoolActivity?
    var advice: PoolAdvice
    var processes: [(process: WorkerInfo, pool: PoolCapacity)]

    /// Every pool of `processes`, by name.
    static func summarize(_ processes: [WorkerInfo]) -> [PoolSummary] {
        var byName: [String: [(process: WorkerInfo, pool: PoolCapacity)]] = [:]
        for process in processes { for pool in process.pools { byName[pool.name, default: []].append((process, pool)) } }
        return byName.keys.sorted().map { name in
            let entries = byName[name]!
            let first = entries[0].pool
            func sum(_ key: KeyPath<PoolCapacity, Int>) -> Int { entries.reduce(0) { $0 + $1.pool[keyPath: key] } }
            let activity = combine(entries.compactMap { $0.pool.activity })
            let p50 = entries.compactMap { $0.pool.runTimeP50 }.max()
            let target = sum(\.target)
            return PoolSummary(
                name: name, queues: first.queues, target: target, actual: sum(\.threads), busy: sum(\.busy), idle: sum(\.idle),
                stuck: sum(\.stuck), free: sum(\.free), processed: sum(\.processed), failed: sum(\.failed),
                waiting: first.waiting, scheduled: first.scheduled, runTimeP50: p50,
                runTimeP99: entries.compactMap { $0.pool.runTimeP99 }.max(), activity: activity,
                advice: PoolAdvisor.advise(target: target, waiting: first.waiting, runTimeP50: serviceTime(entries), activity: activity,
                                           processes: entries.count),
                processes: entries)
        }
    }

    /// The pool's run time for the advisor: the processes' medians weighted by how many tasks each
    /// finishes (one slow process among many does not stand for the pool), the largest while none
    /// has finished any in the last minute.
    static func serviceTime(_ entries: [(process: WorkerInfo, pool: PoolCapacity)]) -> Double? {
        let measured = entries.compactMap { entry in entry.pool.runTimeP50.map { (p50: $0, rate: entry.pool.activity?.completionRate ?? 0) } }
        let finishing = measured.reduce(0) { $0 + $1.rate }
        guard finishing > 0 else { return measured.map(\.p50).max() }
        return measured.reduce(0) { $0 + $1.p50 * $1.rate } / finishing
    }

    /// Several processes' activity as one pool's: busy slots, targets and rates add up; the backlog
    /// is shared, so its growth is the same in each (the mean is taken); waits take the worst.
    static func combine(_ parts: [PoolActivity]) -> PoolActivity? {
        guard !parts.isEmpty else { return nil }
        return PoolActivity(
            window: parts.map(\.window).min()!, meanBusy: parts.reduce(0) { $0 + $1.meanBusy },
            meanTarget: parts.reduce(0) { $0 + $1.meanTarget }, startRate: parts.reduce(0) { $0 + $1.startRate },
            completionRate: parts.reduce(0) { $0 + $1.completionRate },
            backlogGrowth: parts.reduce(0) { $0 + $1.backlogGrowth } / Double(parts.count),
            waitP50: parts.compactMap(\.waitP50).max(), waitP99: parts.compactMap(\.waitP99).max(),
            hourWindow: parts.map(\.hourWindow).min()!, hourPeakBusy: parts.reduce(0) { $0 + $1.hourPeakBusy })
    }

    /// The JSON of `GET /v1/pools`.
    var json: JSONValue {
        func int(_ n: Int) -> JSONValue { .int(Int64(n)) }
        func number(_ d: Double?) -> JSONValue { d.map { .double(($0 * 1000).rounded() / 1000) } ?? .null }
        return [
            "name": .string(name), "queues": .array(queues.map { .string($0) }),
            "target": int(target), "actual": int(actual), "busy": int(busy), "idle": int(idle),
            "stuck": int(stuck), "free": int(free), "waiting": int(waiting),
            "scheduled": int(scheduled), "processed": int(processed), "failed": int(failed),
            "run_time_p50": number(runTimeP50), "run_time_p99": number(runTimeP99),
            "advisor": [
                "verdict": .string(advice.verdict.rawValue), "message": .string(advice.message),
                "utilisation": number(activity?.utilisation), "window_seconds": number(activity?.window),
                "wait_p50": number(activity?.waitP50), "wait_p99": number(activity?.waitP99),
                "arrival_rate": number(advice.arrivalRate), "completion_rate": number(activity?.completionRate),
                "service_time": number(advice.serviceTime), "offered_load": number(advice.offeredLoad),
                "recommended_concurrency": advice.recommendedConcurrency.map(int) ?? .null,
            ],
            "processes": .array(processes.map { process, pool in
                [
                    "worker": .string(process.id), "host": .string(process.host), "pid": int(process.pid),
                    "target": int(pool.target), "actual": int(pool.threads), "busy": int(pool.busy),
                    "idle": int(pool.idle), "stuck": int(pool.stuck), "free": int(pool.free),
                    "processed": int(pool.processed), "failed": int(pool.failed),
                    "run_time_p50": number(pool.runTimeP50), "run_time_p99": number(pool.runTimeP99),
                    "utilisation": number(pool.activity?.utilisation),
                    "autoscale": pool.autoscale.map { ["min": int($0.min), "max": int($0.max)] } ?? .null,
                ]
            }),
        ]
    }
}
