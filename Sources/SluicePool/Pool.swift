import DequeModule
import Foundation
import Metrics
import SluiceCore
import SluiceStore

/// Which store a task came from: the durable one, or this process's memory (fire-and-forget).
public enum TaskSource: String, Sendable, Hashable, Codable {
    case durable, memory
}

/// A claimed task and where it came from.
struct Job: Sendable {
    var task: TaskRecord
    var source: TaskSource
    /// Until when (monotonic) its lease is known to hold: its claim's, or its last renewal's.
    var leaseUntil: Duration
}

/// What became of one attempt, on its way to the store it came from.
struct Outcome: Sendable {
    var source: TaskSource
    var result: TaskOutcome
    /// The pool that ran it: its freed slot may be refilled in the same transaction.
    var pool: String
}

/// A named set of OS threads running tasks from some queues, at most `target` at once.
///
/// Threads are started as work arrives (never more than the target), reused task after task, and
/// leave after `idleTimeout` without work. Lowering the target never interrupts a running task:
/// surplus threads leave when their task ends. A task past its deadline is failed as timed out and
/// its thread counted as *stuck*, not free, until the handler returns.
public final class Pool: @unchecked Sendable {
    public let name: String
    public let queues: [String]
    let registry: HandlerRegistry
    let wake = WakeSignal()
    private let report: @Sendable (Outcome) -> Void
    private let clock: any WallClock
    private let monotonic: any MonotonicClock
    private let idleTimeout: Duration
    /// Claimed tasks the pool may hold beyond its slots, waiting for a thread.
    private let prefetch: Int
    /// How long a claim or a renewal holds a lease: a task whose lease went unrenewed that long
    /// (the store unreachable) may have been rescued and started by another process.
    private let leaseDuration: Duration

    /// Guards everything below; threads wait on it for work.
    private let condition = NSCondition()
    private var target: Int
    private var autoscale: AutoscaleRange?
    private var threads = 0
    private var idle = 0
    private var busy = 0
    private var stuck = 0
    /// Free slots a fetcher or the completer is claiming for right now: not free for another claim.
    private var reserved = 0
    /// Threads that have finished a task and are handing its outcome over.
    private var reporting = 0
    /// Callers of `waitUntilIdle`: only they need a broadcast when a task ends (waking every idle
    /// thread of a large pool per task would cost dozens of context switches each).
    private var idleWaiters = 0
    /// Threads asleep waiting for work, and signals sent to them that no thread has taken yet: a
    /// job wakes a thread only when no signal already sent will bring one.
    private var sleeping = 0
    private var wakesPending = 0
    /// Recent run time in seconds, smoothed; `nil` before the first task ends.
    private var recentRunTime: Double?
    private var accepting = true
    /// Claimed, not yet started.
    private var jobs = Deque<Job>()
    private var running: [TaskID: Run] = [:]
    /// Runs whose task was claimed here again under a new lease while they ran (their own lease
    /// lost): cancelled, never reported, still held to their deadline for the slot they take.
    private var orphans: [ObjectIdentifier: Run] = [:]
    private var processed = 0
    private var failed = 0
    private var runTimes = RunTimeWindow(capacity: 1024)
    /// Tasks started here since start, and the per-second samples and waits the advisor reads.
    private var startedCount = 0
    private var activity = PoolActivityRecorder()
    /// When each of its queues was last resumed: a task waits for a slot from then at the earliest.
    private var resumes = QueueResumes()
    /// Called with each task as a thread takes it (the throughput history's "started").
    private let onStart: @Sendable (TaskRecord) -> Void
    private var threadNumber = 0
    /// Since when (monotonic) no task waited, for autoscale's shrink.
    private var quietSince: Duration?
    /// Exported through swift-metrics (Prometheus in `sluice serve`); no-ops until a backend is set.
    private let outcomeCounters: [String: Counter]
    private let runTime: Metrics.Timer
    private let waitTime: Metrics.Timer

