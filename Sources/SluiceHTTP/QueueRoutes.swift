import Foundation
import Hummingbird
import SluiceCore
import SluiceStore

/// One queue as the API and the console show it: counts by state, durable and in memory, and
/// whether it is paused.
struct QueueSummary: Sendable {
    var name: String
    var durable: [TaskState: Int]
    var memory: [TaskState: Int]
    var paused: Bool
    /// Since when the ready task a claim would take next has been waiting (durable or in memory,
    /// whichever is older); `nil` with no ready task.
    var headReadySince: Date?

    /// Durable and memory counts together.
    func count(_ state: TaskState) -> Int { (durable[state] ?? 0) + (memory[state] ?? 0) }
}

/// Queues: task counts by state, durable and in memory; pause and resume; throughput history.
extension SluiceAPI {
    /// Every queue that has tasks or is paused, by name.
    func queueSummaries() async throws -> [QueueSummary] {
        let durable = try await store.counts()
        let memory = try await self.memory?.counts() ?? []
        let paused = try await store.pausedQueues()
        let names = Set(durable.map(\.queue)).union(memory.map(\.queue)).union(paused).sorted()
        // One index seek per queue: the age of each queue's head, not a scan of its tasks.
        let heads = try await store.nextReady(in: names)
        let memoryHeads = try await self.memory?.nextReady(in: names) ?? [:]
        return names.map { name in
            QueueSummary(name: name, durable: durable.first { $0.queue == name }?.counts ?? [:],
                         memory: memory.first { $0.queue == name }?.counts ?? [:], paused: paused.contains(name),
                         headReadySince: [heads[name], memoryHeads[name]].compactMap { $0 }.min())
        }
    }

    /// `GET /v1/queues`: counts by state per queue, and the paused queues.
    func queues() async throws -> Response {
        func encode(_ counts: [QueueCounts]) -> JSONValue {
            .array(counts.map { q in
                ["queue": .string(q.queue), "counts": .object(Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0.rawValue, JSONValue.int(Int64(q.counts[$0] ?? 0))) }))]
            })
        }
        let summaries = try await queueSummaries()
        let heads = summaries.compactMap { queue in queue.headReadySince.map { (queue.name, JSONValue.string(TaskJSON.time($0))) } }
        return jsonResponse(["durable": encode(try await store.counts()), "memory": encode(try await memory?.counts() ?? []),
                             "paused": .array(summaries.filter(\.paused).map { .string($0.name) }),
                             "head_ready_since": .object(Dictionary(uniqueKeysWithValues: heads))])
    }

    /// Pauses or resumes queue `name` for every process; this process's fetchers see it at once.
    func setPaused(_ name: String, _ paused: Bool) async throws {
        // A name no queue can have would be paused to no effect, and said to be. Resuming takes
        // any name: one paused before this rule held must still be resumable.
        if paused {
            try JSONFields.checkName(name, at: "name")
        } else {
            guard !name.isEmpty, name.count <= 200 else { throw APIError.badRequest("name", "must be a queue name of 1 to 200 characters") }
        }
        try await store.setQueuePaused(name, paused)
        pausedCache.forget()
        if let worker {
            var queues = worker.pausedQueues
            if paused { queues.insert(name) } else { queues.remove(name) }
            worker.setPausedQueues(queues)
        }
    }

    /// `POST /v1/queues/{name}/pause` and `…/resume`.
    func pause(_ context: SluiceRequestContext, _ paused: Bool) async throws -> Response {
        let name = try context.pathParameter("name")
        try await setPaused(name, paused)
        return jsonResponse(["queue": .string(name), "paused": .bool(paused),
                             "note": "this process stops or resumes claiming at once, others within a second; enqueues are accepted either way"])
    }

    /// `GET /v1/throughput?queue=Q&seconds=N`: per second, oldest first, what this process saw.
    func throughput(_ request: Request) throws -> Response {
        let query = request.uri.queryParameters
        var seconds = 900
        if let text = query.get("seconds") {
            guard let n = Int(text), (1...history.capacity).contains(n) else {
                throw APIError.badRequest("seconds", "must be a whole number from 1 to \(history.capacity)")
            }
            seconds = n
        }
        let queue = query.get("queue").flatMap { $0.isEmpty ? nil : $0 }
        let series = history.series(queue: queue, seconds: seconds)
        var counts: [String: JSONValue] = [:]
        for (event, values) in series.counts { counts[event.rawValue] = .array(values.map { .int(Int64($0)) }) }
        return jsonResponse(["queue": queue.map { .string($0) } ?? .null, "start": .int(series.start), "step_seconds": 1,
                             "queues": .array(history.queues.map { .string($0) }), "series": .object(counts)])
    }
}
