import Hummingbird
import SluiceCore
import SluiceStore

/// Queues: task counts by state, durable and in memory.
extension SluiceAPI {
    /// `GET /v1/queues`: counts by state per queue.
    func queues() async throws -> Response {
        func encode(_ counts: [QueueCounts]) -> JSONValue {
            .array(counts.map { q in
                ["queue": .string(q.queue), "counts": .object(Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0.rawValue, JSONValue.int(Int64(q.counts[$0] ?? 0))) }))]
            })
        }
        return jsonResponse(["durable": encode(try await store.counts()), "memory": encode(try await memory?.counts() ?? [])])
    }
}