    /// One task on one thread.
    final class Run: @unchecked Sendable {
        let task: TaskRecord
        let source: TaskSource
        let lease: TaskLease
        /// The wall-clock deadline handlers see.
        let deadline: Date
        /// The deadline enforced: monotonic, so a wall clock set forward times nothing out.
        let dueAt: Duration
        let cancellation = CancellationFlag()
        /// Guarded by the pool's lock.
        var timedOut = false
        var leaseLost = false
        /// Its timeout was reported and counted (`failed`) at the deadline; its return counts nothing.
        var timeoutCounted = false
        /// Until when (monotonic) the lease is known to hold.
        var leaseUntil: Duration
        /// The handler returned; a deadline passing now changes nothing.
        var finished = false
        var asyncTask: Task<Void, Never>?
        init(task: TaskRecord, source: TaskSource, lease: TaskLease, deadline: Date, dueAt: Duration, leaseUntil: Duration) {
            self.leaseUntil = leaseUntil
            self.task = task
            self.source = source
            self.lease = lease
            self.deadline = deadline
            self.dueAt = dueAt
        }
    }

    init(configuration: PoolConfiguration, registry: HandlerRegistry, clock: any WallClock,
         monotonic: any MonotonicClock = SystemMonotonicClock(), idleTimeout: Duration, prefetch: Int = 0,
         leaseDuration: Duration = .seconds(30),
         report: @escaping @Sendable (Outcome) -> Void, onStart: @escaping @Sendable (TaskRecord) -> Void = { _ in }) {
        name = configuration.name
        self.leaseDuration = leaseDuration
        self.onStart = onStart
        queues = configuration.queues
        target = configuration.concurrency
        autoscale = configuration.autoscale
        if let autoscale { target = min(max(target, autoscale.min), autoscale.max) }
        self.registry = registry
        self.clock = clock
        self.monotonic = monotonic
        self.idleTimeout = idleTimeout
        self.prefetch = max(0, prefetch)
        self.report = report
        let pool = configuration.name
        outcomeCounters = Dictionary(uniqueKeysWithValues: ["succeeded", "failed", "dropped"].map {
            ($0, Counter(label: "sluice_task_attempts_total", dimensions: [("pool", pool), ("outcome", $0)]))
        })
        runTime = Metrics.Timer(label: "sluice_task_run_seconds", dimensions: [("pool", pool)], preferredDisplayUnit: .seconds)
        waitTime = Metrics.Timer(label: "sluice_task_wait_seconds", dimensions: [("pool", pool)], preferredDisplayUnit: .seconds)
    }

    // MARK: - Capacity

    /// Slots no task holds or is being claimed for. Without prefetch the fetcher claims at most
    /// this many, so claimed tasks never wait in this process while another has free threads.
    public var freeSlots: Int {
        condition.lock()
        defer { condition.unlock() }
        return freeSlotsLocked
    }

    /// Slots no task holds, started or not; those reserved for a claim in flight among them.
    private var unusedSlotsLocked: Int { accepting ? max(0, target - busy - stuck - jobs.count) : 0 }

    private var freeSlotsLocked: Int { max(0, unusedSlotsLocked - reserved) }

    /// Tasks a claim may take now: the free slots plus room in the prefetch, reserved ones aside.
    private var claimableLocked: Int { accepting ? max(0, target + prefetch - busy - stuck - jobs.count - reserved) : 0 }

    /// Takes every free slot (and the prefetch's room) for a claim about to be made, so that two
    /// claimers (the fetcher and the completer) never claim the same slot. `submit` or `unreserve`
    /// gives them back.
    func reserveSlots() -> Int {
        condition.lock()
        defer { condition.unlock() }
        let n = claimableLocked
        reserved += n
        return n
    }

