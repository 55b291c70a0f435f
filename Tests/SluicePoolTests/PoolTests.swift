import Foundation
import SluiceCore
@testable import SluicePool
import SluiceSQLite
import SluiceStore
import SluiceTestSupport
import Synchronization
import Testing

/// A registry whose `stubborn` kind says it started, then waits for `gate` whatever its deadline
/// or cancellation says, and returns "late".
func stubbornRegistry() -> (registry: HandlerRegistry, started: Gate, gate: Gate) {
    let gate = Gate()
    let started = Gate()
    var registry = HandlerRegistry()
    registry.register("stubborn", .blocking { _ in
        started.release()
        gate.wait()  // ignores its cancellation check
        return "late"
    })
    return (registry, started, gate)
}

/// A registry whose `hold` kind counts itself running in `mark` until the test opens `gate`.
func holdingRegistry() -> (registry: HandlerRegistry, mark: HighWaterMark, gate: Gate) {
    let mark = HighWaterMark()
    let gate = Gate()
    var registry = HandlerRegistry()
    registry.register("hold", .blocking { _ in
        mark.enter()
        gate.wait()
        mark.leave()
        return nil
    })
    return (registry, mark, gate)
}

@Suite(.serialized, .timeLimit(.minutes(4))) struct PoolTests {
    @Test func blockingHandlersRunOnThePoolsOwnThreads() async throws {
        let (store, dir) = try sqliteStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        // 20 handlers that can only finish once all 20 run at the same time: on Swift's cooperative
        // pool (one thread per core, 2 here) they would never all start.
        let count = 20
        let arrived = Mutex(0)
        let allHere = Gate()
        let names = Mutex<[String]>([])
        var registry = HandlerRegistry()
        registry.register("probe", .blocking { _ in
            names.withLock { $0.append(Thread.current.threadDictionary[Pool.threadKey] as? String ?? "not a pool thread") }
            if arrived.withLock({ $0 += 1; return $0 }) == count { allHere.release() }
            allHere.wait(timeout: 10)
            return ["main": .bool(Thread.isMainThread)]
        })
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: count)], registry: registry) { _ in
            let ids = try await store.enqueue(batch: (0..<count).map { _ in EnqueueRequest(kind: "probe") }).map(\.task.id)
            let tasks = try await finished(store, ids)
            #expect(tasks.allSatisfy { $0.state == .succeeded && $0.result == ["main": false] })
        }
        #expect(arrived.withLock { $0 } == count)
        #expect(names.withLock { $0 } == Array(repeating: "default", count: count))
    }

    @Test func afterShortTasksAWaveOfBlockingTasksStillGetsAThreadEach() async throws {
        let (store, dir) = try sqliteStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Hundreds of no-op tasks make the pool wake its threads one at a time (`Pool.shortTask`);
        // the wave after them can only finish if that chain still reaches every thread.
        let count = 20
        let arrived = Mutex(0)
        let allHere = Gate()
        var registry = HandlerRegistry()
        registry.register("quick", .blocking { _ in nil })
        registry.register("rendezvous", .blocking { _ in
            if arrived.withLock({ $0 += 1; return $0 }) == count { allHere.release() }
            return .bool(allHere.wait(timeout: 10))
        })
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: count)], registry: registry) { _ in
            let quick = try await store.enqueue(batch: (0..<500).map { _ in EnqueueRequest(kind: "quick") }).map(\.task.id)
            #expect(try await finished(store, quick).allSatisfy { $0.state == .succeeded })
            let ids = try await store.enqueue(batch: (0..<count).map { _ in EnqueueRequest(kind: "rendezvous") }).map(\.task.id)
            let tasks = try await finished(store, ids)
            #expect(tasks.allSatisfy { $0.state == .succeeded && $0.result == .bool(true) })
        }
        #expect(arrived.withLock { $0 } == count)
    }

    @Test(arguments: [StoreChoice.sqlite, .memory])
    func highWaterMarkEqualsTheConcurrency(store choice: StoreChoice) async throws {
        let (store, cleanup) = try choice.make()
        defer { cleanup() }
        let mark = HighWaterMark()
        var registry = HandlerRegistry()
        registry.register("nap", .blocking { _ in
            mark.enter()
            Thread.sleep(forTimeInterval: 0.05)
            mark.leave()
            return nil
        })
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 20)], registry: registry) { _ in
            let ids = try await store.enqueue(batch: (0..<200).map { _ in EnqueueRequest(kind: "nap") }).map(\.task.id)
            let tasks = try await finished(store, ids)
            #expect(tasks.allSatisfy { $0.state == .succeeded })
        }
        #expect(mark.max == 20)
    }

    /// A fetcher whose stores hear every enqueue polls seldom (here every 60 s at most); a delayed
    /// task is announced by no enqueue when it falls due, so the fetcher asks the store when the
    /// next one does and wakes then. Polling alone claimed this one about 2 s late (at 4.1 s).
    @Test func aDelayedTaskStartsOnTimeWhenTheFetcherPollsSeldom() async throws {
        let store = MemoryTaskStore()
        #expect(store.hearsEveryEnqueue)
        var registry = HandlerRegistry()
        registry.register("echo", .blocking { _ in nil })
        var options = fastOptions()
        options.backstopPollInterval = .seconds(60)
        let id = try await store.enqueue(EnqueueRequest(kind: "echo", runAt: Date().addingTimeInterval(2.1))).task.id
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 1)],
                             registry: registry, options: options) { _ in
            let task = try await finished(store, [id])[0]
            let late = try #require(task.startedAt).timeIntervalSince(task.runAt)
            #expect(task.state == .succeeded && late >= 0 && late < 1, "started \(late) s after it was due")
        }
    }

    /// A process that claims a task of a kind it has no handler for (another process on the same
    /// queue knows it) fails the attempt with the task's retry policy, not for good: the task then
    /// runs where its handler is. The message says what to change.
    @Test func aKindThisProcessDoesNotKnowIsRetriedForAnotherProcess() async throws {
        // A backoff of exactly 1 s (no jitter): the first process stops well before it could claim again.
        let store = MemoryTaskStore(unitRandom: { 1.0 })
        var builtin = HandlerRegistry()
        builtin.register("echo", .blocking { _ in nil })
        var python = HandlerRegistry()
        python.register("resize", .blocking { _ in "done" })
        let id = try await store.enqueue(EnqueueRequest(kind: "resize", maxAttempts: 3, retryPolicy: RetryPolicy(base: .seconds(1), cap: .seconds(1)))).task.id
        let pools = [PoolConfiguration(name: "default", queues: ["default"], concurrency: 1)]
        try await withWorker(store: store, pools: pools, registry: builtin) { _ in
            // Its first attempt recorded, not only claimed (the claim counts the attempt already).
            #expect(await eventually { (try? await store.require(id))?.error != nil })
        }
        let missed = try await store.require(id)
        #expect(missed.state == .retrying || missed.state == .queued, "\(missed.state): \(missed.error ?? "")")
        #expect(missed.error?.contains("no handler for kind resize in this process") == true
                && missed.error?.contains("every process that drains queue default must know every kind sent to it") == true, "\(missed.error ?? "")")
        try await withWorker(store: store, pools: pools, registry: python) { _ in
            let done = try await finished(store, [id])[0]
            #expect(done.state == .succeeded && done.result == "done" && done.attempt == 2)
        }
    }

    @Test func prefetchHoldsTasksBeyondTheSlotsRunsNoMoreAtOnceAndHandsThemBack() async throws {
        let (store, dir) = try sqliteStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (registry, mark, gate) = holdingRegistry()
        var options = fastOptions()
        options.prefetch = 3
        let ids = try await store.enqueue(batch: (0..<8).map { _ in EnqueueRequest(kind: "hold") }).map(\.task.id)
        func states() async throws -> [TaskState] {
            var states: [TaskState] = []
            for id in ids { states.append(try await store.require(id).state) }
            return states
        }
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 2)],
                             registry: registry, options: options) { worker in
            // Two run and three wait claimed in the pool: five leases; the other three stay queued.
            let claimedFive = try await eventually { try await states().filter { $0 == .running }.count == 5 }
            let runningTwo = await eventually { mark.current == 2 }
            let queued = try await states().filter { $0 == .queued }.count
            #expect(claimedFive && runningTwo && queued == 3)
            #expect(worker.pools[0].freeSlots == 0)
            // The drain hands the prefetched tasks back before the running two may end.
            worker.beginShutdown()
            let handedBack = try await eventually { try await states().filter { $0 == .queued }.count == 6 }
            #expect(handedBack)
            gate.release()
        }
        // The two that ran finished; the three prefetched went back to the queue with the other three.
        let after = try await states()
        #expect(after.filter { $0 == .succeeded }.count == 2 && after.filter { $0 == .queued }.count == 6, "\(after)")
        #expect(mark.max == 2)
    }

    @Test func raisingTheConcurrencyStartsTasksAlreadyHeldInThePrefetch() async throws {
        let (store, dir) = try sqliteStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (registry, mark, gate) = holdingRegistry()
        var options = fastOptions()
        options.prefetch = 3
        // Exactly what two slots and a prefetch of three claim: after the resize no claim brings
        // anything new, so only the held tasks can fill the new slots.
        let ids = try await store.enqueue(batch: (0..<5).map { _ in EnqueueRequest(kind: "hold") }).map(\.task.id)
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 2)],
                             registry: registry, options: options) { worker in
            let pool = try #require(worker.pool("default"))
            #expect(await eventually { mark.current == 2 })
            #expect(try await eventually { try await store.counts() == [QueueCounts(queue: "default", counts: [.running: 5])] })
            pool.setConcurrency(5)
            #expect(await eventually { mark.current == 5 }, "\(mark.current) of the 5 held tasks run after the resize")
            gate.release()
            let tasks = try await finished(store, ids)
            #expect(tasks.allSatisfy { $0.state == .succeeded })
        }
    }

    @Test func liveResizeFollowsTheNewLimitWithoutInterruptingTasks() async throws {
        let (store, dir) = try sqliteStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        let mark = HighWaterMark()
        let gate = Gate()
        let startsAfterShrink = Mutex<[Int]?>(nil)
        var registry = HandlerRegistry()
        registry.register("held", .blocking { _ in
            let now = mark.enter()
            startsAfterShrink.withLock { $0?.append(now) }
            gate.wait()
            mark.leave()
            return nil
        })
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 4)], registry: registry) { worker in
            let pool = try #require(worker.pool("default"))
            let ids = try await store.enqueue(batch: (0..<40).map { _ in EnqueueRequest(kind: "held") }).map(\.task.id)
            #expect(await eventually { mark.current == 4 })
            // No prefetch hogging: the database shows exactly the running tasks as claimed.
            #expect(try await store.counts() == [QueueCounts(queue: "default", counts: [.running: 4, .queued: 36])])
            #expect(pool.capacity().free == 0)

            pool.setConcurrency(10)
            #expect(await eventually { mark.current == 10 })
            #expect(pool.capacity().target == 10)
            #expect(try await store.counts() == [QueueCounts(queue: "default", counts: [.running: 10, .queued: 30])])

            pool.setConcurrency(2)
            startsAfterShrink.withLock { $0 = [] }
            #expect(pool.capacity().target == 2 && pool.capacity().busy == 10, "running tasks are not interrupted")
            gate.release()
            let tasks = try await finished(store, ids)
            #expect(tasks.allSatisfy { $0.state == .succeeded && $0.attempt == 1 })
        }
        #expect(mark.max == 10)
        let later = startsAfterShrink.withLock { $0 ?? [] }
        #expect(later.count == 30)
        #expect(later.allSatisfy { $0 <= 2 }, "tasks started after the shrink saw \(later.max() ?? 0) running")
    }

    @Test func aTimedOutBlockingHandlerIsRecordedAndItsSlotReportedStuck() async throws {
        let clock = ManualClock(Date())
        let monotonic = ManualMonotonicClock()
        let (store, dir) = try sqliteStore(clock: clock)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (registry, started, gate) = stubbornRegistry()
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 2)], registry: registry,
                             clock: clock, monotonic: monotonic) { worker in
            let pool = try #require(worker.pool("default"))
            let id = try await store.enqueue(EnqueueRequest(kind: "stubborn", maxAttempts: 1, timeout: .seconds(5))).task.id
            await onOwnThread { started.wait() }
            monotonic.advance(by: .seconds(6))
            #expect(await eventually { pool.capacity().stuck == 1 })
            let capacity = pool.capacity()
            #expect(capacity.busy == 0 && capacity.free == 1)
            let task = try await finished(store, [id])[0]
            #expect(task.state == .failed && task.error?.contains("timed out") == true)
            // For the advisor the stuck slot is as busy as a running one: no task can use it.
            clock.advance(by: .seconds(120))
            _ = pool.sample(waiting: 0, scheduled: 0, now: clock.now())
            clock.advance(by: .seconds(1))
            #expect(pool.sample(waiting: 0, scheduled: 0, now: clock.now()).activity?.meanBusy == 1)
            gate.release()
            #expect(await eventually { pool.capacity().stuck == 0 && pool.capacity().free == 2 })
            // The late result is not written over the recorded timeout.
            #expect(try await store.require(id).state == .failed)
        }
    }

    /// A store that refuses the last outcomes of a shutdown (here its write lock is held by another
    /// connection the whole time) does not keep the worker from exiting: the completer retries for
    /// the grace period, then gives up, and the task keeps its lease to expire and run again.
    @Test func aShutdownWhoseLastOutcomesCannotBeWrittenEndsAfterTheGrace() async throws {
        let (store, dir) = try sqliteStore(busyTimeout: .milliseconds(200))
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tasks.db").path
        let (registry, started, gate) = stubbornRegistry()
        var options = fastOptions()
        options.grace = .seconds(1)
        let id = try await store.enqueue(EnqueueRequest(kind: "stubborn")).task.id
        let worker = try Worker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 1)],
                                registry: registry, options: options)
        let ended = Mutex(false)
        let run = Task {
            try await worker.run()
            ended.withLock { $0 = true }
        }
        #expect(await onOwnThread { started.wait() })
        let locker = try SQLiteConnection(path: path)
        // The worker writes all the time (heartbeats, registration): wait for its lock to take ours.
        try locker.execute("PRAGMA busy_timeout = 10000; BEGIN IMMEDIATE; INSERT INTO pool_settings (pool, worker, updated_at) VALUES ('lock', 'x', 0)")
        worker.beginShutdown()
        gate.release()
        let endedWhileLocked = await eventually(timeout: .seconds(20)) { ended.withLock { $0 } }
        try locker.execute("ROLLBACK")
        try await run.value
        #expect(endedWhileLocked, "the worker kept retrying its last outcome after the grace period")
        let task = try await store.require(id)
        #expect(task.state == .running && task.lease != nil, "the outcome was given up; the lease expires and the task runs again: \(task.state)")
    }

    /// A drain waits for running tasks; one that times out is done with, as far as the drain goes,
    /// and the drain hears of it then, not at the end of its grace period.
    @Test func aDrainWaitingForIdleIsToldWhenTheLastTaskTimesOut() async throws {
        let monotonic = ManualMonotonicClock()
        let (store, dir) = try sqliteStore(clock: SystemClock())
        defer { try? FileManager.default.removeItem(at: dir) }
        let (registry, started, gate) = stubbornRegistry()
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 1)], registry: registry,
                             monotonic: monotonic) { worker in
            let pool = try #require(worker.pool("default"))
            _ = try await store.enqueue(EnqueueRequest(kind: "stubborn", maxAttempts: 1, timeout: .seconds(5)))
            await onOwnThread { started.wait() }
            let began = ContinuousClock.now
            async let idle = onOwnThread { pool.waitUntilIdle(within: .seconds(30)) }
            monotonic.advance(by: .seconds(6))
            #expect(await idle)
            #expect(ContinuousClock.now - began < .seconds(15), "the drain waited out its deadline")
            gate.release()
        }
    }

    @Test func tasksInAPausedQueueDoNotCountAsWaitingForTheirPool() async throws {
        let store = MemoryTaskStore()
        let worker = try Worker(store: store, pools: [PoolConfiguration(name: "p", queues: ["a", "b"], concurrency: 1)],
                                registry: HandlerRegistry(), options: fastOptions())
        for queue in ["a", "a", "a", "b", "b"] { _ = try await store.enqueue(EnqueueRequest(kind: "echo", queue: queue)) }
        #expect(try await worker.capacity().first?.waiting == 5)
        worker.setPausedQueues(["a"])
        #expect(try await worker.capacity().first?.waiting == 2)
    }

    @Test func aWallClockSetForwardTimesNothingOut() async throws {
        let clock = ManualClock(Date())
        let monotonic = ManualMonotonicClock()
        let (store, dir) = try sqliteStore(clock: clock)
        defer { try? FileManager.default.removeItem(at: dir) }
        let gate = Gate()
        let started = Gate()
        var registry = HandlerRegistry()
        registry.register("slow", .blocking { _ in
            started.release()
            gate.wait()
            return "done"
        })
        var options = fastOptions()
        options.leaseDuration = .seconds(60)
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 1)], registry: registry,
                             options: options, clock: clock, monotonic: monotonic) { worker in
            let pool = try #require(worker.pool("default"))
            let id = try await store.enqueue(EnqueueRequest(kind: "slow", maxAttempts: 1, timeout: .seconds(30))).task.id
            await onOwnThread { started.wait() }
            // The wall clock jumps an hour ahead; the task has run for no time at all.
            clock.advance(by: .seconds(3600))
            for _ in 0..<5 { pool.checkDeadlines() }
            #expect(pool.capacity().stuck == 0 && pool.capacity().busy == 1)
            // Past its real (monotonic) deadline, it times out.
            monotonic.advance(by: .seconds(31))
            #expect(await eventually { pool.capacity().stuck == 1 })
            gate.release()
            #expect(try await finished(store, [id])[0].error?.contains("timed out") == true)
        }
    }

    /// A task whose lease was lost while it ran here (heartbeats failing past the lease), rescued
    /// and claimed here again: the old run is cancelled and no longer heartbeats beside the new
    /// one. It used to be overwritten by the new run, and then went on unseen: no cancel, no
    /// deadline, and its lease sent with the new one, whose answer could drop the new run.
    @Test func aRunWhoseTaskIsClaimedHereAgainIsCancelledAndSendsNoLease() async throws {
        let clock = ManualClock(Date())
        let store = MemoryTaskStore(clock: clock)
        let gate = Gate()
        let started = Gate()
        let cancelledSeen = Mutex<[Int: Bool]>([:])
        let outcomes = Mutex<[TaskOutcome]>([])
        var registry = HandlerRegistry()
        registry.register("stubborn", .blocking { context in
            started.release()
            gate.wait()  // ignores cancels until the test opens the gate
            cancelledSeen.withLock { $0[context.attempt] = context.isCancelled }
            return .int(Int64(context.attempt))
        })
        let pool = Pool(configuration: PoolConfiguration(name: "p", queues: ["default"], concurrency: 2), registry: registry,
                        clock: clock, idleTimeout: .seconds(60), report: { outcome in outcomes.withLock { $0.append(outcome.result) } })
        _ = try await store.enqueue(EnqueueRequest(kind: "stubborn", maxAttempts: 3))
        let first = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: .seconds(1))
        _ = pool.submit(first, from: .durable, reserved: 0)
        await onOwnThread { started.wait() }
        // Its heartbeats failed: the lease ran out, the task was rescued and claimed here again.
        clock.advance(by: .seconds(5))
        _ = try await store.rescueExpiredLeases()
        let second = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: .seconds(60))
        try #require(second.count == 1 && second[0].lease?.token != first[0].lease?.token)
        _ = pool.submit(second, from: .durable, reserved: 0)
        #expect(pool.leases(from: .durable) == [second[0].lease!], "only the new lease is renewed")
        gate.release()
        #expect(await eventually { outcomes.withLock { $0.count } == 1 && pool.capacity().busy == 0 })
        #expect(cancelledSeen.withLock { $0 } == [1: true, 2: false])
        #expect(outcomes.withLock { $0.map(\.lease) } == [second[0].lease!], "only the new run reports")
        _ = pool.stop()
    }

    @Test func aStaleRunDoesNotRemoveTheNewerRunOfTheSameTask() async throws {
        let clock = ManualClock(Date())
        let monotonic = ManualMonotonicClock()
        let (store, dir) = try sqliteStore(clock: clock)
        defer { try? FileManager.default.removeItem(at: dir) }
        let firstGate = Gate(), secondGate = Gate()
        let firstStarted = Gate(), secondStarted = Gate()
        var registry = HandlerRegistry()
        registry.register("stubborn", .blocking { context in
            if context.attempt == 1 {
                firstStarted.release()
                firstGate.wait()  // ignores its deadline
                return "late"
            }
            secondStarted.release()
            secondGate.wait()
            return "second"
        })
        var options = fastOptions()
        options.leaseDuration = .seconds(60)
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 2)], registry: registry,
                             options: options, clock: clock, monotonic: monotonic) { worker in
            let pool = try #require(worker.pool("default"))
            let id = try await store.enqueue(EnqueueRequest(kind: "stubborn", maxAttempts: 2, timeout: .seconds(5),
                                                            retryPolicy: RetryPolicy(base: .milliseconds(1), cap: .milliseconds(1)))).task.id
            await onOwnThread { firstStarted.wait() }
            // Timed out and retried at once (the backoff is ~0): the second attempt runs beside the
            // stuck first one.
            monotonic.advance(by: .seconds(6))
            clock.advance(by: .seconds(1))
            pool.wake.signal()
            await onOwnThread { secondStarted.wait() }
            #expect(pool.capacity().stuck == 1)
            let second = try await store.require(id)
            #expect(second.state == .running && second.attempt == 2)
            // The first run's thread returns now; the second run must keep its record.
            firstGate.release()
            #expect(await eventually { pool.capacity().stuck == 0 })
            #expect(pool.leases(from: .durable).map(\.token) == [second.lease!.token])
            secondGate.release()
            let done = try await finished(store, [id])[0]
            #expect(done.state == .succeeded && done.result == "second" && done.attempt == 2)
        }
    }

    @Test func cancellingARunningTaskStopsIt() async throws {
        let (store, dir) = try sqliteStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 2)], registry: .builtin()) { _ in
            let id = try await store.enqueue(EnqueueRequest(kind: "sleep", args: ["seconds": 60])).task.id
            #expect(await eventually { (try? await store.require(id).state) == .running })
            _ = try await store.cancel(id)
            let task = try await finished(store, [id], timeout: .seconds(10))[0]
            #expect(task.state == .cancelled)
        }
    }

    @Test func builtinKindsRetryAndRefuse() async throws {
        let (store, dir) = try sqliteStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 4)], registry: .builtin()) { _ in
            let fast = RetryPolicy(base: .milliseconds(1), cap: .milliseconds(5))
            let flaky = try await store.enqueue(EnqueueRequest(kind: "fail", args: ["times": 2, "message": "flaky"], maxAttempts: 3, retryPolicy: fast)).task.id
            let hopeless = try await store.enqueue(EnqueueRequest(kind: "fail", args: ["times": 5], maxAttempts: 2, retryPolicy: fast)).task.id
            let echo = try await store.enqueue(EnqueueRequest(kind: "echo", args: ["hello": "world"])).task.id
            let cpu = try await store.enqueue(EnqueueRequest(kind: "cpu", args: ["iterations": 1000])).task.id
            let unknown = try await store.enqueue(EnqueueRequest(kind: "nope", maxAttempts: 2, retryPolicy: fast)).task.id
            let badArgs = try await store.enqueue(EnqueueRequest(kind: "sleep", args: ["seconds": "three"])).task.id
            let done = try await finished(store, [flaky, hopeless, echo, cpu, unknown, badArgs])
            #expect(done[0].state == .succeeded && done[0].attempt == 3 && done[0].result == ["attempts": 3])
            #expect(done[0].attemptErrors.map(\.attempt) == [1, 2] && done[0].attemptErrors[0].message.hasPrefix("flaky"))
            #expect(done[1].state == .failed && done[1].attempt == 2)
            #expect(done[2].result == ["hello": "world"])
            #expect(done[3].state == .succeeded && done[3].result?["digest"] != nil)
            // Retried (another process may know the kind), then failed when out of attempts.
            #expect(done[4].state == .failed && done[4].attempt == 2 && done[4].error?.contains("known kinds: cpu, echo, exec, fail, sleep") == true)
            #expect(done[5].state == .failed && done[5].attempt == 1 && done[5].error == "args.seconds must be a number from 0.0 to 86400.0")
        }
    }

    @Test func operatorsChangesInTheStoreApplyWithinASecond() async throws {
        let (store, dir) = try sqliteStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 3)], registry: .builtin()) { worker in
            let pool = try #require(worker.pool("default"))
            try await store.savePoolSetting(PoolSetting(pool: "default", worker: nil, concurrency: 17, autoscale: nil, updatedAt: Date()))
            #expect(await eventually(timeout: .seconds(1)) { pool.capacity().target == 17 })
            try await store.savePoolSetting(PoolSetting(pool: "default", worker: worker.id, concurrency: nil, autoscale: AutoscaleRange(min: 2, max: 5), updatedAt: Date()))
            #expect(await eventually(timeout: .seconds(1)) { pool.capacity().autoscale == AutoscaleRange(min: 2, max: 5) })
            #expect(pool.capacity().target == 5)
            // The process lists itself with its pools.
            let workers = try await store.workers(seenWithin: .seconds(10))
            #expect(workers.map(\.id) == [worker.id])
            #expect(workers.first?.pools.map(\.name) == ["default"])
        }
        #expect(try await store.workers(seenWithin: .seconds(10)).isEmpty, "a stopped worker removes itself")
    }

    /// Slots reserved for a claim in flight are unused slots: tasks waiting meanwhile do not grow
    /// the pool (the completer and fetchers reserve every free slot for each write in flight, so
    /// a busy pool grew to its maximum with threads idle).
    /// Autoscale's quiet period is timed on the monotonic clock: a wall clock set back (NTP, an
    /// operator) must not keep a pool at its peak size for the length of the jump.
    @Test func autoscaleShrinksAfterAQuietPeriodOnTheMonotonicClock() {
        let monotonic = ManualMonotonicClock()
        let pool = Pool(configuration: PoolConfiguration(name: "p", queues: ["p"], concurrency: 2, autoscale: AutoscaleRange(min: 2, max: 12)),
                        registry: HandlerRegistry(), clock: SystemClock(), monotonic: monotonic, idleTimeout: .seconds(60), report: { _ in })
        pool.setConcurrency(8, autoscale: AutoscaleRange(min: 2, max: 12))
        pool.autoscaleStep(waiting: 0, quietPeriod: .seconds(30))
        monotonic.advance(by: .seconds(29))
        pool.autoscaleStep(waiting: 0, quietPeriod: .seconds(30))
        #expect(pool.capacity().target == 8, "not quiet for 30 s yet")
        monotonic.advance(by: .seconds(1))
        pool.autoscaleStep(waiting: 0, quietPeriod: .seconds(30))
        #expect(pool.capacity().target == 2)
        _ = pool.stop()
    }

    /// The grace period of a shutdown is timed on the monotonic clock: here it stands still, so the
    /// drain waits past the grace in real time, and ends once the clock passes it.
    @Test func theGracePeriodIsTimedOnTheMonotonicClock() async throws {
        let (store, dir) = try sqliteStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (registry, started, gate) = stubbornRegistry()
        let monotonic = ManualMonotonicClock()
        var options = fastOptions()
        options.grace = .milliseconds(300)
        _ = try await store.enqueue(EnqueueRequest(kind: "stubborn"))
        let worker = try Worker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 1)],
                                registry: registry, options: options, monotonic: monotonic)
        let ended = Mutex(false)
        let run = Task {
            try await worker.run()
            ended.withLock { $0 = true }
        }
        #expect(await onOwnThread { started.wait() })
        worker.beginShutdown()
        try await Task.sleep(for: .seconds(1))
        #expect(!ended.withLock { $0 }, "the grace ended by the wall clock")
        monotonic.advance(by: .milliseconds(300))
        // Well within the handler's own 20 s bound: the drain does not wait for a blocking run it cannot stop.
        #expect(await eventually(timeout: .seconds(10)) { ended.withLock { $0 } }, "the grace ended on the monotonic clock")
        gate.release()
        try await run.value
    }

    @Test func autoscaleDoesNotGrowForSlotsReservedForAClaim() {
        let pool = Pool(configuration: PoolConfiguration(name: "p", queues: ["p"], concurrency: 2, autoscale: AutoscaleRange(min: 2, max: 12)),
                        registry: HandlerRegistry(), clock: SystemClock(), idleTimeout: .seconds(60), report: { _ in })
        #expect(pool.reserveSlots() == 2)
        pool.autoscaleStep(waiting: 5, quietPeriod: .seconds(30))
        #expect(pool.capacity().target == 2)
        pool.unreserve(2)
        _ = pool.stop()
    }

    @Test func autoscaleGrowsWhileTasksWaitAndShrinksWhenQuiet() async throws {
        let (store, dir) = try sqliteStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        let gate = Gate()
        var registry = HandlerRegistry()
        registry.register("held", .blocking { _ in gate.wait(); return nil })
        var options = fastOptions()
        options.quietPeriod = .milliseconds(300)
        let pools = [PoolConfiguration(name: "default", queues: ["default"], concurrency: 2, autoscale: AutoscaleRange(min: 2, max: 12))]
        try await withWorker(store: store, pools: pools, registry: registry, options: options) { worker in
            let pool = try #require(worker.pool("default"))
            let ids = try await store.enqueue(batch: (0..<30).map { _ in EnqueueRequest(kind: "held") }).map(\.task.id)
            #expect(await eventually { pool.capacity().target == 12 && pool.capacity().busy == 12 })
            gate.release()
            _ = try await finished(store, ids)
            #expect(await eventually { pool.capacity().target == 2 })
        }
    }

    /// The advisor's wait is for a slot: time in a paused queue, which no size of pool would have
    /// shortened, is not counted (the console called a pool paused for 25 s "saturated").
    @Test func timeInAPausedQueueIsNotAWaitForASlot() async throws {
        let clock = ManualClock()
        let (store, dir) = try sqliteStore(clock: clock)
        defer { try? FileManager.default.removeItem(at: dir) }
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 2)],
                             registry: .builtin(), clock: clock) { worker in
            try await store.setQueuePaused("default", true)
            worker.setPausedQueues(["default"])
            let id = try await store.enqueue(EnqueueRequest(kind: "echo")).task.id
            clock.advance(by: .seconds(25))
            try await store.setQueuePaused("default", false)
            worker.setPausedQueues([])
            _ = try await finished(store, [id])
            clock.advance(by: .seconds(1))
            var wait: Double?
            #expect(await eventually {
                wait = try? await worker.capacityWithActivity().first?.activity?.waitP50
                return wait != nil
            })
            #expect(wait.map { $0 < 1 } == true, "waited \(String(describing: wait)) s")
        }
    }
}

