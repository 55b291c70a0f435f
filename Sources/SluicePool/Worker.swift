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
    /// How often the leader looks for expired leases.
    public var rescueInterval: Duration = .seconds(5)
    /// How often the leader stages due tasks of queues no fetcher is claiming from.
    public var stageInterval: Duration = .seconds(1)
    /// Finished tasks older than this are pruned by the leader; `nil` keeps them.
    public var retention: Duration? = .seconds(7 * 86_400)
    /// How often the leader prunes, and the most it deletes per pass.
    public var pruneInterval: Duration = .seconds(60)
    public var pruneLimit = 10_000
    /// How long the leader's lease lasts (never more than `leaseDuration`); another process takes
    /// over within two of these.
    public var leaderLease: Duration = .seconds(15)
    /// How often the leader fires due schedule slots.
    public var scheduleInterval: Duration = .seconds(1)
    /// A slot the leader sees this long after its time counts as missed (its schedule's misfire
    /// policy decides); longer than a leader change takes, so a change alone never misses a slot.
    public var misfireGrace: Duration = .seconds(60)
    /// The longest pause between polls for tasks enqueued by other processes.
    public var maxPollInterval: Duration = .milliseconds(50)
    /// The longest pause between polls while every store hears other processes' enqueues
    /// (`TaskStore.hearsEveryEnqueue`): polling is then only the backstop for a lost wake-up.
    public var backstopPollInterval: Duration = .seconds(1)
    /// Threads idle this long leave.
    public var idleTimeout: Duration = .seconds(60)
    /// Autoscaled pools shrink after this long without waiting tasks.
    public var quietPeriod: Duration = .seconds(30)
    /// Graceful shutdown lets running tasks finish for this long.
    public var grace: Duration = .seconds(30)
    /// Tasks each pool claims beyond its free slots, waiting here for a thread: claims carry more
    /// tasks, and a thread finds its next task without a round trip to the store. 0 (the default)
    /// claims only for free slots, so no task waits here while another process has a free thread.
    public var prefetch = 0

    public init() {}
}