    /// Returns reserved slots that no claim filled, and wakes the fetcher to claim for them,
    /// unless the fetcher itself returns them (waking itself, an idle fetcher would spin).
    func unreserve(_ n: Int, wakingFetcher: Bool = true) {
        guard n > 0 else { return }
        condition.lock()
        reserved = max(0, reserved - n)
        condition.unlock()
        if wakingFetcher { wake.signal() }
    }

    /// Sets the concurrency; takes effect at once. A fixed size turns autoscale off.
    public func setConcurrency(_ concurrency: Int, autoscale: AutoscaleRange? = nil) {
        condition.lock()
        self.autoscale = autoscale
        target = autoscale.map { min(max(concurrency, $0.min), $0.max) } ?? concurrency
        startThreadsLocked()
        // Surplus idle threads wake up and leave (busy ones after their task); held jobs start.
        condition.broadcast()
        condition.unlock()
        wake.signal()
    }

    /// Sets autoscale bounds, keeping the current target within them.
    public func setAutoscale(_ range: AutoscaleRange) {
        condition.lock()
        let current = target
        condition.unlock()
        setConcurrency(current, autoscale: range)
    }

    /// The pool's figures; `waiting` and `scheduled` come from the store's counts.
    public func capacity(waiting: Int = 0, scheduled: Int = 0) -> PoolCapacity {
        condition.lock()
        defer { condition.unlock() }
        return PoolCapacity(
            name: name, queues: queues, target: target, threads: threads, busy: busy, idle: idle, stuck: stuck,
            // Slots being claimed for are still free: a claim in flight is not work.
            free: unusedSlotsLocked, waiting: waiting, scheduled: scheduled, processed: processed, failed: failed,
            runTimeP50: runTimes.percentile(0.5), runTimeP99: runTimes.percentile(0.99), autoscale: autoscale)
    }

    /// Records one sample of the pool for the advisor (the registrar calls this every second) and
    /// returns the capacity with the activity it implies.
    func sample(waiting: Int, scheduled: Int, now: Date) -> PoolCapacity {
        condition.lock()
        // A stuck slot (its handler past the deadline) is as unavailable as a busy one.
        activity.add(.init(at: now, busy: busy + stuck, target: target, waiting: waiting, started: startedCount, finished: processed))
        let measured = activity.activity(now: now)
        condition.unlock()
        var figures = capacity(waiting: waiting, scheduled: scheduled)
        figures.activity = measured
        return figures
    }

    /// Notes that `resumed` queues (those of this pool among them) could run tasks again from `now`.
    func queuesResumed(_ resumed: Set<String>, at now: Date) {
        condition.lock()
        resumes.resumed(queues.filter(resumed.contains), at: now)
        condition.unlock()
    }

    /// The advisor's figures as of the last sample.
    func currentActivity(now: Date) -> PoolActivity? {
        condition.lock()
        defer { condition.unlock() }
        return activity.activity(now: now)
    }

    /// One autoscale step: grow while tasks wait and every slot holds a task; back to what is busy
    /// after `quietPeriod` in which no task waited for a slot.
    func autoscaleStep(waiting: Int, quietPeriod: Duration) {
        let now = monotonic.now()
        condition.lock()
        guard let range = autoscale else { return condition.unlock() }
        var grew = false
        // A slot reserved for a claim in flight is still unused: tasks waiting while one is are
        // about to be claimed, not a sign of too few slots (nor of too many).
        if waiting > 0 && unusedSlotsLocked > 0 {
            condition.unlock()
            return
        }
        if waiting > 0 {
            quietSince = nil
            if target < range.max {
                target = min(range.max, target + max(1, min(waiting, target)))
                startThreadsLocked()
                grew = true
            }
        } else {
            if quietSince == nil { quietSince = now }
            if let since = quietSince, now - since >= quietPeriod, target > max(range.min, busy) {
                target = max(range.min, busy)
                condition.broadcast()
            }
        }
        condition.unlock()
        if grew { wake.signal() }
    }

    // MARK: - Work