/// Where a test keeps its tasks.
@Suite(.timeLimit(.minutes(4))) struct WorkerRoleTests {
    @Test func anOperatorsResizeStoredBeforeTheProcessStartedApplies() async throws {
        let (store, dir) = try sqliteStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.savePoolSetting(PoolSetting(pool: "default", worker: nil, concurrency: 7, autoscale: nil,
                                                    updatedAt: Date().addingTimeInterval(-3600)))
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 2)],
                             registry: .builtin(allowExec: [])) { worker in
            let pool = try #require(worker.pool("default"))
            #expect(await eventually { pool.capacity().target == 7 })
        }
    }

    @Test func aClaimedTaskNotYetStartedIsCancelledOrDroppedByTheHeartbeatsAnswer() async throws {
        let store = MemoryTaskStore()
        let gate = Gate(), started = Gate()
        var registry = HandlerRegistry()
        registry.register("hold", .blocking { _ in started.release(); gate.wait(); return nil })
        let reported = Mutex<[Outcome]>([])
        let pool = Pool(configuration: PoolConfiguration(name: "default", queues: ["default"], concurrency: 1), registry: registry,
                        clock: SystemClock(), idleTimeout: .seconds(60), report: { outcome in reported.withLock { $0.append(outcome) } })
        for _ in 0..<3 { _ = try await store.enqueue(EnqueueRequest(kind: "hold")) }
        let claimed = try await store.claim(queues: ["default"], limit: 3, owner: "w", leaseDuration: .seconds(30))
        // One runs; two wait in the pool, claimed but not started.
        _ = pool.submit(claimed, from: .durable, reserved: 0)
        await onOwnThread { started.wait() }
        #expect(Set(pool.leases(from: .durable).map(\.taskID)) == Set(claimed.map(\.id)))
        // Answers about other leases of the same tasks (an older claim, whose heartbeat answer
        // arrives after the task was claimed again) change nothing, running or waiting.
        func answer(_ task: TaskRecord, _ status: LeaseStatus, stale: Bool = false) -> (TaskID, LeaseAnswer) {
            (task.id, LeaseAnswer(token: task.lease!.token &+ (stale ? 1 : 0), status: status))
        }
        pool.apply(Dictionary(uniqueKeysWithValues: [answer(claimed[0], .lost, stale: true), answer(claimed[1], .cancelRequested, stale: true),
                                                     answer(claimed[2], .lost, stale: true)]), from: .durable, sent: .zero)
        #expect(reported.withLock { $0 }.isEmpty)
        #expect(Set(pool.leases(from: .durable).map(\.taskID)) == Set(claimed.map(\.id)), "an answer about another lease dropped a task")
        pool.apply(Dictionary(uniqueKeysWithValues: [answer(claimed[1], .cancelRequested), answer(claimed[2], .lost)]), from: .durable, sent: .zero)
        // The cancelled one is reported cancelled without running; the lost one is dropped.
        let outcomes = reported.withLock { $0 }
        #expect(outcomes.count == 1)
        if case .fail(let lease, let failure) = outcomes.first?.result {
            #expect(lease.taskID == claimed[1].id && failure.disposition == .cancel)
        } else { Issue.record("expected a cancel outcome, got \(outcomes)") }
        #expect(pool.leases(from: .durable).map(\.taskID) == [claimed[0].id])
        gate.release()
        _ = pool.stop()
        #expect(await onOwnThread { pool.waitUntilIdle(within: .seconds(10)) })
    }

    /// Heartbeats that keep failing (the store unreachable) let leases lapse in the store, where
    /// the rescuer may hand the tasks to another process. A whole lease period after its last
    /// renewal (on the monotonic clock) a run is stopped as lost and a claimed, unstarted task is
    /// dropped, rather than run on beside the other; neither reports an outcome.
    @Test func aLeaseNotRenewedForALeasePeriodStopsItsRun() async throws {
        let store = MemoryTaskStore()
        let monotonic = ManualMonotonicClock()
        let started = Gate()
        let stoppedBy = Mutex<String?>(nil)
        var registry = HandlerRegistry()
        registry.register("hold", .blocking { context in
            started.release()
            try? context.sleep(seconds: 3600)
            stoppedBy.withLock { $0 = context.cancellation.reason }
            return nil
        })
        let reported = Mutex<[Outcome]>([])
        let pool = Pool(configuration: PoolConfiguration(name: "default", queues: ["default"], concurrency: 1), registry: registry,
                        clock: SystemClock(), monotonic: monotonic, idleTimeout: .seconds(60), leaseDuration: .seconds(30),
                        report: { outcome in reported.withLock { $0.append(outcome) } })
        for _ in 0..<2 { _ = try await store.enqueue(EnqueueRequest(kind: "hold", timeout: .seconds(3600))) }
        let claimed = try await store.claim(queues: ["default"], limit: 2, owner: "w", leaseDuration: .seconds(30))
        _ = pool.submit(claimed, from: .durable, reserved: 0)
        await onOwnThread { started.wait() }
        // Renewed at 20 s: held until 50 s, so nothing stops at 45 s, past the first 30.
        monotonic.advance(by: .seconds(20))
        pool.apply(Dictionary(uniqueKeysWithValues: claimed.map { ($0.id, LeaseAnswer(token: $0.lease!.token, status: .held)) }),
                   from: .durable, sent: monotonic.now())
        monotonic.advance(by: .seconds(25))
        pool.checkDeadlines()
        #expect(Set(pool.leases(from: .durable).map(\.taskID)) == Set(claimed.map(\.id)))
        #expect(stoppedBy.withLock { $0 } == nil)
        // No renewal since: at 51 s both leases have lapsed.
        monotonic.advance(by: .seconds(6))
        pool.checkDeadlines()
        #expect(pool.leases(from: .durable).isEmpty)
        #expect(await eventually { stoppedBy.withLock { $0 }?.hasPrefix("lease expired") == true })
        _ = pool.stop()
        #expect(await onOwnThread { pool.waitUntilIdle(within: .seconds(10)) })
        #expect(reported.withLock { $0 }.isEmpty, "a run stopped as lost reports nothing: \(reported.withLock { $0 })")
    }

    /// A heartbeat answered "cancel requested" renewed the lease too: a handler slow to stop keeps
    /// it (and its outcome, which ends the task cancelled) instead of being stopped as lost a lease
    /// period later.
    @Test func aCancelRequestedAnswerRenewsTheLeaseToo() async throws {
        let store = MemoryTaskStore()
        let monotonic = ManualMonotonicClock()
        let (registry, started, gate) = stubbornRegistry()
        let pool = Pool(configuration: PoolConfiguration(name: "default", queues: ["default"], concurrency: 1), registry: registry,
                        clock: SystemClock(), monotonic: monotonic, idleTimeout: .seconds(60), leaseDuration: .seconds(30), report: { _ in })
        _ = try await store.enqueue(EnqueueRequest(kind: "stubborn", timeout: .seconds(3600)))
        let claimed = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: .seconds(30))
        _ = pool.submit(claimed, from: .durable, reserved: 0)
        await onOwnThread { started.wait() }
        monotonic.advance(by: .seconds(20))
        pool.apply([claimed[0].id: LeaseAnswer(token: claimed[0].lease!.token, status: .cancelRequested)], from: .durable, sent: monotonic.now())
        monotonic.advance(by: .seconds(25))
        pool.checkDeadlines()
        #expect(pool.leases(from: .durable).map(\.taskID) == [claimed[0].id], "stopped as lost 45 s in, 25 s after a renewal")
        monotonic.advance(by: .seconds(6))
        pool.checkDeadlines()
        #expect(pool.leases(from: .durable).isEmpty)
        gate.release()
        _ = pool.stop()
        #expect(await onOwnThread { pool.waitUntilIdle(within: .seconds(10)) })
    }

    /// One outcome the store keeps refusing (here a trigger refuses its row) holds back the rest of
    /// its batch for a few tries only: then the batch is written in halves, and the others are
    /// recorded; the refused one is given up after a lease, and its task runs again. Before, the
    /// whole batch was retried for good and none of them was recorded.
    @Test func anOutcomeTheStoreKeepsRefusingDoesNotHoldBackTheRestOfItsBatch() async throws {
        let (store, dir) = try sqliteStore(busyTimeout: .milliseconds(500))
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tasks.db").path
        var options = fastOptions()
        options.leaseDuration = .seconds(3)
        let worker = try Worker(store: store, pools: [PoolConfiguration(name: "default", queues: ["elsewhere"], concurrency: 1)],
                                registry: HandlerRegistry(), options: options)
        _ = try await store.enqueue(batch: (0..<4).map { _ in EnqueueRequest(kind: "k") })
        let claimed = try await store.claim(queues: ["default"], limit: 4, owner: worker.id, leaseDuration: .seconds(3))
        try #require(claimed.count == 4)
        let poison = claimed[1].id
        let admin = try SQLiteConnection(path: path)
        try admin.execute("CREATE TRIGGER poison BEFORE UPDATE ON tasks WHEN NEW.id = '\(poison.rawValue)' AND NEW.state = 'succeeded' BEGIN SELECT RAISE(ABORT, 'poison'); END")
        // In the buffer before the completer starts: its first batch holds all four.
        for task in claimed { worker.outcomes.add(Outcome(source: .durable, result: .complete(task.lease!, "done"), pool: "default")) }
        let run = Task { try await worker.run() }
        let others = claimed.map(\.id).filter { $0 != poison }
        let recorded = try await eventually(timeout: .seconds(15)) {
            for id in others where try await store.require(id).state != .succeeded { return false }
            return true
        }
        #expect(recorded, "the outcomes beside the refused one were never recorded")
        // Given up after a lease of refusals: its lease expires, and the leader (this process) puts
        // the task back in its queue.
        #expect(try await eventually { try await store.require(poison).state == .queued }, "the refused outcome held its task")
        worker.beginShutdown()
        try await run.value
    }

    @Test func aLeaseShorterThanThreeLockWaitsIsRefused() throws {
        let (store, dir) = try sqliteStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        var options = WorkerOptions()
        options.leaseDuration = .seconds(20)  // the store waits up to 10 s for a lock
        let error = #expect(throws: SluiceError.self) {
            try Worker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 1)],
                       registry: .builtin(allowExec: []), options: options)
        }
        #expect(error?.field == "lease" && error?.message.contains("3 ×") == true)
        options.leaseDuration = .seconds(30)
        _ = try Worker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 1)],
                       registry: .builtin(allowExec: []), options: options)
        // Nor may a lease be renewed fewer than three times in its length (a library caller's
        // options; the command line derives the interval from --lease).
        var short = WorkerOptions()
        short.leaseDuration = .seconds(3)
        short.heartbeatInterval = .seconds(2)
        let beat = #expect(throws: SluiceError.self) {
            try Worker(store: MemoryTaskStore(), pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 1)],
                       registry: .builtin(allowExec: []), options: short)
        }
        #expect(beat?.field == "lease" && beat?.message.contains("heartbeat interval") == true)
    }
}

