import Foundation
import Hummingbird
import SluiceCore
import SluicePool

/// Workers: the live processes and their pools.
extension SluiceAPI {
    /// `GET /v1/workers`: the live processes.
    func workers() async throws -> Response {
        let list = try await store.workers(seenWithin: .seconds(15))
        // The store answers only an unexpired lease, by its own clock (the database's, not this host's).
        let leader = try await store.leader(Worker.leadershipName)?.owner
        return jsonResponse(["workers": .array(list.map { worker in
            [
                "id": .string(worker.id), "host": .string(worker.host), "pid": .int(Int64(worker.pid)),
                "started_at": .string(TaskJSON.time(worker.startedAt)), "heartbeat_at": .string(TaskJSON.time(worker.heartbeatAt)),
                "pools": .array(worker.pools.map { ["name": .string($0.name), "target": .int(Int64($0.target)), "busy": .int(Int64($0.busy))] }),
                "this_server": .bool(worker.id == self.worker?.id),
                "leader": .bool(worker.id == leader),
            ]
        })])
    }
}