    /// Takes claimed tasks into slots reserved for them (`reserved` of them; the rest are given
    /// back); returns the tasks refused because the pool is stopping (to hand back).
    func submit(_ tasks: [TaskRecord], from source: TaskSource, reserved claimedFor: Int) -> [TaskRecord] {
        condition.lock()
        defer { condition.unlock() }
        reserved = max(0, reserved - claimedFor)
        guard !tasks.isEmpty else { return [] }
        guard accepting else { return tasks }
        for task in tasks { orphanLocked(task) }
        // Claimed a moment ago: its lease holds from then (the claim's round trip is the error).
        let leaseUntil = monotonic.now() + leaseDuration
        jobs.append(contentsOf: tasks.map { Job(task: $0, source: source, leaseUntil: leaseUntil) })
        startThreadsLocked()
        wakeForJobs()
        return []
    }

    /// Starts a thread for each job no idle thread will take, up to the target. Called when jobs
    /// arrive and when the target rises: with prefetch, jobs already held would otherwise wait for
    /// the old number of threads until new tasks arrived.
    private func startThreadsLocked() {
        while idle < jobs.count && threads - stuck < target {
            threads += 1
            idle += 1
            threadNumber += 1
            let thread = Thread { [self] in work() }
            thread.name = "sluice-pool-\(name)-\(threadNumber)"
            thread.start()
        }
    }

    /// A run of `task` under an older lease, still going (its lease was lost and the task claimed
    /// here again): it must not go on unseen beside the new run, nor send the old lease in
    /// heartbeats beside the new one. It is cancelled and kept apart until its thread returns.
    private func orphanLocked(_ task: TaskRecord) {
        guard let old = running[task.id], old.lease.token != task.lease?.token, !old.finished else { return }
        running[task.id] = nil
        orphans[ObjectIdentifier(old)] = old
        old.leaseLost = true
        old.cancellation.set("lease lost: the task was claimed again")
        old.asyncTask?.cancel()
    }

    /// Leases of every task this pool holds from `source`, started or not, for the heartbeat.
    func leases(from source: TaskSource) -> [TaskLease] {
        condition.lock()
        defer { condition.unlock() }
        return jobs.filter { $0.source == source }.compactMap(\.task.lease)
            + running.values.filter { $0.source == source && !$0.timedOut && !$0.leaseLost }.map(\.lease)
    }

    /// Applies what a heartbeat learned: stop cancelled tasks and tasks whose lease was lost.
    /// Claimed tasks not yet started are dropped when lost and cancelled at once when asked to.
    /// Each answer is about the lease (token) the heartbeat sent: by the time it comes, the task
    /// may have failed, been retried and claimed here again under another lease, and an answer
    /// about the old one must not drop or cancel the new one. A lease answered held holds for a
    /// lease period from `sent` (monotonic), when the heartbeat left; so does one answered
    /// `cancelRequested` (the store renewed it too, and a handler may take its time to stop).
    func apply(_ answers: [TaskID: LeaseAnswer], from source: TaskSource, sent: Duration) {
        condition.lock()
        var cancelledUnstarted: [Job] = []
        var dropped = 0
        let renewedUntil = sent + leaseDuration
        for index in jobs.indices where jobs[index].source == source {
            if let answer = answers[jobs[index].task.id], answer.token == jobs[index].task.lease?.token, answer.status != .lost {
                jobs[index].leaseUntil = max(jobs[index].leaseUntil, renewedUntil)
            }
        }
        jobs.removeAll { job in
            guard job.source == source, let answer = answers[job.task.id], answer.token == job.task.lease?.token,
                  answer.status != .held else { return false }
            if answer.status == .cancelRequested { cancelledUnstarted.append(job) } else { dropped += 1 }
            return true
        }
        defer {
            condition.unlock()
            for job in cancelledUnstarted {
                report(Outcome(source: job.source, result: .fail(job.task.lease!, TaskFailure(TaskRecord.cancelledBeforeStartMessage, disposition: .cancel)), pool: name))
            }
            // Their slots are free: the fetcher claims for them now, not at its next poll.
            if !cancelledUnstarted.isEmpty || dropped > 0 { wake.signal() }
        }
        for (id, answer) in answers {
            guard let run = running[id], run.source == source, !run.timedOut, run.lease.token == answer.token else { continue }
            if answer.status != .lost { run.leaseUntil = max(run.leaseUntil, renewedUntil) }
            switch answer.status {
            case .held: break
            case .cancelRequested:
                run.cancellation.set("cancelled by request")
                run.asyncTask?.cancel()
            case .lost:
                run.leaseLost = true
                run.cancellation.set("lease lost")
                run.asyncTask?.cancel()
            }
        }
    }

