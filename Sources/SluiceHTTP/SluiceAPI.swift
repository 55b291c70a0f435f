import Foundation
import Hummingbird
import Prometheus
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
        /// Refuse enqueues (503) while a queue has this many ready tasks, durable and in memory
        /// together; `nil`: no bound.
        public var maxQueueDepth: Int?
        /// Refuse fire-and-forget enqueues (503 `overloaded`) that would leave more than this many
        /// unfinished tasks in memory: they die with the process, and memory is not a queue.
        public var maxMemoryTasks = 100_000
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
    /// The names this server answers to (loopback, the bound address, `--public-host`).
    let hosts: HostNames
    /// Ready counts per queue, for the depth bound: it must not cost a COUNT on every enqueue.
    let readyCounts = RecentValue<[String: Int]>()
    /// Kinds that live workers run: enqueues must not read the workers table each.
    let workerKinds = RecentValue<Set<String>>()
    /// The bound on unfinished fire-and-forget tasks.
    let memoryAdmission = MemoryAdmission()

    /// An API over `store`; with a `worker`, durable and fire-and-forget tasks run in its pools.
    /// Requests from pages of another origin, and with a `Host` not in `hosts`, are refused.
    public init(store: any Store, memory: MemoryTaskStore?, worker: Worker?, kinds: [String], tokens: [String] = [],
                limits: Limits = Limits(), clock: any WallClock = SystemClock(), metrics: PrometheusCollectorRegistry? = nil,
                hosts: HostNames = HostNames()) {
        self.store = store
        self.memory = memory
        self.worker = worker
        self.kinds = kinds
        self.tokens = tokens
        self.limits = limits
        self.clock = clock
        self.metrics = metrics
        self.hosts = hosts
        waiter = TaskWaiter(stores: [store] + (memory.map { [$0] } ?? []))
    }

    /// Answers every request waiting with `?wait=` at once, with its task as it stands (202 when not
    /// final), and makes later waits return at once. Call it when shutdown begins, before the HTTP
    /// server waits for requests in flight: a long poll must not hold up the pool's drain.
    public func beginShutdown() {
        waiter.shutdown()
    }

    /// Requests held open by `?wait=` now.
    public var waitingRequests: Int { waiter.count }

    /// A router with every route, the error middleware, the guard against other origins and foreign
    /// `Host` names and, with tokens, authentication.
    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        // Before authentication: a page of another origin is refused whether or not it has a token.
        router.add(middleware: OriginGuard(hosts: hosts))
        if !tokens.isEmpty { router.add(middleware: BearerAuth(tokens: tokens)) }
        router.post("/v1/tasks") { request, context in try await enqueue(request, context) }
        router.post("/v1/tasks/batch") { request, context in try await enqueueBatch(request, context) }
        router.get("/v1/tasks") { request, _ in try await list(request) }
        router.get("/v1/tasks/{id}") { request, context in try await show(request, context) }
        router.post("/v1/tasks/{id}/cancel") { _, context in try await change(context) { try await $0.cancel($1) } }
        router.post("/v1/tasks/{id}/retry") { _, context in try await change(context) { try await $0.retry($1) } }
        router.get("/v1/pools") { _, _ in jsonResponse(try await pools()) }
        router.patch("/v1/pools/{name}") { request, context in try await resize(request, context) }
        router.get("/v1/schedules") { _, _ in try await listSchedules() }
        router.post("/v1/schedules") { request, _ in try await saveSchedule(request) }
        router.get("/v1/schedules/{name}") { _, context in try await showSchedule(context) }
        router.patch("/v1/schedules/{name}") { request, context in try await patchSchedule(request, context) }
        router.delete("/v1/schedules/{name}") { _, context in try await deleteSchedule(context) }
        router.post("/v1/schedules/{name}/run") { _, context in try await runSchedule(context) }
        router.get("/v1/workers") { _, _ in try await workers() }
        router.get("/v1/queues") { _, _ in try await queues() }
        router.get("/healthz") { _, _ in await health() }
        router.get("/metrics") { _, _ in try await prometheus() }
        return router
    }
}
