import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceStore
import Synchronization

/// Timings of a worker process; the defaults suit production, tests shorten some.
public struct WorkerOptions: Sendable {
    /// How long a claim's lease lasts without renewal; a crashed worker's tasks return after this.
    public var leaseDuration: Duration = .seconds(30)
    /// How often leases are renewed and cancel requests picked up.
    public var heartbeatInterval: Duration = .seconds(2)
    /// How often the process records itself, reads operators' pool changes and autoscales.
    public var registrationInterval: Duration = .seconds(1)
    /// How often expired leases are looked for.
    public var rescueInterval: Duration = .seconds(5)
    /// Finished tasks older than this are pruned (every minute); `nil` keeps them.
    public var retention: Duration? = .seconds(7 * 86_400)
    /// The longest pause between polls for tasks enqueued by other processes.
    public var maxPollInterval: Duration = .milliseconds(50)
    /// Threads idle this long leave.
    public var idleTimeout: Duration = .seconds(60)
    /// Autoscaled pools shrink after this long without waiting tasks.
    public var quietPeriod: Duration = .seconds(30)
    /// Graceful shutdown lets running tasks finish for this long.
    public var grace: Duration = .seconds(30)

    public init() {}
}

/// One process's pools and the roles that serve them: a fetcher per pool (claims only into free
/// slots), a completer (writes outcomes back), and a supervisor on its own thread (heartbeats,
/// deadlines, rescuer, pruner, registration, operators' changes). Runs as a `Service`; on graceful
/// shutdown it stops claiming, hands unstarted claims back, lets running tasks finish within the
/// grace period and records their outcomes.
public final class Worker: Service, Sendable {
    public typealias Store = TaskStore & WorkerDirectory

    public let id: String
    /// The host this process runs on, as it reports itself.
    public let host: String
    public let pools: [Pool]
    let store: any Store
    /// Fire-and-forget tasks: kept in memory, run by the same pools.
    public let ephemeral: MemoryTaskStore?
    let options: WorkerOptions
    let clock: any WallClock
    let logger: Logger
    let startedAt: Date
    /// The kinds this process's handlers run, reported with its registration.
    public let kinds: [String]
    private let outcomes: AsyncStream<Outcome>
    private let outcomeSink: AsyncStream<Outcome>.Continuation
    private let stopping = Atomic<Bool>(false)
    private let supervisorStopped = Atomic<Bool>(false)
    private let appliedSettings = Mutex<[String: Date]>([:])

    /// A worker for `pools` on `store`; with `ephemeral`, the same pools also run that in-memory
    /// store's tasks (taken first: they are the cheapest to claim and cannot wait for another process).
    public init(store: any Store, ephemeral: MemoryTaskStore? = nil, pools: [PoolConfiguration], registry: HandlerRegistry,
                options: WorkerOptions = WorkerOptions(), clock: any WallClock = SystemClock(),
                logger: Logger = Logger(label: "sluice.worker")) throws {
        for pool in pools { try pool.validate() }
        guard Set(pools.map(\.name)).count == pools.count else {
            throw SluiceError(.invalidArgument, "pool names must be unique: \(pools.map(\.name).joined(separator: ", "))", field: "pool")
        }
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        id = "\(host):\(getpid()):\(String(UInt32.random(in: 0 ... .max), radix: 16))"
        self.store = store
        self.ephemeral = ephemeral
        self.options = options
        self.clock = clock
        self.logger = logger
        startedAt = clock.now()
        kinds = registry.kinds
        (outcomes, outcomeSink) = AsyncStream.makeStream(of: Outcome.self)
        let sink = outcomeSink
        self.pools = pools.map {
            Pool(configuration: $0, registry: registry, clock: clock, idleTimeout: options.idleTimeout, report: { sink.yield($0) })
        }
    }

    /// The pool called `name`.
    public func pool(_ name: String) -> Pool? { pools.first { $0.name == name } }

    /// The stores this worker takes tasks from, memory first.
    var sources: [(TaskSource, any TaskStore)] {
        (ephemeral.map { [(TaskSource.memory, $0 as any TaskStore)] } ?? []) + [(.durable, store)]
    }

    func store(for source: TaskSource) -> any TaskStore {
        source == .memory ? (ephemeral ?? store) : store
    }

    /// Capacity of every pool, with waiting and scheduled counts from the stores.
    public func capacity() async throws -> [PoolCapacity] {
        var counts = try await store.counts()
        if let ephemeral { counts += try await ephemeral.counts() }
        return pools.map { pool in
            let mine = counts.filter { pool.queues.contains($0.queue) }
            let waiting = mine.reduce(0) { $0 + ($1.counts[.queued] ?? 0) }
            let scheduled = mine.reduce(0) { $0 + ($1.counts[.scheduled] ?? 0) + ($1.counts[.retrying] ?? 0) }
            return pool.capacity(waiting: waiting, scheduled: scheduled)
        }
    }

