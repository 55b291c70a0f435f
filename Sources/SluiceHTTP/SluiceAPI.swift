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
        /// How long a remote worker's claim lasts without a heartbeat (`--lease`): a worker that
        /// vanishes loses its tasks to the rescuer this long after its last heartbeat.
        public var remoteLease: Duration = .seconds(30)
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
    /// `GET /metrics` over `metrics`: one for the process, since it remembers the series it showed.
    let metricsEndpoint: MetricsEndpoint?
    let waiter: TaskWaiter
    /// Holds remote workers' claims open until their queues receive tasks.
    let claimWaiter: ClaimWaiter
    /// The names this server answers to (loopback, the bound address, `--public-host`).
    let hosts: HostNames
    /// Ready counts per queue, for the depth bound: it must not cost a COUNT on every enqueue.
    let readyCounts = RecentValue<[String: Int]>()
    /// Kinds that live workers run: enqueues must not read the workers table each.
    let workerKinds = RecentValue<Set<String>>()
    /// Paused queues, for remote workers' claims: a draining worker's every outcome batch must not
    /// read them each (a pause through this server applies at once, through another within 250 ms).
    let pausedCache = RecentValue<Set<String>>()
    /// The bound on unfinished fire-and-forget tasks.
    let memoryAdmission = MemoryAdmission()
    /// The advisor's figures for remote workers' pools, measured here.
    let remoteActivity = RemoteActivity()
    /// Per queue and second, what this process saw enqueued, started and finished in the last hour.
    public let history: ThroughputHistory
    /// The console's sessions and CSRF tokens (with tokens configured).
    let sessions: ConsoleSessions

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
        let waiter = TaskWaiter(stores: [store] + (memory.map { [$0] } ?? []))
        self.waiter = waiter
        metricsEndpoint = metrics.map { MetricsEndpoint(registry: $0, store: store, memory: memory, worker: worker, waiting: { waiter.count }) }
        claimWaiter = ClaimWaiter(store: store)
        let history = ThroughputHistory(clock: clock)
        self.history = history
        sessions = ConsoleSessions(tokens: tokens)
        // Fed as things happen, never by scanning tasks.
        for source in [store as any TaskStore] + (memory.map { [$0 as any TaskStore] } ?? []) {
            source.events.onEnqueueCounts { counts in for (queue, n) in counts { history.add(.enqueued, queue: queue, n) } }
            source.events.onFinish { tasks in
                for task in tasks {
                    switch task.state {
                    case .succeeded: history.add(.succeeded, queue: task.queue)
                    case .failed: history.add(.failed, queue: task.queue)
                    default: break
                    }
                }
            }
        }
        worker?.onStart { task in history.add(.started, queue: task.queue) }
    }

    /// Answers every request waiting with `?wait=` at once, with its task as it stands (202 when not
    /// final), and makes later waits return at once. Call it when shutdown begins, before the HTTP
    /// server waits for requests in flight: a long poll must not hold up the pool's drain.
    public func beginShutdown() {
        waiter.shutdown()
        claimWaiter.shutdown()
    }

    /// Requests held open by `?wait=` and by remote workers' claims now.
    public var waitingRequests: Int { waiter.count + claimWaiter.count }

    /// A router with every route and the console at `/ui/`, the error middleware, the guard against other origins and foreign
    /// `Host` names and, with tokens, authentication.
    public func router() -> Router<SluiceRequestContext> {
        let router = Router(context: SluiceRequestContext.self)
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
        router.delete("/v1/tasks/{id}") { _, context in try await change(context) { try await $0.delete($1) } }
        router.post("/v1/tasks/bulk") { request, _ in try await bulk(request) }
        router.get("/v1/pools") { _, _ in jsonResponse(try await pools()) }
        router.patch("/v1/pools/{name}") { request, context in try await resize(request, context) }
        router.get("/v1/schedules") { _, _ in try await listSchedules() }
        router.post("/v1/schedules") { request, _ in try await saveSchedule(request) }
        router.get("/v1/schedules/{name}") { _, context in try await showSchedule(context) }
        router.patch("/v1/schedules/{name}") { request, context in try await patchSchedule(request, context) }
        router.delete("/v1/schedules/{name}") { _, context in try await deleteSchedule(context) }
        router.post("/v1/schedules/{name}/run") { _, context in try await runSchedule(context) }
        router.get("/v1/workers") { _, _ in try await workers() }
        router.put("/v1/workers/{id}") { request, context in try await remoteHeartbeat(request, context, renewing: false) }
        router.delete("/v1/workers/{id}") { _, context in try await remoteDeregister(context) }
        router.post("/v1/workers/{id}/heartbeat") { request, context in try await remoteHeartbeat(request, context, renewing: true) }
        router.post("/v1/workers/{id}/claim") { request, context in try await remoteClaim(request, context) }
        router.post("/v1/workers/{id}/outcomes") { request, context in try await remoteOutcomes(request, context) }
        router.post("/v1/workers/{id}/release") { request, context in try await remoteRelease(request, context) }
        router.get("/v1/queues") { _, _ in try await queues() }
        router.post("/v1/queues/{name}/pause") { _, context in try await pause(context, true) }
        router.post("/v1/queues/{name}/resume") { _, context in try await pause(context, false) }
        router.get("/v1/throughput") { request, _ in try throughput(request) }
        router.get("/healthz") { _, _ in await health() }
        router.get("/metrics") { _, _ in try await prometheus() }
        addConsole(to: router)
        return router
    }
}
