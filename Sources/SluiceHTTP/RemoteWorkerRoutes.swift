import Foundation
import Hummingbird
import SluiceCore
import SluiceStore

/// Remote workers: processes in any language that run tasks through the store's own verbs over
/// HTTP (register, claim, heartbeat, record outcomes, release), so that they show in
/// `GET /v1/workers` and `GET /v1/pools` like `sluice worker` and are rescued the same way when
/// they vanish. The protocol: docs/WORKER-PROTOCOL.md.
extension SluiceAPI {
    /// How often a remote worker should heartbeat: a `PATCH /v1/pools/NAME` reaches it within this,
    /// and `GET /v1/workers` forgets it after 15 s of silence.
    static let remoteHeartbeatInterval = Duration.seconds(1)

    /// `PUT /v1/workers/{id}` (register or refresh) and `POST /v1/workers/{id}/heartbeat` (the same,
    /// and renew `leases`): records the worker and its pools, answers each lease's status and the
    /// operator's settings for its pools.
    func remoteHeartbeat(_ request: Request, _ context: SluiceRequestContext, renewing: Bool) async throws -> Response {
        let id = try remoteWorkerID(context)
        let body = try RemoteWorkerBody.parse(try await readJSON(request), leases: renewing)
        let now = clock.now()
        var statuses: [TaskID: LeaseStatus] = [:]
        if !body.leases.isEmpty {
            statuses = try await store.heartbeat(body.leases.map { $0.lease(owner: id, now: now) }, leaseDuration: limits.remoteLease)
        }
        // A heartbeat that leaves out its host, pid, kinds or pools keeps those registered (a
        // registration without them has none): a lease-only beat must not make the server forget
        // the kinds it runs, which enqueues are checked against.
        let registered = renewing && (body.kinds == nil || body.pools == nil || body.host == nil || body.pid == nil)
            ? try await store.workers(seenWithin: .seconds(86_400)).first { $0.id == id } : nil
        let counts = try await store.counts()
        let paused = try await pausedQueues()
        remoteActivity.paused(paused, at: now)
        // The advisor's activity is measured here from each beat that reports the pools' figures.
        let pools = body.pools?.map { pool in
            var capacity = pool.capacity(counts: counts, paused: paused)
            capacity.activity = remoteActivity.sample(worker: id, pool: capacity, at: now)
            return capacity
        } ?? (registered?.pools ?? []).map { $0.withBacklog(counts: counts, paused: paused) }
        let kinds = body.kinds ?? registered?.kinds ?? []
        // Registered again with another host or pid, it is another process: the store then takes
        // `now` as its start, and keeps the first otherwise.
        try await store.recordWorker(WorkerInfo(id: id, host: body.host ?? registered?.host ?? "", pid: body.pid ?? registered?.pid ?? 0,
                                                startedAt: now, heartbeatAt: now,
                                                pools: pools, kinds: kinds))
        // A new kind is accepted by enqueues at once, not after the cache's second.
        if !workerKinds.holds(where: { Set(kinds).isSubset(of: $0) }) { workerKinds.forget() }
        var answer: [String: JSONValue] = [
            "id": .string(id), "lease": .double(limits.remoteLease.seconds),
            "heartbeat_interval": .double(Self.remoteHeartbeatInterval.seconds), "max_wait": .double(limits.maxWait),
            "pools": try await settings(for: id, pools: pools.map(\.name)),
        ]
        if renewing {
            answer["leases"] = .array(body.leases.map { lease in
                let status: String = switch statuses[lease.taskID] {
                case .held?: "held"
                case .cancelRequested?: "cancel_requested"
                case .lost?, nil: "lost"
                }
                return ["id": .string(lease.taskID.rawValue), "status": .string(status)]
            })
        }
        return jsonResponse(.object(answer))
    }