/// One process's pools and the roles that serve them, each a task of its own so that a slow one
/// never stalls another: a `Fetcher` per pool, the `Completer`, the `Heartbeater`, the
/// `DeadlineWatch`, the `Registrar`, and the `LeaderElector` with the `Maintenance` it runs while
/// this process leads. Runs as a `Service`; on graceful shutdown it stops claiming, hands unstarted
/// claims back, lets running tasks finish within the grace period and records their outcomes.
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
    /// Times the grace period: a wall clock set forward must not cut it short.
    let monotonic: any MonotonicClock
    /// Set when the drain is over (on `monotonic`): the completer gives up refused writes then.
    private let outcomesDeadlineValue = Mutex<Duration?>(nil)
    var outcomesDeadline: Duration? { outcomesDeadlineValue.withLock { $0 } }
    let logger: Logger
    let startedAt: Date
    /// The kinds this process's handlers run, reported with its registration.
    public let kinds: [String]
    let outcomes = OutcomeBuffer()
    let elector: LeaderElector
    private let stopping = Atomic<Bool>(false)
    /// Wakes a worker without pools (a pure front's) when shutdown begins.
    private let shutdown = WakeSignal()
    /// Queues an operator paused, as last read from the store (every second) or set here.
    private let paused = Mutex<Set<String>>([])
    /// Called with each task a pool starts.
    private let startObservers = StartObservers()

    /// A worker for `pools` on `store`; with `ephemeral`, the same pools also run that in-memory
    /// store's tasks (taken first: they are the cheapest to claim and cannot wait for another process).
    public init(store: any Store, ephemeral: MemoryTaskStore? = nil, pools: [PoolConfiguration], registry: HandlerRegistry,
                options: WorkerOptions = WorkerOptions(), clock: any WallClock = SystemClock(),
                monotonic: any MonotonicClock = SystemMonotonicClock(),
                logger: Logger = Logger(label: "sluice.worker")) throws {
        for pool in pools { try pool.validate() }
        guard Set(pools.map(\.name)).count == pools.count else {
            throw SluiceError(.invalidArgument, "pool names must be unique: \(pools.map(\.name).joined(separator: ", "))", field: "pool")
        }
        // A heartbeat can wait this long for another process's write lock; a lease shorter than
        // three of those could expire while its holder is alive, and the task would run twice.
        let wait = store.longestWriteWait
        guard options.leaseDuration >= wait * 3 else {
            throw SluiceError(.invalidArgument,
                "the lease (\(options.leaseDuration.seconds) s) must be at least 3 × the store's lock wait (\(wait.seconds) s): a heartbeat may wait that long; raise --lease",
                field: "lease")
        }
        // Renewed less than three times per lease, one late heartbeat lets it expire under a live
        // task (the command line derives the interval from --lease; a library caller sets both).
        guard options.heartbeatInterval * 3 <= options.leaseDuration else {
            throw SluiceError(.invalidArgument,
                "the lease (\(options.leaseDuration.seconds) s) must be at least 3 × the heartbeat interval (\(options.heartbeatInterval.seconds) s): raise the lease or beat more often",
                field: "lease")
        }
        // A leader's lease never outlasts a task's: a short --lease (tests, fast failover) speeds both.
        var options = options
        options.leaderLease = min(options.leaderLease, options.leaseDuration)
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        id = "\(host):\(getpid()):\(String(UInt32.random(in: 0 ... .max), radix: 16))"
        self.store = store
        self.ephemeral = ephemeral
        self.options = options
        self.clock = clock
        self.monotonic = monotonic
        self.logger = logger
        startedAt = clock.now()
        kinds = registry.kinds
        let outcomes = self.outcomes
        let startObservers = self.startObservers
        self.pools = pools.map {
            Pool(configuration: $0, registry: registry, clock: clock, monotonic: monotonic, idleTimeout: options.idleTimeout,
                 prefetch: options.prefetch, leaseDuration: options.leaseDuration, report: { outcomes.add($0) },
                 onStart: { startObservers.notify($0) })
        }
        elector = LeaderElector(store: store, owner: id, lease: options.leaderLease, monotonic: monotonic, logger: logger)
    }

    /// The pool called `name`.
    public func pool(_ name: String) -> Pool? { pools.first { $0.name == name } }

    /// Calls `observer` with each task a pool of this process starts (on the pool's thread: keep it short).
    public func onStart(_ observer: @escaping @Sendable (TaskRecord) -> Void) {
        startObservers.add(observer)
    }

    /// The queues paused now, as this process knows it (read from the store every second).
    public var pausedQueues: Set<String> { paused.withLock { $0 } }

    /// Sets the paused queues: the registrar's refresh, or at once when this process's API pauses one.
    public func setPausedQueues(_ queues: Set<String>) {
        let resumed = paused.withLock { old in
            defer { old = queues }
            return old.subtracting(queues)
        }
        // A resumed queue may have tasks waiting: look at once.
        guard !resumed.isEmpty else { return }
        let now = clock.now()
        for pool in pools {
            pool.queuesResumed(resumed, at: now)
            pool.wake.signal()
        }
    }

    /// The queues `pool` may claim from now: its queues less the paused ones, in order.
    func claimableQueues(_ pool: Pool) -> [String] {
        let paused = pausedQueues
        return paused.isEmpty ? pool.queues : pool.queues.filter { !paused.contains($0) }
    }

    /// Capacity of every pool with the advisor's activity of the last minute and hour.
    public func capacityWithActivity() async throws -> [PoolCapacity] {
        let now = clock.now()
        return try await capacity().map { figures in
            var figures = figures
            figures.activity = pool(figures.name)?.currentActivity(now: now)
            return figures
        }
    }

    /// Whether this process runs maintenance now.
    public var isLeader: Bool { elector.isLeader }

    /// The name of the leadership lease in the store (`WorkerDirectory.leader(_:)`).
    public static var leadershipName: String { LeaderElector.role }

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
        let paused = pausedQueues
        return pools.map { pool in
            let backlog = QueueCounts.backlog(of: pool.queues, in: counts, paused: paused)
            return pool.capacity(waiting: backlog.waiting, scheduled: backlog.scheduled)
        }
    }

    public func run() async throws {
        for pool in pools {
            let c = pool.capacity()
            logger.info("pool \(pool.name): queues \(pool.queues.joined(separator: ",")), concurrency \(c.target)\(c.autoscale.map { " (autoscale \($0.min)…\($0.max))" } ?? "")",
                        metadata: ["worker": "\(id)"])
        }
        // Local enqueues wake the pools that drain those queues at once; another process's write
        // may be an enqueue to any of them.
        let pools = self.pools
        for (_, source) in sources {
            source.events.onEnqueue { queues in
                for pool in pools where pool.queues.contains(where: queues.contains) { pool.wake.signal() }
            }
            source.events.onForeignWrite {
                for pool in pools { pool.wake.signal() }
            }
        }
        let registrar = Registrar(worker: self)
        await registrar.register()
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { beats in
                // The heartbeater outlives the completer, so outcomes it is still writing keep their
                // leases; the completer outlives the others: it records the last outcomes of the drain.
                beats.addTask { await Heartbeater(worker: self).run() }
                await withDiscardingTaskGroup { group in
                    group.addTask { await Completer(worker: self).run() }
                    await withDiscardingTaskGroup { background in
                        background.addTask { await DeadlineWatch(pools: self.pools).run() }
                        background.addTask { await registrar.run() }
                        background.addTask { await self.elector.run() }
                        background.addTask { await Maintenance(worker: self).run() }
                        await withDiscardingTaskGroup { fetchers in
                            for pool in self.pools { fetchers.addTask { await Fetcher(pool: pool, worker: self).run { self.isStopping } } }
                            // Without pools (`serve --no-pool`) the process still registers, takes its
                            // turn as leader and runs maintenance until it is told to stop.
                            if self.pools.isEmpty {
                                fetchers.addTask { while !self.isStopping { await self.shutdown.wait(timeout: .seconds(1)) } }
                            }
                        }
                        // Fetchers end only when shutting down.
                        await self.drain()
                        // The other roles stop here, woken from their sleeps at once.
                        background.cancelAll()
                    }
                    self.outcomes.close()
                }
                beats.cancelAll()
            }
        } onGracefulShutdown: {
            self.beginShutdown()
        }
        try? await elector.resign()
        try? await store.removeWorker(id)
        logger.info("worker stopped", metadata: ["worker": "\(id)"])
    }

    /// Stops claiming; `run` then drains and returns.
    public func beginShutdown() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        logger.info("shutting down: no new claims; running tasks get \(options.grace.seconds) s", metadata: ["worker": "\(id)"])
        for pool in pools { pool.wake.signal() }
        shutdown.signal()
    }

    var isStopping: Bool { stopping.load(ordering: .relaxed) || Task.isCancelled }

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
        if await !poolsIdle(within: options.grace) {
            logger.warning("grace period over with tasks still running: they are cancelled (exec children killed), and their leases will expire and they will be retried")
            let stopping = self.pools.reduce(0) { $0 + $1.abandonRunning("the worker is shutting down and its grace period is over") }
            // Async handlers stop at the cancel (an exec child's process group is killed, which
            // would otherwise outlive this process): a moment for them. Blocking ones, which
            // cannot be stopped, end with the process.
            if stopping > 0 { _ = await poolsIdle(within: .seconds(1)) }
        }
        // Outcomes still refused by the store are given up one grace period from now.
        outcomesDeadlineValue.withLock { $0 = monotonic.now() + options.grace }
        // Renew once more so the last outcomes are accepted, then let the completer finish.
        await Heartbeater(worker: self).beat()
    }

    /// Whether every pool is idle within `time` (on the monotonic clock, one bound for all pools).
    private func poolsIdle(within time: Duration) async -> Bool {
        let end = monotonic.now() + time
        let pools = self.pools
        return await withCheckedContinuation { continuation in
            // Waiting blocks a thread, so it gets one of its own.
            Thread { continuation.resume(returning: pools.allSatisfy { $0.waitUntilIdle(until: end) }) }.start()
        }
    }
}

/// Callbacks for the tasks a worker's pools start; a class, so that the pools' closures share it.
final class StartObservers: Sendable {
    private let observers = Mutex<[@Sendable (TaskRecord) -> Void]>([])

    func add(_ observer: @escaping @Sendable (TaskRecord) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    func notify(_ task: TaskRecord) {
        for observer in observers.withLock({ $0 }) { observer(task) }
    }
}
