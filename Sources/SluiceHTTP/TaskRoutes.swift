import Foundation
import Hummingbird
import SluiceCore
import SluiceStore

/// Tasks: enqueue (one or a batch), list, show and wait, cancel and retry.
extension SluiceAPI {
    /// `POST /v1/tasks`: one task, answered at once or, with `?wait=`, when final.
    func enqueue(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let wait = try waitSeconds(request)
        let body = try await readJSON(request)
        let parsed = try EnqueueBody.parse(body, now: clock.now(), idempotencyHeader: request.headers.first { $0.name.canonicalName == "idempotency-key" }?.value)
        let target = try await storeFor(parsed)
        if !target.durable { try await admitToMemory(1) }
        let result = try await target.store.enqueue(parsed.request)
        var task = result.task
        if let wait, !task.state.isFinal { task = try await waiter.wait(for: task.id, in: target.store, timeout: wait) }
        // With ?wait: 200 when final, 202 when still in flight. Without: 202 for a new task, 200 when an
        // idempotency key matched an existing one.
        let status: HTTPResponse.Status = wait != nil ? (task.state.isFinal ? .ok : .accepted) : (result.created ? .accepted : .ok)
        return jsonResponse(TaskJSON.encode(task, durable: target.durable), status: status,
                            headers: [.location: "/v1/tasks/\(task.id)"])
    }

    /// `POST /v1/tasks/batch`: many tasks, stored in one transaction.
    func enqueueBatch(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        guard case .array(let items) = try await readJSON(request) else { throw APIError.badRequest("body", "must be a JSON array of tasks") }
        guard !items.isEmpty, items.count <= limits.maxBatch else { throw APIError.badRequest("body", "must hold 1 to \(limits.maxBatch) tasks") }
        let now = clock.now()
        var parsed: [EnqueueBody] = []
        for (index, item) in items.enumerated() { parsed.append(try EnqueueBody.parse(item, prefix: "[\(index)].", now: now)) }
        guard Set(parsed.map(\.durable)).count == 1 else {
            throw APIError.badRequest("durable", "must be the same for every task of a batch (it is stored in one place, atomically)")
        }
        var target: (store: any TaskStore, durable: Bool)?
        for (index, body) in parsed.enumerated() { target = try await storeFor(body, prefix: "[\(index)].") }
        if !target!.durable { try await admitToMemory(parsed.count) }
        let results = try await target!.store.enqueue(batch: parsed.map(\.request))
        return jsonResponse(["tasks": .array(results.map { TaskJSON.encode($0.task, durable: target!.durable) })], status: .accepted)
    }

    /// `GET /v1/tasks/{id}`: one task, at once or, with `?wait=`, when final.
    func show(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let wait = try waitSeconds(request)
        let (found, durable, source) = try await find(context)
        var task = found
        if let wait, !task.state.isFinal { task = try await waiter.wait(for: task.id, in: source, timeout: wait) }
        return jsonResponse(TaskJSON.encode(task, durable: durable), status: wait != nil && !task.state.isFinal ? .accepted : .ok)
    }

