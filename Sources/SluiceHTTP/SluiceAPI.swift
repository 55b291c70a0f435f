import Foundation
import Hummingbird
import Metrics
import Prometheus
import Synchronization
import SluiceCore
import SluicePool
import SluiceStore

/// The HTTP API: enqueue, status and wait, pool capacity and resizing, workers, queues, health and
/// metrics. See docs/API.md.
public struct SluiceAPI: Sendable {
    /// Limits the API enforces.
    public struct Limits: Sendable {
        /// Largest request body, in bytes.
        public var maxBody = 1 << 20
        /// Most tasks in one batch.
        public var maxBatch = 1000
        /// Longest `?wait=`, in seconds.
        public var maxWait = 300.0
        /// Refuse enqueues (503) while a queue has this many ready tasks; `nil`: no bound.
        public var maxQueueDepth: Int?
        /// How long ready counts for the depth bound are reused, so the bound costs no COUNT per enqueue.
        public var queueDepthRefresh: Duration = .milliseconds(250)
        public init() {}
    }

    public typealias Store = TaskStore & WorkerDirectory

    let store: any Store
    let memory: MemoryTaskStore?
    let worker: Worker?
    let kinds: [String]
    let tokens: [String]
    let limits: Limits
    let clock: any WallClock
    let metrics: PrometheusCollectorRegistry?
    let waiter: TaskWaiter
    /// Ready counts per queue, for the depth bound: it must not cost a COUNT on every enqueue.
    let readyCounts = RecentValue<[String: Int]>()
    /// Kinds that live workers run: enqueues must not read the workers table each.
    let workerKinds = RecentValue<Set<String>>()

    /// An API over `store`; with a `worker`, durable and fire-and-forget tasks run in its pools.
    public init(store: any Store, memory: MemoryTaskStore?, worker: Worker?, kinds: [String], tokens: [String] = [],
                limits: Limits = Limits(), clock: any WallClock = SystemClock(), metrics: PrometheusCollectorRegistry? = nil) {
        self.store = store
        self.memory = memory
        self.worker = worker
        self.kinds = kinds
        self.tokens = tokens
        self.limits = limits
        self.clock = clock
        self.metrics = metrics
        waiter = TaskWaiter(stores: [store] + (memory.map { [$0] } ?? []))
    }

