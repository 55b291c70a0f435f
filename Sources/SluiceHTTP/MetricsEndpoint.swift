import Hummingbird
import Prometheus
import SluiceCore
import SluicePool
import SluiceStore
import Synchronization

/// `GET /metrics`: the registry in the Prometheus text format, with gauges set from live figures at
/// each scrape. The server's API serves it, and so does `sluice worker --metrics-port`.
public struct MetricsEndpoint: Sendable {
    let registry: PrometheusCollectorRegistry
    let store: any TaskStore
    let memory: MemoryTaskStore?
    let worker: Worker?
    let waiting: (@Sendable () -> Int)?
    /// The queues each queue gauge showed at the last scrape: a queue whose tasks are all gone
    /// leaves the counts, and its series must go too (they kept their last values for good).
    private let shown = ShownSeries()

    /// An endpoint over `registry`, with gauges of `store`'s queues and of `worker`'s pools.
    public init(registry: PrometheusCollectorRegistry, store: any TaskStore, memory: MemoryTaskStore? = nil, worker: Worker?,
                waiting: (@Sendable () -> Int)? = nil) {
        self.registry = registry
        self.store = store
        self.memory = memory
        self.worker = worker
        self.waiting = waiting
    }

    /// The response to a scrape.
    func response() async throws -> Response {
        func gauge(_ name: String, _ labels: [(String, String)]) -> Prometheus.Gauge {
            registry.makeGauge(descriptor: SluiceMetricsFactory.descriptor(name), labels: labels)
        }
        for (name, all) in [("sluice_queue_tasks", try await store.counts()), ("sluice_memory_tasks", try await memory?.counts() ?? [])] {
            let counts = Self.bounded(all)
            for queue in counts {
                for state in TaskState.allCases {
                    gauge(name, [("queue", queue.queue), ("state", state.rawValue)]).set(Int64(queue.counts[state] ?? 0))
                }
            }
            let now = Set(counts.map(\.queue))
            let gone = shown.queues.withLock { shown in
                defer { shown[name] = now }
                return (shown[name] ?? []).subtracting(now)
            }
            for queue in gone {
                for state in TaskState.allCases { registry.unregisterGauge(gauge(name, [("queue", queue), ("state", state.rawValue)])) }
            }
        }
        if let worker {
            for pool in try await worker.capacity() {
                let labels = [("pool", pool.name)]
                gauge("sluice_pool_target", labels).set(Int64(pool.target))
                gauge("sluice_pool_threads", labels).set(Int64(pool.threads))
                gauge("sluice_pool_busy", labels).set(Int64(pool.busy))
                gauge("sluice_pool_free", labels).set(Int64(pool.free))
                gauge("sluice_pool_stuck", labels).set(Int64(pool.stuck))
            }
        }
        if let waiting { gauge("sluice_http_waiting_requests", []).set(Int64(waiting())) }
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }

    /// The most queues a queue gauge shows one by one. Queue names come from clients: without a
    /// bound, a batch of tasks in thousands of made-up queues would add seven series each, to every
    /// scrape, until the tasks were pruned.
    static let maxQueues = 500
    /// Where the queues past `maxQueues` are summed; no queue can have this name.
    static let otherQueues = "(other)"

    /// `counts` when it names at most `maxQueues` queues; else the `maxQueues` with the most
    /// unfinished tasks (then the most tasks, then by name) and one more, `otherQueues`, summing the rest.
    static func bounded(_ counts: [QueueCounts]) -> [QueueCounts] {
        guard counts.count > maxQueues else { return counts }
        func unfinished(_ queue: QueueCounts) -> Int { queue.counts.filter { !$0.key.isFinal }.values.reduce(0, +) }
        func total(_ queue: QueueCounts) -> Int { queue.counts.values.reduce(0, +) }
        let ranked = counts.sorted { (unfinished($1), total($1), $0.queue) < (unfinished($0), total($0), $1.queue) }
        var rest: [TaskState: Int] = [:]
        for queue in ranked.dropFirst(maxQueues) { rest.merge(queue.counts, uniquingKeysWith: +) }
        return Array(ranked.prefix(maxQueues)) + [QueueCounts(queue: otherQueues, counts: rest)]
    }

    /// A router with `GET /metrics` only, for a process without the API (`sluice worker
    /// --metrics-port`), behind the same guard against other origins and foreign `Host` names.
    public func router(hosts: HostNames = HostNames()) -> Router<SluiceRequestContext> {
        let router = Router(context: SluiceRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: OriginGuard(hosts: hosts))
        router.get("/metrics") { _, _ in try await response() }
        return router
    }
}

/// What a `MetricsEndpoint` showed at its last scrape, shared by its copies.
private final class ShownSeries: Sendable {
    let queues = Mutex<[String: Set<String>]>([:])
}