    /// Fails tasks past their (monotonic) deadline as timed out; their threads count as stuck
    /// until they return. Stops, as lost, tasks whose lease went a whole lease period without a
    /// renewal (heartbeats failing: the store unreachable), since the lease may have expired in
    /// the store and the task been rescued and started elsewhere; claimed tasks not yet started
    /// are dropped for the same reason. Their outcomes would be refused anyway (fencing); this
    /// stops the two runs going on at once.
    func checkDeadlines() {
        let now = monotonic.now()
        var expired: [Run] = []
        condition.lock()
        // Under the pool's busiest lock, ten times a second: nothing is allocated unless a lease lapsed.
        var lapsed = false
        for run in running.values where !run.timedOut && !run.finished && !run.leaseLost && run.leaseUntil <= now {
            run.leaseLost = true
            run.cancellation.set("lease expired: not renewed for \(leaseDuration.seconds) s (the store unreachable?), so another process may run the task")
            run.asyncTask?.cancel()
            lapsed = true
        }
        if jobs.contains(where: { $0.leaseUntil <= now }) {
            jobs.removeAll { $0.leaseUntil <= now }
            lapsed = true
        }
        if lapsed { wake.signal() }
        for run in Array(running.values) + orphans.values where !run.timedOut && !run.finished && run.dueAt <= now {
            run.timedOut = true
            // Under the lock, so the run's thread, returning at the cancel, reads it right.
            run.timeoutCounted = !run.leaseLost
            busy -= 1
            stuck += 1
            run.cancellation.set("timed out after \(run.task.timeout.seconds) s")
            run.asyncTask?.cancel()
            expired.append(run)
        }
        // A drain waiting for the pool to go idle counts stuck threads as done: tell it.
        if !expired.isEmpty { condition.broadcast() }
        condition.unlock()
        for run in expired where run.timeoutCounted {
            report(Outcome(source: run.source, result: .fail(run.lease, TaskFailure("timed out after \(run.task.timeout.seconds) s")), pool: name))
            outcomeCounters["failed"]?.increment()
        }
    }

    /// Stops taking work and returns claimed tasks that never started (to hand back to the queue).
    func stop() -> [Job] {
        condition.lock()
        accepting = false
        let unstarted = Array(jobs)
        jobs.removeAll()
        condition.broadcast()
        condition.unlock()
        wake.signal()
        return unstarted
    }

    /// Cancels every task still running, as lost: at the end of a shutdown's grace period, so that
    /// an async handler stops and an `exec` child is killed rather than outliving the process. No
    /// outcome is reported: the leases expire and the tasks run again, as when the process dies.
    /// Returns how many of them are async: those stop at the cancel, and are worth a moment's wait.
    @discardableResult
    func abandonRunning(_ reason: String) -> Int {
        condition.lock()
        defer { condition.unlock() }
        var async = 0
        for run in running.values where !run.timedOut && !run.finished {
            run.leaseLost = true
            run.cancellation.set(reason)
            if let task = run.asyncTask {
                task.cancel()
                async += 1
            }
        }
        return async
    }

    /// Waits until no task runs (stuck ones aside) or `deadline` passes; returns whether idle.
    func waitUntilIdle(within time: Duration) -> Bool {
        waitUntilIdle(until: monotonic.now() + time)
    }