enum StoreChoice: String, CustomStringConvertible, Sendable {
    case sqlite, memory
    var description: String { rawValue }

    func make() throws -> (any Worker.Store, () -> Void) {
        switch self {
        case .memory: return (MemoryTaskStore(), {})
        case .sqlite:
            let (store, dir) = try sqliteStore()
            return (store, { try? FileManager.default.removeItem(at: dir) })
        }
    }
}

/// A finished task keeps its lease until its outcome is written: the outcome buffer hands the
/// heartbeater the leases of outcomes waiting and being written, and forgets each once settled.
@Suite(.timeLimit(.minutes(1))) struct OutcomeBufferTests {
    @Test func outcomesKeepTheirLeasesUntilSettled() async throws {
        let ids = TaskIDGenerator(clock: SystemClock())
        func outcome(_ source: TaskSource) -> Outcome {
            let lease = TaskLease(taskID: ids.next(), owner: "w", attempt: 1, token: TaskLease.newToken(), expiresAt: Date())
            return Outcome(source: source, result: .complete(lease, nil), pool: "default")
        }
        let buffer = OutcomeBuffer()
        let (a, b, c) = (outcome(.durable), outcome(.durable), outcome(.memory))
        buffer.add(a)
        buffer.add(b)
        buffer.add(c)
        #expect(Set(buffer.leases(from: .durable)) == [a.result.lease, b.result.lease], "waiting")
        let batch = try #require(await buffer.next(limit: 2))
        #expect(batch.outcomes.count == 2 && buffer.count == 1)
        #expect(Set(buffer.leases(from: .durable)) == [a.result.lease, b.result.lease], "being written")
        #expect(buffer.leases(from: .memory) == [c.result.lease])
        buffer.settle(batch)
        #expect(buffer.leases(from: .durable).isEmpty, "written")
        #expect(buffer.leases(from: .memory) == [c.result.lease], "still waiting")
    }

    /// Only an add to an empty buffer signals the completer, which wakes at once (its own look
    /// comes only after 10 minutes here; a watchdog closes the buffer after 20 s so that a lost
    /// signal fails the test instead of hanging it); adds to a non-empty one ride along with the
    /// batch it takes next.
    @Test func anAddToAnEmptyBufferWakesTheWaitingCompleter() async throws {
        let ids = TaskIDGenerator(clock: SystemClock())
        func outcome() -> Outcome {
            Outcome(source: .durable, result: .complete(TaskLease(taskID: ids.next(), owner: "w", attempt: 1, token: 1, expiresAt: Date()), nil), pool: "p")
        }
        let buffer = OutcomeBuffer(idleWait: .seconds(600))
        let (a, b) = (outcome(), outcome())
        buffer.add(a)
        buffer.add(b)
        let both = try #require(await buffer.next(limit: 10))
        #expect(both.outcomes.map(\.result.lease) == [a.result.lease, b.result.lease])
        let started = ContinuousClock.now
        let watchdog = Task {
            guard (try? await Task.sleep(for: .seconds(20))) != nil else { return }
            buffer.close()
        }
        defer { watchdog.cancel() }
        let waiting = Task { await buffer.next(limit: 10) }
        try await Task.sleep(for: .milliseconds(50))
        let c = outcome()
        buffer.add(c)
        let woken = try #require(await waiting.value)
        #expect(woken.outcomes.map(\.result.lease) == [c.result.lease])
        #expect(ContinuousClock.now - started < .seconds(15), "woken by the add, not by the watchdog")
        buffer.settle(both)
        buffer.settle(woken)
        buffer.close()
        #expect(await buffer.next(limit: 10) == nil)
    }
}