    public func run() async throws {
        for pool in pools {
            let c = pool.capacity()
            logger.info("pool \(pool.name): queues \(pool.queues.joined(separator: ",")), concurrency \(c.target)\(c.autoscale.map { " (autoscale \($0.min)…\($0.max))" } ?? "")",
                        metadata: ["worker": "\(id)"])
        }
        // Local enqueues wake the pools that drain those queues at once.
        let pools = self.pools
        for (_, source) in sources {
            source.events.onEnqueue { queues in
                for pool in pools where pool.queues.contains(where: queues.contains) { pool.wake.signal() }
            }
        }
        try? await store.recordWorker(WorkerInfo(id: id, host: host, pid: Int(getpid()), startedAt: startedAt, heartbeatAt: startedAt,
                                                 pools: [], kinds: kinds))
        let supervisorThread = ThreadExecutor(name: "sluice-supervisor")
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.complete() }
                group.addTask { await withTaskExecutorPreference(supervisorThread) { await self.supervise() } }
                await withDiscardingTaskGroup { fetchers in
                    for pool in self.pools { fetchers.addTask { await self.fetch(pool) } }
                }
                // Fetchers end only when shutting down.
                await self.drain()
                self.supervisorStopped.store(true, ordering: .relaxed)
                self.outcomeSink.finish()
            }
        } onGracefulShutdown: {
            self.beginShutdown()
        }
        try? await store.removeWorker(id)
        logger.info("worker stopped", metadata: ["worker": "\(id)"])
    }

    /// Stops claiming; `run` then drains and returns.
    public func beginShutdown() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        logger.info("shutting down: no new claims; running tasks get \(options.grace.seconds) s", metadata: ["worker": "\(id)"])
        for pool in pools { pool.wake.signal() }
    }

    private var isStopping: Bool { stopping.load(ordering: .relaxed) || Task.isCancelled }

    // MARK: - Roles

    /// The fetcher: claims only as many tasks as the pool has free slots, in one claim.
    private func fetch(_ pool: Pool) async {
        var pause = Duration.milliseconds(2)
        while !isStopping {
            let free = pool.freeSlots
            if free == 0 {
                await pool.wake.wait(timeout: .seconds(1))
                continue
            }
            do {
                var claimedCount = 0
                for (source, taskStore) in sources where claimedCount < free {
                    let claimed = try await taskStore.claim(queues: pool.queues, limit: free - claimedCount, owner: id,
                                                            leaseDuration: options.leaseDuration)
                    claimedCount += claimed.count
                    let refused = pool.submit(claimed, from: source)
                    if !refused.isEmpty { try await taskStore.release(refused.compactMap(\.lease)) }
                }
                if claimedCount == free { pause = .milliseconds(2); continue }
                if claimedCount > 0 { pause = .milliseconds(2) }
                await pool.wake.wait(timeout: pause)
                pause = min(pause * 2, options.maxPollInterval)
            } catch {
                logger.warning("claiming for pool \(pool.name) failed: \(error)", metadata: ["worker": "\(id)"])
                await pool.wake.wait(timeout: .seconds(1))
            }
        }
    }

    /// The completer: writes outcomes back, many at once so they share commits. A write the store
    /// refuses for storage reasons is retried: a task is never marked failed because the disk was.
    private func complete() async {
        await withDiscardingTaskGroup { group in
            for await outcome in outcomes {
                group.addTask { await self.record(outcome) }
            }
        }
    }

    private func record(_ outcome: Outcome) async {
        var pause = Duration.milliseconds(100)
        while true {
            do {
                switch outcome {
                case .complete(let source, let lease, let result): _ = try await store(for: source).complete(lease, result: result)
                case .fail(let source, let lease, let failure):
                    let task = try await store(for: source).fail(lease, failure: failure)
                    if source == .memory && task.state.isFinal {
                        // Nothing durable records it: the log is where a fire-and-forget failure shows.
                        logger.warning("fire-and-forget task \(task.id) (\(task.kind)) \(task.state.rawValue): \(failure.message)")
                    }
                }
                return
            } catch let error as SluiceError where error.code == .leaseLost || error.code == .notFound {
                // Someone else owns the task now (lease expired and rescued): our result is stale.
                logger.info("dropped a stale outcome: \(error.message)", metadata: ["worker": "\(id)"])
                return
            } catch {
                logger.error("recording an outcome failed, retrying in \(pause): \(error)", metadata: ["worker": "\(id)"])
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(5))
            }
        }
    }

    /// The supervisor, on its own thread: deadlines every 100 ms, and the periodic chores.
    private func supervise() async {
        var lastHeartbeat = ContinuousClock.now, lastRegistration = ContinuousClock.now - .seconds(3600)
        var lastRescue = ContinuousClock.now - .seconds(3600), lastPrune = ContinuousClock.now - .seconds(3600)
        while !supervisorStopped.load(ordering: .relaxed) {
            let now = ContinuousClock.now
            for pool in pools { pool.checkDeadlines(now: clock.now()) }
            if now - lastHeartbeat >= options.heartbeatInterval {
                lastHeartbeat = now
                await heartbeat()
            }
            if now - lastRegistration >= options.registrationInterval {
                lastRegistration = now
                await register()
            }
            if now - lastRescue >= options.rescueInterval {
                lastRescue = now
                do {
                    _ = try await ephemeral?.rescueExpiredLeases()
                    let report = try await store.rescueExpiredLeases()
                    if report.total > 0 {
                        logger.warning("rescued \(report.total) tasks whose worker stopped heartbeating (requeued \(report.requeued.count), failed \(report.failed.count), cancelled \(report.cancelled.count))")
                    }
                } catch { logger.warning("rescue failed: \(error)") }
            }
            if let retention = options.retention, now - lastPrune >= .seconds(60) {
                lastPrune = now
                do {
                    let pruned = try await store.prune(finishedBefore: retention)
                    if pruned > 0 { logger.info("pruned \(pruned) finished tasks") }
                } catch { logger.warning("prune failed: \(error)") }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Renews every lease this process holds and stops tasks that were cancelled or lost.
    func heartbeat() async {
        for (source, taskStore) in sources {
            let leases = pools.flatMap { $0.leases(from: source) }
            guard !leases.isEmpty else { continue }
            do {
                let statuses = try await taskStore.heartbeat(leases, leaseDuration: options.leaseDuration)
                for pool in pools { pool.apply(statuses, from: source) }
            } catch {
                logger.warning("heartbeat failed: \(error)", metadata: ["worker": "\(id)"])
            }
        }
    }

    /// Records this process and its capacity, applies operators' changes, and autoscales.
    func register() async {
        do {
            let capacity = try await capacity()
            for (pool, figures) in zip(pools, capacity) {
                pool.autoscaleStep(waiting: figures.waiting, now: clock.now(), quietPeriod: options.quietPeriod)
            }
            try await store.recordWorker(WorkerInfo(id: id, host: host, pid: Int(getpid()), startedAt: startedAt,
                                                    heartbeatAt: clock.now(), pools: capacity, kinds: kinds))
            try await applySettings(try await store.poolSettings())
        } catch {
            logger.warning("registration failed: \(error)", metadata: ["worker": "\(id)"])
        }
    }

    /// Applies the newest stored change for each pool, if made after this process started.
    func applySettings(_ settings: [PoolSetting]) async throws {
        for pool in pools {
            let mine = settings.filter { $0.pool == pool.name && ($0.worker == nil || $0.worker == id) && $0.updatedAt >= startedAt }
            guard let newest = mine.max(by: { $0.updatedAt < $1.updatedAt }) else { continue }
            let isNew = appliedSettings.withLock { applied in
                guard applied[pool.name].map({ newest.updatedAt > $0 }) ?? true else { return false }
                applied[pool.name] = newest.updatedAt
                return true
            }
            guard isNew else { continue }
            let current = pool.capacity()
            pool.setConcurrency(newest.concurrency ?? current.target, autoscale: newest.autoscale)
            logger.info("pool \(pool.name): concurrency set to \(pool.capacity().target)\(newest.autoscale.map { " (autoscale \($0.min)…\($0.max))" } ?? "")",
                        metadata: ["worker": "\(id)"])
        }
    }

    /// Graceful shutdown: hand back unstarted claims, let running tasks finish within the grace.
    private func drain() async {
        let unstarted = pools.flatMap { $0.stop() }
        for (source, taskStore) in sources {
            let mine = unstarted.filter { $0.source == source }.compactMap(\.task.lease)
            guard !mine.isEmpty else { continue }
            do {
                try await taskStore.release(mine)
                logger.info("handed \(mine.count) unstarted \(source.rawValue) tasks back to their queues")
            } catch { logger.error("handing back unstarted tasks failed (their leases will expire): \(error)") }
        }
        let deadline = Date().addingTimeInterval(options.grace.seconds)
        let pools = self.pools
        let idle = await withCheckedContinuation { continuation in
            // Waiting blocks a thread, so it gets one of its own.
            Thread { continuation.resume(returning: pools.allSatisfy { $0.waitUntilIdle(deadline: deadline) }) }.start()
        }
        if !idle {
            logger.warning("grace period over with tasks still running; their leases will expire and they will be retried")
        }
        // Renew once more so the last outcomes are accepted, then let the completer finish.
        await heartbeat()
    }
}