    /// `GET /v1/tasks`: a page of tasks, filtered by state, queue and kind.
    func list(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        var filter = TaskFilter()
        if let states = query.get("state"), !states.isEmpty {
            var set = Set<TaskState>()
            for name in states.split(separator: ",") {
                guard let state = TaskState(rawValue: String(name)) else {
                    throw APIError.badRequest("state", "\(name) is not a state; states: \(TaskState.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                set.insert(state)
            }
            filter.states = set
        }
        filter.queue = query.get("queue").flatMap { $0.isEmpty ? nil : $0 }
        filter.kind = query.get("kind").flatMap { $0.isEmpty ? nil : $0 }
        var limit = 50
        if let text = query.get("limit") {
            guard let n = Int(text), (1...1000).contains(n) else { throw APIError.badRequest("limit", "must be a whole number from 1 to 1000") }
            limit = n
        }
        var cursor: TaskID?
        if let text = query.get("cursor"), !text.isEmpty {
            guard let id = TaskID(text) else { throw APIError.badRequest("cursor", "is not a cursor this API gave out") }
            cursor = id
        }
        let durable: Bool
        switch query.get("durable") {
        case nil, "true": durable = true
        case "false": durable = false
        case let other?: throw APIError.badRequest("durable", "must be true or false, not \(other.prefix(32))")
        }
        // Without an in-process pool there are no fire-and-forget tasks to list.
        let page = durable ? try await store.list(filter, limit: limit, after: cursor)
            : try await memory?.list(filter, limit: limit, after: cursor) ?? TaskPage(tasks: [], nextCursor: nil)
        return jsonResponse(["tasks": .array(page.tasks.map { TaskJSON.encode($0, durable: durable) }),
                             "next_cursor": page.nextCursor.map { .string($0.rawValue) } ?? .null])
    }

    /// Cancel or retry the task named in the path.
    func change(_ context: BasicRequestContext, _ move: (any TaskStore, TaskID) async throws -> TaskRecord) async throws -> Response {
        let (task, durable, source) = try await find(context)
        return jsonResponse(TaskJSON.encode(try await move(source, task.id), durable: durable))
    }

    /// The task named in the path, from memory (fire-and-forget) or the durable store.
    func find(_ context: BasicRequestContext) async throws -> (TaskRecord, Bool, any TaskStore) {
        let text = context.parameters.get("id") ?? ""
        guard let id = TaskID(text) else { throw APIError(.notFound, "not_found", "no task has id \(text.prefix(64))") }
        if let memory, let task = try await memory.task(id) { return (task, false, memory) }
        if let task = try await store.task(id) { return (task, true, store) }
        throw APIError(.notFound, "not_found", "no task has id \(id)")
    }

    /// Where a task goes: the durable store, or memory when it runs in this process's own pool.
    func storeFor(_ body: EnqueueBody, prefix: String = "") async throws -> (store: any TaskStore, durable: Bool) {
        let known = try await knownKinds()
        guard known.contains(body.request.kind) else {
            throw APIError(.unprocessableContent, "unknown_kind", "no handler for kind \(body.request.kind); known kinds: \(known.sorted().joined(separator: ", "))", field: prefix + "kind")
        }
        if let bound = limits.maxQueueDepth, try await readyCount(body.request.queue) >= bound {
            throw APIError(.serviceUnavailable, "queue_full", "queue \(body.request.queue) holds \(bound) or more ready tasks; try again later",
                           headers: [.retryAfter: "1"])
        }
        if body.durable { return (store, true) }
        guard let memory, let worker, worker.pools.contains(where: { $0.queues.contains(body.request.queue) }) else {
            throw APIError(.unprocessableContent, "no_local_pool",
                           "durable=false runs the task in this server's own pool, and no pool here drains queue \(body.request.queue); enqueue it durably or start the server with a pool for that queue",
                           field: prefix + "durable")
        }
        return (memory, false)
    }

    /// Ready tasks in `queue`, durable and in memory, from counts at most `queueDepthRefresh` old.
    func readyCount(_ queue: String) async throws -> Int {
        try await readyCounts.get(maxAge: limits.queueDepthRefresh) {
            var ready: [String: Int] = [:]
            for counts in try await store.counts() + (memory?.counts() ?? []) { ready[counts.queue, default: 0] += counts.counts[.queued] ?? 0 }
            return ready
        }[queue] ?? 0
    }

    /// Refuses `count` fire-and-forget tasks when they would leave more than `maxMemoryTasks`
    /// unfinished in memory.
    func admitToMemory(_ count: Int) async throws {
        guard let memory else { return }
        let admitted = try await memoryAdmission.admit(count, limit: limits.maxMemoryTasks, refresh: limits.queueDepthRefresh) {
            try await memory.counts().reduce(0) { sum, queue in sum + queue.counts.filter { !$0.key.isFinal }.values.reduce(0, +) }
        }
        guard admitted else {
            throw APIError(.serviceUnavailable, "overloaded",
                           "this server holds \(limits.maxMemoryTasks) fire-and-forget tasks that have not finished (--max-memory-tasks); enqueue durably, or try again later",
                           field: "durable", headers: [.retryAfter: "1"])
        }
    }

    /// Kinds this server's registry knows, and those of live workers (read at most once a second).
    func knownKinds() async throws -> Set<String> {
        try await workerKinds.get(maxAge: .seconds(1)) {
            Set(kinds).union(try await store.workers(seenWithin: .seconds(15)).flatMap(\.kinds))
        }
    }
}