    /// The newest operator setting of each of `pools` that applies to worker `id`, as a remote
    /// worker applies it: the rule `Registrar.apply` follows for `sluice worker`.
    private func settings(for id: String, pools: [String]) async throws -> JSONValue {
        let stored = try await store.poolSettings()
        return .array(pools.compactMap { name in
            let mine = stored.filter { $0.pool == name && ($0.worker == nil || $0.worker == id) }
            guard let newest = mine.max(by: { $0.updatedAt < $1.updatedAt }) else { return nil }
            return [
                "name": .string(name), "concurrency": newest.concurrency.map { .int(Int64($0)) } ?? .null,
                "autoscale": newest.autoscale.map { ["min": .int(Int64($0.min)), "max": .int(Int64($0.max))] } ?? .null,
                "updated_at": .string(TaskJSON.time(newest.updatedAt)),
            ]
        })
    }

    /// `POST /v1/workers/{id}/claim`: up to `free` ready tasks for each pool, each under a lease
    /// owned by the worker; with `wait`, held open until some are ready. Every pool's claim is one
    /// transaction (all or nothing), and paused queues give nothing, as to `sluice worker`.
    func remoteClaim(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let id = try remoteWorkerID(context)
        let body = try ClaimBody.parse(try await readJSON(request), maxWait: limits.maxWait, maxTasks: limits.maxBatch)
        let wanted = body.pools.filter { $0.free > 0 }
        let channel = context.channel
        let queues = Set(wanted.flatMap(\.queues))
        let claimed = try await claimWaiter.wait(on: queues, timeout: body.wait, clientGone: { await !ClientConnection.isOpen(channel) },
                                                 nextDue: { horizon in
            // Only the queues a claim would take from: a task due in a paused one wakes nobody.
            let open = queues.subtracting(try await pausedQueues())
            return open.isEmpty ? nil : try await store.nextDue(in: Array(open), within: horizon)
        }) {
            let requests = try await claimRequests(wanted, owner: id)
            // One pool's claim is one statement already; several share a transaction.
            let claimed = requests.count == 1
                ? [try await store.claim(queues: requests[0].queues, limit: requests[0].limit, owner: id, leaseDuration: requests[0].leaseDuration)]
                : try await store.record([], thenClaim: requests).claimed
            return zip(wanted, claimed).flatMap { pool, tasks in tasks.map { (pool: pool.name, task: $0) } }
        }
        // A client gone while the claim ran would never hear of these tasks: handed back, not left
        // under a lease nobody renews until it expires and costs them an attempt.
        if !claimed.isEmpty, await !ClientConnection.isOpen(channel) {
            try? await store.release(claimed.compactMap(\.task.lease))
            return jsonResponse(["tasks": []])
        }
        noteClaimed(claimed, by: id)
        return jsonResponse(["tasks": Self.claimedJSON(claimed)])
    }

    /// Tasks handed to a remote worker: their waits for the advisor, their starts for the throughput
    /// chart (a remote worker claims only for free slots, so a claim is as good as a start).
    private func noteClaimed(_ claimed: [(pool: String, task: TaskRecord)], by worker: String) {
        let now = clock.now()
        for (pool, tasks) in Dictionary(grouping: claimed, by: \.pool) {
            remoteActivity.claimed(worker: worker, pool: pool, tasks: tasks.map(\.task), at: now)
        }
        for (_, task) in claimed { history.add(.started, queue: task.queue) }
    }

    /// The store's claims for a remote worker's pools, paused queues left out.
    /// The paused queues, read at most every 250 ms: a pause through another process applies that soon.
    private func pausedQueues() async throws -> Set<String> {
        try await pausedCache.get(maxAge: .milliseconds(250)) { try await store.pausedQueues() }
    }

    private func claimRequests(_ pools: [ClaimBody.Pool], owner: String) async throws -> [ClaimRequest] {
        guard !pools.isEmpty else { return [] }
        let paused = try await pausedQueues()
        remoteActivity.paused(paused, at: clock.now())
        return pools.map { pool in
            ClaimRequest(queues: pool.queues.filter { !paused.contains($0) }, limit: pool.free, owner: owner, leaseDuration: limits.remoteLease)
        }
    }