    /// As `waitUntilIdle(within:)`, until `end` on this pool's monotonic clock, so that several pools
    /// share one grace period. The wall clock the condition waits on may jump: it waits in slices.
    func waitUntilIdle(until end: Duration) -> Bool {
        condition.lock()
        idleWaiters += 1
        defer {
            idleWaiters -= 1
            condition.unlock()
        }
        while busy > 0 || reporting > 0 {
            let left = end - monotonic.now()
            if left <= .zero { return false }
            _ = condition.wait(until: Date().addingTimeInterval(min(left, .milliseconds(100)).seconds))
        }
        return true
    }

    /// The key under which a pool thread's `threadDictionary` holds its pool's name. (Thread names
    /// are cut to 15 bytes on Linux, too short to say which pool a thread serves.)
    public static let threadKey = "sluice.pool"

    /// Below this recent run time, jobs wake sleeping threads one at a time rather than one each.
    static let shortTask = 0.000_2

    /// Wakes sleeping threads for the jobs waiting (called holding the lock). Long tasks get one
    /// thread each at once. Short ones get one more at a time, and each thread that takes a job
    /// while more wait wakes the next: a thread takes tens of microseconds to wake, in which the
    /// threads already awake run several short tasks, so waking one per job would cost two context
    /// switches a task for threads that mostly find the queue empty.
    private func wakeForJobs() {
        let wanted = (recentRunTime ?? .infinity) < Pool.shortTask ? 1 : jobs.count
        let wakes = min(wanted, sleeping) - wakesPending
        guard wakes > 0 else { return }
        wakesPending += wakes
        for _ in 0..<wakes { condition.signal() }
    }

    /// A thread's life: take a task, run it, repeat; leave when surplus or idle too long.
    private func work() {
        Thread.current.threadDictionary[Pool.threadKey] = name
        condition.lock()
        while true {
            if threads - stuck > target { break }
            if let job = jobs.popFirst() {
                let task = job.task
                if !jobs.isEmpty { wakeForJobs() }
                idle -= 1
                busy += 1
                let run = Run(task: task, source: job.source, lease: task.lease!,
                              deadline: clock.now().addingTimeInterval(task.timeout.seconds), dueAt: monotonic.now() + task.timeout,
                              leaseUntil: job.leaseUntil)
                orphanLocked(task)
                running[task.id] = run
                // Wait time: from when the task could run (due, and its queue not paused) to when a thread took it.
                let startedAt = clock.now()
                let waited = startedAt.timeIntervalSince(resumes.readyAt(task))
                startedCount += 1
                activity.addWait(waited, at: startedAt)
                condition.unlock()
                waitTime.recordNanoseconds(max(0, Int64(waited * 1e9)))
                onStart(task)
                let started = ContinuousClock.now
                let outcome = execute(run)
                let elapsed = ContinuousClock.now - started
                condition.lock()
                run.finished = true
                let reportable = !run.timedOut && !run.leaseLost
                let timeoutCounted = run.timeoutCounted
                // A stale run (timed out, its task since claimed again here) must not remove the
                // newer run's record: that one still needs heartbeats, its deadline and cancels.
                if running[task.id] === run { running[task.id] = nil } else { orphans[ObjectIdentifier(run)] = nil }
                // The slot is free before the outcome is handed over, so the completer can refill it
                // in the outcome's own transaction; `reporting` keeps a graceful drain waiting
                // until the outcome is handed over.
                if run.timedOut { stuck -= 1 } else { busy -= 1 }
                reporting += 1
                idle += 1
                processed += 1
                if case .fail? = outcome?.result { failed += 1 }
                runTimes.add(elapsed.seconds)
                recentRunTime = recentRunTime.map { $0 * 0.9 + elapsed.seconds * 0.1 } ?? elapsed.seconds
                condition.unlock()
                if reportable, let outcome { report(outcome) }
                runTime.recordNanoseconds(Int64(elapsed.seconds * 1e9))
                // A timeout was counted as failed at its deadline; a lost lease's outcome is dropped.
                switch outcome?.result {
                case _ where timeoutCounted: break
                case .complete? where reportable: outcomeCounters["succeeded"]?.increment()
                case .fail? where reportable: outcomeCounters["failed"]?.increment()
                default: outcomeCounters["dropped"]?.increment()
                }
                // Durable outcomes wake the fetcher through the completer (which refills the slot
                // first); fire-and-forget ones have no transaction to share.
                if !reportable || job.source == .memory { wake.signal() }
                // Kept into the next turn: with 64 threads on short tasks this lock is the hottest
                // in the process, and each acquisition a thread can skip is one less to wait for.
                condition.lock()
                reporting -= 1
                if idleWaiters > 0 { condition.broadcast() }
                continue
            }
            if !accepting { break }
            sleeping += 1
            let signalled = condition.wait(until: Date().addingTimeInterval(idleTimeout.seconds))
            sleeping -= 1
            wakesPending = max(0, wakesPending - 1)
            if !signalled && jobs.isEmpty { break }
        }
        idle -= 1
        threads -= 1
        condition.broadcast()
        condition.unlock()
    }

