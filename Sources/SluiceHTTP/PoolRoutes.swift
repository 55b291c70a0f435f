import Foundation
import Hummingbird
import SluiceCore
import SluicePool
import SluiceStore

/// Pools: capacity across every live process, and resizing while they run.
extension SluiceAPI {
    /// Every pool across every live process, summed, with the advisor's reading and a per-process breakdown.
    func poolSummaries() async throws -> [PoolSummary] {
        var processes = try await store.workers(seenWithin: .seconds(15))
        if let worker {
            // This process's own figures are live, not a second old.
            let own = try await worker.capacityWithActivity()
            processes.removeAll { $0.id == worker.id }
            processes.append(WorkerInfo(id: worker.id, host: worker.host, pid: Int(getpid()),
                                        startedAt: clock.now(), heartbeatAt: clock.now(), pools: own, kinds: kinds))
        }
        return PoolSummary.summarize(processes)
    }

    /// `GET /v1/pools`.
    func pools() async throws -> JSONValue {
        ["pools": .array(try await poolSummaries().map(\.json))]
    }

    /// Stores an operator's change of pool `name` (for process `only`, or every process running it)
    /// and applies it here at once; returns the processes it applies to.
    func resizePool(_ name: String, concurrency: Int?, autoscale: AutoscaleRange?, only: String?) async throws -> [String] {
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
            // The same rule every other process applies (Registrar.apply): keep the current size
            // unless one is given, within the autoscale bounds when they are.
            pool.setConcurrency(concurrency ?? pool.capacity().target, autoscale: autoscale)
        }
        return targets.sorted()
    }

    /// `PATCH /v1/pools/{name}`: an operator's change of concurrency or autoscale bounds.
    func resize(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let name = try context.pathParameter("name")
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
        let targets = try await resizePool(name, concurrency: concurrency, autoscale: autoscale, only: request.uri.queryParameters.get("worker"))
        var answer = try await pools()
        if case .array(let all) = answer["pools"] { answer = all.first { $0["name"] == .string(name) } ?? .null }
        return jsonResponse([
            "pool": .string(name), "applied_to": .array(targets.map { .string($0) }),
            "requested": ["concurrency": concurrency.map { .int(Int64($0)) } ?? .null,
                          "autoscale": autoscale.map { ["min": .int(Int64($0.min)), "max": .int(Int64($0.max))] } ?? .null],
            "note": "this process applies the change at once, others within a second; `target` below shows where each stands now",
            "capacity": answer,
        ])
    }
}
