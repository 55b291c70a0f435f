import Foundation
import Hummingbird
import SluiceCore
import SluicePool
import SluiceStore

/// Pools: capacity across every live process, and resizing while they run.
extension SluiceAPI {
    /// Every pool across every live process, summed, with a per-process breakdown.
    func pools() async throws -> JSONValue {
        var processes = try await store.workers(seenWithin: .seconds(15))
        if let worker {
            // This process's own figures are live, not a second old.
            let own = try await worker.capacity()
            processes.removeAll { $0.id == worker.id }
            processes.append(WorkerInfo(id: worker.id, host: worker.host, pid: Int(getpid()),
                                        startedAt: clock.now(), heartbeatAt: clock.now(), pools: own, kinds: kinds))
        }
        var byName: [String: [(WorkerInfo, PoolCapacity)]] = [:]
        for process in processes { for pool in process.pools { byName[pool.name, default: []].append((process, pool)) } }
        return ["pools": .array(byName.keys.sorted().map { name in
            let entries = byName[name]!
            func sum(_ key: KeyPath<PoolCapacity, Int>) -> JSONValue { .int(Int64(entries.reduce(0) { $0 + $1.1[keyPath: key] })) }
            let first = entries[0].1
            return [
                "name": .string(name), "queues": .array(first.queues.map { .string($0) }),
                "target": sum(\.target), "actual": sum(\.threads), "busy": sum(\.busy), "idle": sum(\.idle),
                "stuck": sum(\.stuck), "free": sum(\.free), "waiting": .int(Int64(first.waiting)),
                "scheduled": .int(Int64(first.scheduled)), "processed": sum(\.processed), "failed": sum(\.failed),
                "run_time_p50": entries.compactMap(\.1.runTimeP50).max().map { .double($0) } ?? .null,
                "run_time_p99": entries.compactMap(\.1.runTimeP99).max().map { .double($0) } ?? .null,
                "processes": .array(entries.map { process, pool in
                    [
                        "worker": .string(process.id), "host": .string(process.host), "pid": .int(Int64(process.pid)),
                        "target": .int(Int64(pool.target)), "actual": .int(Int64(pool.threads)), "busy": .int(Int64(pool.busy)),
                        "idle": .int(Int64(pool.idle)), "stuck": .int(Int64(pool.stuck)), "free": .int(Int64(pool.free)),
                        "processed": .int(Int64(pool.processed)), "failed": .int(Int64(pool.failed)),
                        "run_time_p50": pool.runTimeP50.map { .double($0) } ?? .null,
                        "run_time_p99": pool.runTimeP99.map { .double($0) } ?? .null,
                        "autoscale": pool.autoscale.map { ["min": .int(Int64($0.min)), "max": .int(Int64($0.max))] } ?? .null,
                    ]
                }),
            ]
        })]
    }

    /// `PATCH /v1/pools/{name}`: an operator's change of concurrency or autoscale bounds.
    func resize(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = context.parameters.get("name") ?? ""
        guard let body = try await readJSON(request).objectValue else { throw APIError.badRequest("body", "must be a JSON object") }
        if let unknown = body.keys.sorted().first(where: { $0 != "concurrency" && $0 != "autoscale" }) {
            throw APIError.badRequest(unknown, "is not a known field; known fields: autoscale, concurrency")
        }
        var concurrency: Int?
        if let value = body["concurrency"], value != .null {
            guard let n = value.intValue, let int = Int(exactly: n), PoolSetting.concurrencyRange.contains(int) else {
                throw APIError.badRequest("concurrency", "must be a whole number from 1 to \(PoolSetting.concurrencyRange.upperBound)")
            }
            concurrency = int
        }
        var autoscale: AutoscaleRange?
        if let value = body["autoscale"], value != .null {
            guard let object = value.objectValue, Set(object.keys) == ["min", "max"],
                  let low = object["min"]?.intValue, let high = object["max"]?.intValue,
                  low >= 1, high >= low, high <= Int64(PoolSetting.concurrencyRange.upperBound) else {
                throw APIError.badRequest("autoscale", "must be {\"min\": MIN, \"max\": MAX} with 1 ≤ MIN ≤ MAX ≤ 10000")
            }
            autoscale = AutoscaleRange(min: Int(low), max: Int(high))
        }
        guard concurrency != nil || autoscale != nil else { throw APIError.badRequest("concurrency", "give concurrency, autoscale or both") }
        let only = request.uri.queryParameters.get("worker")
        let running = try await store.workers(seenWithin: .seconds(15)).filter { $0.pools.contains { $0.name == name } }.map(\.id)
            + (worker?.pool(name) != nil ? [worker!.id] : [])
        let targets = Set(running).filter { only == nil || $0 == only }
        guard !targets.isEmpty else {
            let whom = only.map { "process \($0)" } ?? "any live process"
            throw APIError(.notFound, "not_found", "pool \(name) does not run in \(whom)")
        }
        try await store.savePoolSetting(PoolSetting(pool: name, worker: only, concurrency: concurrency, autoscale: autoscale, updatedAt: clock.now()))
        // This process applies it now; the others within a second.
        if let worker, targets.contains(worker.id), let pool = worker.pool(name) {
            // The same rule every other process applies (Worker.applySettings): keep the current size
            // unless one is given, within the autoscale bounds when they are.
            pool.setConcurrency(concurrency ?? pool.capacity().target, autoscale: autoscale)
        }
        var answer = try await pools()
        if case .array(let all) = answer["pools"] { answer = all.first { $0["name"] == .string(name) } ?? .null }
        return jsonResponse([
            "pool": .string(name), "applied_to": .array(targets.sorted().map { .string($0) }),
            "requested": ["concurrency": concurrency.map { .int(Int64($0)) } ?? .null,
                          "autoscale": autoscale.map { ["min": .int(Int64($0.min)), "max": .int(Int64($0.max))] } ?? .null],
            "note": "this process applies the change at once, others within a second; `target` below shows where each stands now",
            "capacity": answer,
        ])
    }
}