    /// Runs one attempt and sorts its outcome.
    private func execute(_ run: Run) -> Outcome? {
        let task = run.task
        func fail(_ failure: TaskFailure) -> Outcome { Outcome(source: run.source, result: .fail(run.lease, failure), pool: name) }
        let context = TaskContext(id: task.id, kind: task.kind, args: task.args, attempt: task.attempt,
                                  maxAttempts: task.maxAttempts, deadline: run.deadline, cancellation: run.cancellation)
        // Another process on the same queue may know it: retried by the task's policy (as River,
        // Oban and Sidekiq do), not failed for good on the first process that happened to claim it.
        guard let handler = registry[task.kind] else {
            return fail(TaskFailure("no handler for kind \(task.kind) in this process (pool \(name); known kinds: \(registry.kinds.joined(separator: ", "))); "
                                    + "every process that drains queue \(task.queue) must know every kind sent to it: give these tasks a queue of their own, "
                                    + "or run `sluice serve --no-pool` beside workers that know them"))
        }
        let result: Result<JSONValue, any Error>
        switch handler.body {
        case .blocking(let body):
            result = Result { try body(context) }
        case .async(let body):
            // The thread waits, so an async task holds its slot exactly like a blocking one.
            let done = DispatchSemaphore(value: 0)
            let box = ResultBox()
            let child = Task {
                do { box.result = .success(try await body(context)) } catch { box.result = .failure(error) }
                done.signal()
            }
            condition.lock()
            run.asyncTask = child
            if run.cancellation.isSet { child.cancel() }
            condition.unlock()
            done.wait()
            result = box.result ?? .failure(CancellationError())
        }
        switch result {
        case .success(let value):
            // A result that cannot be stored fails its task, as a remote worker's does.
            return Outcome(source: run.source, result: .completed(run.lease, value), pool: name)
        case .failure(var failure as TaskFailure):
            if run.cancellation.reason == "cancelled by request" { failure.disposition = .cancel }
            return fail(failure)
        case .failure(let error):
            let cancelled = run.cancellation.reason == "cancelled by request"
            return fail(TaskFailure(cancelled ? "cancelled by request" : "\(error)", disposition: cancelled ? .cancel : .retry))
        }
    }
}

private final class ResultBox: @unchecked Sendable {
    var result: Result<JSONValue, any Error>?
}

/// Run times of the most recent tasks, for percentiles.
struct RunTimeWindow {
    private var values: [Double] = []
    private var next = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    mutating func add(_ value: Double) {
        if values.count < capacity { values.append(value) } else { values[next] = value }
        next = (next + 1) % capacity
    }

    func percentile(_ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))]
    }
}