    /// A router with every route, the error middleware and, with tokens, authentication.
    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        if !tokens.isEmpty { router.add(middleware: BearerAuth(tokens: tokens)) }
        router.post("/v1/tasks") { request, context in try await enqueue(request, context) }
        router.post("/v1/tasks/batch") { request, context in try await enqueueBatch(request, context) }
        router.get("/v1/tasks") { request, _ in try await list(request) }
        router.get("/v1/tasks/{id}") { request, context in try await show(request, context) }
        router.post("/v1/tasks/{id}/cancel") { _, context in try await change(context) { try await $0.cancel($1) } }
        router.post("/v1/tasks/{id}/retry") { _, context in try await change(context) { try await $0.retry($1) } }
        router.get("/v1/pools") { _, _ in jsonResponse(try await pools()) }
        router.patch("/v1/pools/{name}") { request, context in try await resize(request, context) }
        router.get("/v1/workers") { _, _ in try await workers() }
        router.get("/v1/queues") { _, _ in try await queues() }
        router.get("/healthz") { _, _ in await health() }
        router.get("/metrics") { _, _ in try await prometheus() }
        return router
    }

    // MARK: - Tasks

    func enqueue(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let wait = try waitSeconds(request)
        let body = try await readJSON(request)
        let parsed = try EnqueueBody.parse(body, now: clock.now(), idempotencyHeader: request.headers.first { $0.name.canonicalName == "idempotency-key" }?.value)
        let target = try await storeFor(parsed)
        let result = try await target.store.enqueue(parsed.request)
        var task = result.task
        if let wait, !task.state.isFinal { task = try await waiter.wait(for: task.id, in: target.store, timeout: wait) }
        // With ?wait: 200 when final, 202 when still in flight. Without: 202 for a new task, 200 when an
        // idempotency key matched an existing one.
        let status: HTTPResponse.Status = wait != nil ? (task.state.isFinal ? .ok : .accepted) : (result.created ? .accepted : .ok)
        return jsonResponse(TaskJSON.encode(task, durable: target.durable), status: status,
                            headers: [.location: "/v1/tasks/\(task.id)"])
    }

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
        let results = try await target!.store.enqueue(batch: parsed.map(\.request))
        return jsonResponse(["tasks": .array(results.map { TaskJSON.encode($0.task, durable: target!.durable) })], status: .accepted)
    }

    func show(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let wait = try waitSeconds(request)
        let (found, durable, source) = try await find(context)
        var task = found
        if let wait, !task.state.isFinal { task = try await waiter.wait(for: task.id, in: source, timeout: wait) }
        return jsonResponse(TaskJSON.encode(task, durable: durable), status: wait != nil && !task.state.isFinal ? .accepted : .ok)
    }

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

    /// Ready tasks in `queue`, from counts at most `queueDepthRefresh` old.
    func readyCount(_ queue: String) async throws -> Int {
        try await readyCounts.get(maxAge: limits.queueDepthRefresh) {
            Dictionary(uniqueKeysWithValues: try await store.counts().map { ($0.queue, $0.counts[.queued] ?? 0) })
        }[queue] ?? 0
    }

    /// Kinds this server's registry knows, and those of live workers (read at most once a second).
    func knownKinds() async throws -> Set<String> {
        try await workerKinds.get(maxAge: .seconds(1)) {
            Set(kinds).union(try await store.workers(seenWithin: .seconds(15)).flatMap(\.kinds))
        }
    }

    // MARK: - Pools, workers, queues

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

    func workers() async throws -> Response {
        let list = try await store.workers(seenWithin: .seconds(15))
        return jsonResponse(["workers": .array(list.map { worker in
            [
                "id": .string(worker.id), "host": .string(worker.host), "pid": .int(Int64(worker.pid)),
                "started_at": .string(TaskJSON.time(worker.startedAt)), "heartbeat_at": .string(TaskJSON.time(worker.heartbeatAt)),
                "pools": .array(worker.pools.map { ["name": .string($0.name), "target": .int(Int64($0.target)), "busy": .int(Int64($0.busy))] }),
                "this_server": .bool(worker.id == self.worker?.id),
            ]
        })])
    }

    func queues() async throws -> Response {
        func encode(_ counts: [QueueCounts]) -> JSONValue {
            .array(counts.map { q in
                ["queue": .string(q.queue), "counts": .object(Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0.rawValue, JSONValue.int(Int64(q.counts[$0] ?? 0))) }))]
            })
        }
        return jsonResponse(["durable": encode(try await store.counts()), "memory": encode(try await memory?.counts() ?? [])])
    }

    func health() async -> Response {
        var checks: [String: JSONValue] = [:]
        var healthy = true
        do {
            _ = try await store.counts()
            checks["store"] = "ok"
        } catch {
            checks["store"] = .string("\(error)")
            healthy = false
        }
        checks["pools"] = .array((worker?.pools ?? []).map { .string($0.name) })
        checks["status"] = healthy ? "ok" : "unavailable"
        return jsonResponse(.object(checks), status: healthy ? .ok : .serviceUnavailable)
    }

    func prometheus() async throws -> Response {
        guard let metrics else { throw APIError(.notFound, "not_found", "metrics are not enabled in this process") }
        // Gauges are set at scrape time from the live figures.
        for queue in try await store.counts() {
            for state in TaskState.allCases {
                Gauge(label: "sluice_queue_tasks", dimensions: [("queue", queue.queue), ("state", state.rawValue)]).record(queue.counts[state] ?? 0)
            }
        }
        if let worker {
            for pool in try await worker.capacity() {
                let d = [("pool", pool.name)]
                Gauge(label: "sluice_pool_target", dimensions: d).record(pool.target)
                Gauge(label: "sluice_pool_threads", dimensions: d).record(pool.threads)
                Gauge(label: "sluice_pool_busy", dimensions: d).record(pool.busy)
                Gauge(label: "sluice_pool_free", dimensions: d).record(pool.free)
                Gauge(label: "sluice_pool_stuck", dimensions: d).record(pool.stuck)
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
    }

    // MARK: - Input

    func readJSON(_ request: Request) async throws -> JSONValue {
        // JSON, or curl's default for `-d` (form-urlencoded), read as JSON too; anything else is refused.
        if let header = request.headers[.contentType]?.lowercased(),
           case let type = header.split(separator: ";").first.map({ $0.trimmingCharacters(in: .whitespaces) }) ?? "",
           type != "application/json", type != "application/x-www-form-urlencoded",
           !(type.hasPrefix("application/") && type.hasSuffix("+json")) {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "send JSON with Content-Type: application/json, not \(header.prefix(100))")
        }
        let buffer = try await request.body.collect(upTo: limits.maxBody)
        let data = Data(buffer: buffer)
        do {
            // Depth-first parsing of hostile nesting is bounded by the body limit and the parser's own limit.
            return try JSONCoders.decoder.decode(JSONValue.self, from: data)
        } catch {
            throw APIError(.badRequest, "malformed_json", "the body is not valid JSON: \(Self.describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error {
            return (context.underlyingError.map { "\($0)" } ?? context.debugDescription).prefix(200).description
        }
        return "\(error)".prefix(200).description
    }

    func waitSeconds(_ request: Request) throws -> Duration? {
        guard let text = request.uri.queryParameters.get("wait") else { return nil }
        guard let seconds = Double(text), seconds.isFinite, seconds >= 0, seconds <= limits.maxWait else {
            throw APIError.badRequest("wait", "must be a number of seconds from 0 to \(Int(limits.maxWait))")
        }
        return .milliseconds(Int64(seconds * 1000))
    }
}

/// A value loaded on demand and reused until it is older than the caller allows.
final class RecentValue<Value: Sendable>: Sendable {
    private let cache = Mutex<(at: ContinuousClock.Instant, value: Value)?>(nil)

    func get(maxAge: Duration, load: () async throws -> Value) async throws -> Value {
        if let cached = cache.withLock({ $0 }), ContinuousClock.now - cached.at < maxAge { return cached.value }
        let value = try await load()
        cache.withLock { $0 = (ContinuousClock.now, value) }
        return value
    }
}
