import Foundation
import Hummingbird
import SluiceCore
import SluiceStore

/// Tasks: enqueue (one or a batch), list, show and wait, cancel and retry.
extension SluiceAPI {
    /// `POST /v1/tasks`: one task, answered at once or, with `?wait=`, when final.
    func enqueue(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
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
        return jsonResponse(bytes: TaskJSON.bytes(task, durable: target.durable), status: status,
                            headers: [.location: "/v1/tasks/\(task.id)"])
    }

    /// `POST /v1/tasks/batch`: many tasks, stored in one transaction, answered at once or, with
    /// `?wait=`, when all are final (a Celery group's `get()`).
    func enqueueBatch(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let wait = try waitSeconds(request)
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
        // A key repeated within the batch for another task: said here, naming both places (the
        // store would name a task of this very batch, which is then rolled back and never stored).
        var keyed: [String: Int] = [:]
        for (index, body) in parsed.enumerated() {
            guard let key = body.request.idempotencyKey else { continue }
            let slot = body.request.queue + "\u{0}" + key
            if let first = keyed[slot] {
                let earlier = parsed[first].request
                guard earlier.kind == body.request.kind, earlier.args.sameJSON(as: body.request.args) else {
                    throw APIError(.conflict, "idempotency_conflict",
                                   "repeats the idempotency key of [\(first)] in queue \(body.request.queue) for another kind or other args; give it another key",
                                   field: "[\(index)].idempotency_key")
                }
            } else {
                keyed[slot] = index
            }
        }
        if !target!.durable { try await admitToMemory(parsed.count) }
        let results = try await target!.store.enqueue(batch: parsed.map(\.request))
        var tasks = results.map(\.task)
        if let wait, !tasks.allSatisfy(\.state.isFinal) { tasks = try await waiter.wait(for: tasks.map(\.id), in: target!.store, timeout: wait) }
        let status: HTTPResponse.Status = wait != nil && tasks.allSatisfy(\.state.isFinal) ? .ok : .accepted
        return jsonResponse(bytes: TaskJSON.page(tasks, durable: target!.durable), status: status)
    }

    /// `GET /v1/tasks/{id}`: one task, at once or, with `?wait=`, when final.
    func show(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let wait = try waitSeconds(request)
        let (found, durable, source) = try await find(context)
        var task = found
        if let wait, !task.state.isFinal { task = try await waiter.wait(for: task.id, in: source, timeout: wait) }
        return jsonResponse(bytes: TaskJSON.bytes(task, durable: durable), status: wait != nil && !task.state.isFinal ? .accepted : .ok)
    }

    /// `GET /v1/tasks`: a page of tasks, searched by the parameters of `TaskQuery`.
    func list(_ request: Request) async throws -> Response {
        // Form-decoded (`+` is a space), as the console reads the same search.
        let query = try TaskQuery.parse(Self.formPairs(request.uri.query ?? ""))
        let page = try await search(query)
        return jsonResponse(bytes: TaskJSON.page(page.tasks, durable: query.durable, with: [
            "next_cursor": page.nextCursor.map { .string($0.rawValue) } ?? .null, "partial": .bool(page.partial),
        ]))
    }

    /// One page of a search, durable or in memory.
    func search(_ query: TaskQuery) async throws -> TaskPage {
        // Without an in-process pool there are no fire-and-forget tasks to list.
        query.durable ? try await store.list(query.filter, limit: query.limit, after: query.cursor)
            : try await memory?.list(query.filter, limit: query.limit, after: query.cursor) ?? TaskPage(tasks: [], nextCursor: nil)
    }

    /// What a bulk action did.
    struct BulkResult: Sendable {
        var matched = 0
        var changed = 0
        var refused: [(TaskID, String)] = []
        /// More tasks may match than one call takes: repeat it.
        var more = false
    }

    /// The actions of `POST /v1/tasks/bulk`.
    enum BulkAction: String, Sendable, CaseIterable {
        case retry, cancel, delete

        func apply(_ store: any TaskStore, _ id: TaskID) async throws {
            switch self {
            case .retry: _ = try await store.retry(id)
            case .cancel: _ = try await store.cancel(id)
            case .delete: _ = try await store.delete(id)
            }
        }

        /// The states this action changes. A search by filter looks only at these: tasks it cannot
        /// change would otherwise fill a call's 1000 again at every call, so that `more` never ended.
        var applies: Set<TaskState> {
            switch self {
            case .retry: [.failed, .cancelled]
            case .cancel: [.scheduled, .queued, .running, .retrying]
            case .delete: [.succeeded, .failed, .cancelled]
            }
        }
    }

    /// The most tasks one bulk call changes, and the most pages of a search it walks.
    static let bulkLimit = 1000