    /// Claimed tasks as a remote worker receives them.
    private static func claimedJSON(_ claimed: [(pool: String, task: TaskRecord)]) -> JSONValue {
        .array(claimed.map { pool, task in
            [
                "id": .string(task.id.rawValue), "pool": .string(pool), "kind": .string(task.kind), "queue": .string(task.queue),
                "args": task.args, "attempt": .int(Int64(task.attempt)), "max_attempts": .int(Int64(task.maxAttempts)),
                "priority": .int(Int64(task.priority)), "timeout": .double(task.timeout.seconds),
                // A string: 64-bit integers do not survive JSON parsers that read numbers as doubles.
                "token": .string(task.lease.map { String($0.token) } ?? ""),
                "lease_expires_at": task.lease.map { .string(TaskJSON.time($0.expiresAt)) } ?? .null,
            ]
        })
    }

    /// `POST /v1/workers/{id}/outcomes`: results and failures of a batch of attempts, recorded in one
    /// transaction, each fenced by its lease token; answered per task. With `claim`, the freed slots
    /// are refilled in the same transaction (as the Completer does): one request per wave, not two.
    func remoteOutcomes(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let id = try remoteWorkerID(context)
        let now = clock.now()
        let body = try JSONFields(try await readJSON(request), known: ["outcomes", "claim"])
        let outcomes = try RemoteOutcome.parse(body, maxBatch: limits.maxBatch).map { $0.outcome(owner: id, now: now) }
        // No wait: the outcomes must not be held back for tasks that are not there.
        let refill = try body["claim"].map { (value) throws(APIError) in try ClaimBody.parse(value, at: "claim.", maxWait: 0, maxTasks: limits.maxBatch) }
        let wanted = refill?.pools.filter { $0.free > 0 } ?? []
        let result = try await store.record(outcomes, thenClaim: try await claimRequests(wanted, owner: id))
        var answer: [String: JSONValue] = ["outcomes": .array(zip(outcomes, result.recorded).map { outcome, recorded in
            switch recorded {
            case .success(let task): ["id": .string(task.id.rawValue), "state": .string(task.state.rawValue)]
            case .failure(let error):
                ["id": .string(outcome.lease.taskID.rawValue), "error": ["code": .string(error.code.rawValue), "message": .string(error.message)]]
            }
        })]
        if refill != nil {
            let claimed = zip(wanted, result.claimed).flatMap { pool, tasks in tasks.map { (pool: pool.name, task: $0) } }
            noteClaimed(claimed, by: id)
            answer["tasks"] = Self.claimedJSON(claimed)
        }
        return jsonResponse(.object(answer))
    }

    /// `POST /v1/workers/{id}/release`: hands claimed but unstarted tasks back to their queues.
    func remoteRelease(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let id = try remoteWorkerID(context)
        let fields = try JSONFields(try await readJSON(request), known: ["leases"])
        let leases = try LeaseReference.parseList(fields, maxBatch: limits.maxBatch)
        let now = clock.now()
        try await store.release(leases.map { $0.lease(owner: id, now: now) })
        return jsonResponse(["released": .int(Int64(leases.count))])
    }

    /// `DELETE /v1/workers/{id}`: forgets a remote worker that stops cleanly.
    func remoteDeregister(_ context: SluiceRequestContext) async throws -> Response {
        let id = try remoteWorkerID(context)
        try await store.removeWorker(id)
        remoteActivity.forget(worker: id)
        return Response(status: .noContent)
    }

    /// The worker id of the path, refused when it is not a plain name or is this server's own.
    private func remoteWorkerID(_ context: SluiceRequestContext) throws -> String {
        let id = try context.pathParameter("id")
        try JSONFields.checkName(id, at: "id")
        guard id != worker?.id else { throw APIError.badRequest("id", "is this server's own worker; give your worker an id of its own") }
        return id
    }
}