    /// Applies `action` to the tasks `ids` names, or else to those `query` finds (at most `bulkLimit`).
    func bulk(_ action: BulkAction, ids: [TaskID]?, query: TaskQuery?) async throws -> BulkResult {
        var result = BulkResult()
        var targets: [(TaskID, any TaskStore)] = []
        if let ids {
            for id in ids {
                if let memory, try await memory.task(id) != nil { targets.append((id, memory)) } else { targets.append((id, store)) }
            }
        } else if var query {
            query.limit = 1000
            query.filter.states = (query.filter.states ?? Set(TaskState.allCases)).intersection(action.applies)
            guard query.filter.states?.isEmpty == false else { return result }
            let source: any TaskStore = query.durable ? store : (memory ?? store)
            // Bounded: at most ten pages of examined rows per call; `more` tells the caller to repeat.
            for _ in 0..<10 {
                let page = try await search(query)
                let room = Self.bulkLimit - targets.count
                targets += page.tasks.prefix(room).map { ($0.id, source) }
                guard page.tasks.count <= room, let next = page.nextCursor else {
                    result.more = page.tasks.count > room
                    break
                }
                query.cursor = next
                result.more = true
                if targets.count >= Self.bulkLimit { break }
            }
        }
        result.matched = targets.count
        for (id, source) in targets {
            do {
                try await action.apply(source, id)
                result.changed += 1
            } catch let error as SluiceError where error.code != .storage && error.code != .closed {
                // The task's own refusal (its state, gone meanwhile); a store that cannot answer
                // fails the call (503), rather than being reported task by task.
                result.refused.append((id, error.message))
            }
        }
        return result
    }

    /// `POST /v1/tasks/bulk`: `{"action": "retry"|"cancel"|"delete", "ids": [...]}` or with
    /// `"filter": {PARAMETER: VALUE, ...}` (the search parameters of `GET /v1/tasks`).
    func bulk(_ request: Request) async throws -> Response {
        guard let body = try await readJSON(request).objectValue else { throw APIError.badRequest("body", "must be a JSON object") }
        if let unknown = body.keys.sorted().first(where: { !["action", "ids", "filter"].contains($0) }) {
            throw APIError.badRequest(unknown, "is not a known field; known fields: action, filter, ids")
        }
        guard let name = body["action"]?.stringValue, let action = BulkAction(rawValue: name) else {
            throw APIError.badRequest("action", "must be one of \(BulkAction.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var ids: [TaskID]?
        var query: TaskQuery?
        switch (body["ids"], body["filter"]) {
        case (.array(let items)?, nil):
            guard items.count <= Self.bulkLimit else { throw APIError.badRequest("ids", "must hold at most \(Self.bulkLimit) ids") }
            ids = try items.enumerated().map { index, item in
                guard let text = item.stringValue, let id = TaskID(text) else { throw APIError.badRequest("ids[\(index)]", "is not a task id") }
                return id
            }
        case (nil, .object(let object)?):
            var pairs: [(String, String)] = []
            for (key, value) in object.sorted(by: { $0.key < $1.key }) {
                guard TaskQuery.names.contains(key) || key.hasPrefix("args."), key != "cursor", key != "limit" else {
                    throw APIError.badRequest("filter.\(key)", "is not a search parameter; parameters: \(TaskQuery.names.filter { $0 != "cursor" && $0 != "limit" }.joined(separator: ", ")), args.NAME")
                }
                guard let text = value.stringValue ?? TaskFilter.text(of: value) else { throw APIError.badRequest("filter.\(key)", "must be a string") }
                pairs.append((key, text))
            }
            let parsed = try TaskQuery.parse(pairs, prefix: "filter.")
            // Judged on what was parsed, not on the keys given: an empty value or `durable` alone
            // is no condition, and would have the action change every task.
            guard !parsed.filter.matchesEverything else {
                throw APIError.badRequest("filter", "must hold at least one condition with a value (to act on every task, say so with a state)")
            }
            query = parsed
        default:
            throw APIError.badRequest("ids", "give either ids (an array of task ids) or filter (an object of search parameters)")
        }
        let result = try await bulk(action, ids: ids, query: query)
        return jsonResponse([
            "action": .string(action.rawValue), "matched": .int(Int64(result.matched)), "changed": .int(Int64(result.changed)),
            "refused": .array(result.refused.prefix(100).map { ["id": .string($0.0.rawValue), "message": .string($0.1)] }),
            "more": .bool(result.more),
        ])
    }

    /// Cancel, retry or delete the task named in the path.
    func change(_ context: SluiceRequestContext, _ move: (any TaskStore, TaskID) async throws -> TaskRecord) async throws -> Response {
        let (task, durable, source) = try await find(context)
        return jsonResponse(bytes: TaskJSON.bytes(try await move(source, task.id), durable: durable))
    }

    /// The task named in the path, from memory (fire-and-forget) or the durable store.
    func find(_ context: SluiceRequestContext) async throws -> (TaskRecord, Bool, any TaskStore) {
        // Any text that is not an id, even one not validly percent-encoded, names no task: 404.
        let text = (try? context.pathParameter("id")) ?? context.parameters.get("id") ?? ""
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
