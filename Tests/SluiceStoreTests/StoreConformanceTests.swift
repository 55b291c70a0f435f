import Foundation
import SluiceCore
import SluiceStore
import SluiceTestSupport
import Testing

/// One suite, every store: the in-memory, SQLite and PostgreSQL stores must behave alike.
@Suite(.timeLimit(.minutes(4))) struct StoreConformanceTests {
    let lease = Duration.seconds(30)

    /// Runs `body` with a fresh store of `kind` on a manual clock.
    func withStore(_ kind: StoreKind, unit: Double = 1.0, _ body: (any TaskStore, ManualClock) async throws -> Void) async throws {
        let clock = ManualClock()
        try await SluiceStoreTests.withStore(kind, clock: clock, unit: unit) { store in try await body(store, clock) }
    }

    @Test(arguments: StoreKind.allCases)
    func enqueueAndReadBack(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let result = try await store.enqueue(EnqueueRequest(kind: "echo", queue: "mail", args: ["to": "a@b.c", "n": 2], priority: 5))
            #expect(result.created)
            let task = try await store.require(result.task.id)
            #expect(task == result.task)
            #expect(task.state == .queued)
            #expect(task.args == ["to": "a@b.c", "n": 2])
            #expect(task.attempt == 0 && task.maxAttempts == 3 && task.priority == 5 && task.queue == "mail")
            #expect(task.createdAt == clock.now().storedPrecision)
            let missing = try await store.task(TaskIDGenerator(clock: clock).next())
            #expect(missing == nil)
        }
    }

    /// Many tasks in one read: each one that exists, as it stands, or only the final ones; unknown
    /// ids and repeats are harmless.
    @Test(arguments: StoreKind.allCases)
    func manyTasksAreReadByIdInOneCall(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            var ids: [TaskID] = []
            for n in 0..<3 { ids.append(try await store.enqueue(EnqueueRequest(kind: "echo", args: ["n": .int(Int64(n))])).task.id) }
            let claimed = try await store.claim(queues: ["default"], limit: 1, owner: "w1", leaseDuration: lease)
            let done = try await store.complete(claimed[0].lease!, result: ["ok": true])
            let unknown = TaskIDGenerator(clock: clock).next()
            let found = try await store.tasks([ids[2], unknown, ids[0], ids[1], ids[2]])
            #expect(Set(found.keys) == Set(ids))
            #expect(found[ids[0]] == done && found[ids[0]]?.result == ["ok": true])
            for id in ids[1...] {
                let alone = try await store.require(id)
                #expect(found[id] == alone && alone.state == .queued)
            }
            let none = try await store.tasks([]), onlyUnknown = try await store.tasks([unknown])
            #expect(none.isEmpty && onlyUnknown.isEmpty)
            let final = try await store.tasks(ids + [unknown], onlyFinal: true)
            #expect(final == [ids[0]: done])
        }
    }

    /// A process recorded again under its id takes the new host and pid; its start stays while they do.
    @Test(arguments: StoreKind.allCases)
    func aWorkerRecordedAgainTakesItsNewHostAndPid(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let directory = try #require(store as? any WorkerDirectory)
            func record(_ host: String, _ pid: Int) async throws -> WorkerInfo? {
                try await directory.recordWorker(WorkerInfo(id: "w1", host: host, pid: pid, startedAt: clock.now(), heartbeatAt: clock.now(), pools: []))
                return try await directory.workers(seenWithin: .seconds(60)).first { $0.id == "w1" }
            }
            let first = try await record("h1", 11)
            clock.advance(by: .seconds(5))
            let refreshed = try await record("h1", 11)
            #expect(refreshed?.startedAt == first?.startedAt && refreshed?.heartbeatAt == clock.now().storedPrecision)
            clock.advance(by: .seconds(5))
            let moved = try await record("h2", 22)
            #expect(moved?.host == "h2" && moved?.pid == 22 && moved?.startedAt == clock.now().storedPrecision, "\(String(describing: moved))")
        }
    }

    /// Pool changes are stamped by the store, so a change made through a host whose clock runs an
    /// hour ahead does not outrank the changes made after it (processes apply the newest).
    @Test(arguments: StoreKind.allCases)
    func poolChangesAreStampedByTheStore(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let directory = try #require(store as? any WorkerDirectory)
            try await directory.savePoolSetting(PoolSetting(pool: "p", worker: nil, concurrency: 7, autoscale: nil, updatedAt: clock.now().addingTimeInterval(3600)))
            clock.advance(by: .seconds(1))
            try await directory.savePoolSetting(PoolSetting(pool: "p", worker: "w1", concurrency: 3, autoscale: nil, updatedAt: clock.now()))
            let settings = try await directory.poolSettings()
            #expect(settings.max { $0.updatedAt < $1.updatedAt }?.concurrency == 3, "\(settings)")
            #expect(settings.first { $0.worker == nil }?.updatedAt == clock.now().addingTimeInterval(-1).storedPrecision)
        }
    }

    /// A delay is counted from the store's own time of the enqueue.
    @Test(arguments: StoreKind.allCases)
    func aDelayCountsFromTheStoresClock(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            var request = EnqueueRequest(kind: "echo", runAt: clock.now().addingTimeInterval(3600))
            request.delay = .seconds(10)
            let task = try await store.enqueue(request).task
            #expect(task.state == .scheduled && task.runAt == clock.now().addingTimeInterval(10).storedPrecision, "\(task)")
            var none = EnqueueRequest(kind: "echo")
            none.delay = .zero
            #expect(try await store.enqueue(none).task.state == .queued)
            var negative = EnqueueRequest(kind: "echo")
            negative.delay = .seconds(-1)
            await #expect(throws: SluiceError.self) { try await store.enqueue(negative) }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func invalidRequestsStoreNothing(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            let error = await #expect(throws: SluiceError.self) {
                try await store.enqueue(batch: [EnqueueRequest(kind: "echo"), EnqueueRequest(kind: "echo", priority: 99_999)])
            }
            #expect(error?.field == "priority")
            let counts = try await store.counts()
            #expect(counts.isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func claimOrderIsQueueThenPriorityThenRunAtThenID(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let low = try await store.enqueue(EnqueueRequest(kind: "k", priority: 0)).task
            clock.advance(by: .seconds(1))
            let high1 = try await store.enqueue(EnqueueRequest(kind: "k", priority: 10)).task
            let high2 = try await store.enqueue(EnqueueRequest(kind: "k", priority: 10)).task
            let urgent = try await store.enqueue(EnqueueRequest(kind: "k", queue: "urgent", priority: -5)).task
            let other = try await store.enqueue(EnqueueRequest(kind: "k", queue: "other", priority: 100)).task

            let first = try await store.claim(queues: ["urgent", "default"], limit: 3, owner: "w1", leaseDuration: lease)
            #expect(first.map(\.id) == [urgent.id, high1.id, high2.id])
            #expect(first.allSatisfy { $0.state == .running && $0.attempt == 1 && $0.lease?.owner == "w1" && $0.worker == "w1" })
            #expect(first[0].lease?.expiresAt == clock.now().addingTimeInterval(30).storedPrecision)
            let rest = try await store.claim(queues: ["urgent", "default"], limit: 10, owner: "w1", leaseDuration: lease)
            #expect(rest.map(\.id) == [low.id])
            #expect(try await store.claim(queues: ["default"], limit: 10, owner: "w1", leaseDuration: lease).isEmpty)
            #expect(try await store.require(other.id).state == .queued)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func scheduledTasksWaitForTheirTime(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let later = try await store.enqueue(EnqueueRequest(kind: "k", runAt: clock.now().addingTimeInterval(60))).task
            #expect(later.state == .scheduled)
            #expect(try await store.claim(queues: ["default"], limit: 5, owner: "w", leaseDuration: lease).isEmpty)
            clock.advance(by: .seconds(59))
            #expect(try await store.claim(queues: ["default"], limit: 5, owner: "w", leaseDuration: lease).isEmpty)
            clock.advance(by: .seconds(1))
            let claimed = try await store.claim(queues: ["default"], limit: 5, owner: "w", leaseDuration: lease)
            #expect(claimed.map(\.id) == [later.id])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func completionIsFencedByOwnerAndAttempt(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let id = try await store.enqueue(EnqueueRequest(kind: "k")).task.id
            let oldLease = try await store.claim(queues: ["default"], limit: 1, owner: "w1", leaseDuration: lease)[0].lease!
            clock.advance(by: .seconds(31))
            let report = try await store.rescueExpiredLeases()
            #expect(report.requeued == [id])
            let newLease = try await store.claim(queues: ["default"], limit: 1, owner: "w2", leaseDuration: lease)[0].lease!
            #expect(newLease.attempt == 2)

            let refused = await #expect(throws: SluiceError.self) { try await store.complete(oldLease, result: "late") }
            #expect(refused?.code == .leaseLost)
            let refusedFail = await #expect(throws: SluiceError.self) { try await store.fail(oldLease, failure: TaskFailure("late")) }
            #expect(refusedFail?.code == .leaseLost)
            #expect(try await store.heartbeat([oldLease], leaseDuration: lease) == [id: .lost])

            let done = try await store.complete(newLease, result: ["ok": true])
            #expect(done.state == .succeeded && done.result == ["ok": true] && done.lease == nil)
            #expect(done.finishedAt == clock.now().storedPrecision)
            #expect(done.attemptErrors.map(\.message) == [TaskRecord.leaseExpiredMessage])
            let twice = await #expect(throws: SluiceError.self) { try await store.complete(newLease, result: "again") }
            #expect(twice?.code == .leaseLost)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func heartbeatExtendsTheLease(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let id = try await store.enqueue(EnqueueRequest(kind: "k")).task.id
            let held = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: lease)[0].lease!
            for _ in 0..<5 {
                clock.advance(by: .seconds(20))
                #expect(try await store.heartbeat([held], leaseDuration: lease) == [id: .held])
                #expect(try await store.rescueExpiredLeases().total == 0)
            }
            #expect(try await store.require(id).lease?.expiresAt == clock.now().addingTimeInterval(30).storedPrecision)
            clock.advance(by: .seconds(31))
            #expect(try await store.rescueExpiredLeases().requeued == [id])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func failuresRetryWithBackoffThenFail(kind: StoreKind) async throws {
        try await withStore(kind, unit: 1.0) { store, clock in
            let policy = RetryPolicy(base: .seconds(2), cap: .seconds(5))
            let id = try await store.enqueue(EnqueueRequest(kind: "k", maxAttempts: 3, retryPolicy: policy)).task.id
            for (attempt, ceiling) in [(1, 2.0), (2, 4.0)] {
                let leased = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: lease)[0]
                #expect(leased.id == id && leased.attempt == attempt)
                let failed = try await store.fail(leased.lease!, failure: TaskFailure("boom \(attempt)"))
                #expect(failed.state == .retrying)
                #expect(failed.runAt == clock.now().addingTimeInterval(ceiling).storedPrecision)
                // Not before its backoff ends.
                clock.advance(by: .milliseconds(Int64(ceiling * 1000) - 1))
                #expect(try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: lease).isEmpty)
                clock.advance(by: .milliseconds(1))
            }
            let last = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: lease)[0]
            let failed = try await store.fail(last.lease!, failure: TaskFailure("boom 3"))
            #expect(failed.state == .failed && failed.error == "boom 3" && failed.attempt == 3)
            #expect(failed.attemptErrors.map(\.message) == ["boom 1", "boom 2", "boom 3"])
            #expect(failed.attemptErrors.map(\.attempt) == [1, 2, 3])
            #expect(failed.finishedAt == clock.now().storedPrecision)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func jitterIsDrawnWithinTheCeiling(kind: StoreKind) async throws {
        try await withStore(kind, unit: 0.25) { store, clock in
            let id = try await store.enqueue(EnqueueRequest(kind: "k", retryPolicy: RetryPolicy(base: .seconds(8), cap: .seconds(60)))).task.id
            let leased = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: lease)[0]
            let failed = try await store.fail(leased.lease!, failure: TaskFailure("x"))
            #expect(failed.runAt == clock.now().addingTimeInterval(2).storedPrecision)
            #expect(failed.id == id)
        }
    }

    /// How long until a delayed task or a retry of the queues asked falls due, by the store's clock
    /// and within the horizon asked: what a fetcher that polls once a second wakes for.
    @Test(arguments: StoreKind.allCases)
    func theNextDueTaskOfTheQueuesIsTold(kind: StoreKind) async throws {
        try await withStore(kind, unit: 1.0) { store, clock in
            // Times are kept to the microsecond.
            func due(_ queues: [String], within horizon: Double = 60) async throws -> Double? {
                try await store.nextDue(in: queues, within: .seconds(horizon)).map { ($0.seconds * 1e5).rounded() / 1e5 }
            }
            #expect(try await due(["mail"]) == nil)
            for (queue, delay) in [("video", 2.0), ("mail", 10.0), ("mail", 30.0)] {
                _ = try await store.enqueue(EnqueueRequest(kind: "k", queue: queue, runAt: clock.now().addingTimeInterval(delay)))
            }
            #expect(try await due(["mail"]) == 10)
            #expect(try await due(["mail", "video"]) == 2)
            #expect(try await due(["mail"], within: 5) == nil)
            #expect(try await due(["photos"]) == nil)
            // Due and not yet staged: now, never a time past.
            clock.advance(by: .seconds(11))
            #expect(try await due(["mail"]) == 0)
            let claimed = try await store.claim(queues: ["mail"], limit: 5, owner: "w", leaseDuration: lease)
            #expect(claimed.count == 1)
            #expect(try await due(["mail"]) == 19)
            // A retry falls due after its backoff.
            let failed = try await store.fail(claimed[0].lease!, failure: TaskFailure("boom"))
            #expect(failed.state == .retrying)
            #expect(try await due(["mail"]) == (failed.runAt.timeIntervalSince(clock.now()) * 1e5).rounded() / 1e5)
        }
    }

    /// The SQL stores look at a bounded number of the tasks due soonest: when none of those is in
    /// the queues asked, the answer is the last one looked at (early, so the fetcher asks again), not none.
    @Test func aBoundedLookAnswersEarlyNeverLate() {
        let others = (1...NextDue.lookLimit).map { (queue: "video", dueIn: Double($0) / 100) }
        #expect(NextDue.answer(others, in: ["mail"]) == .seconds(1))
        #expect(NextDue.answer(Array(others.dropLast()), in: ["mail"]) == nil)
        #expect(NextDue.answer([("video", 0.5), ("mail", 0.7)], in: ["mail"]) == .seconds(0.7))
        #expect(NextDue.answer([("mail", -0.2)], in: ["mail"]) == .zero)
        // A millisecond past a future time; a task due already (one a claim did not stage: a
        // paused queue, say) is looked at again in 10 ms, not in a loop.
        #expect(NextDue.wake(forDue: .seconds(1)) == .milliseconds(1001))
        #expect(NextDue.wake(forDue: .zero) == .milliseconds(10))
    }

    @Test(arguments: StoreKind.allCases)
    func handlerDispositions(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            for _ in 0..<3 { _ = try await store.enqueue(EnqueueRequest(kind: "k", maxAttempts: 5)) }
            let tasks = try await store.claim(queues: ["default"], limit: 3, owner: "w", leaseDuration: lease)
            let later = try await store.fail(tasks[0].lease!, failure: TaskFailure("busy", disposition: .retryAfter(.seconds(42))))
            #expect(later.state == .retrying && later.runAt == clock.now().addingTimeInterval(42).storedPrecision)
            let discarded = try await store.fail(tasks[1].lease!, failure: TaskFailure("bad input", disposition: .discard))
            #expect(discarded.state == .failed && discarded.attempt == 1)
            let cancelled = try await store.fail(tasks[2].lease!, failure: TaskFailure("stop", disposition: .cancel))
            #expect(cancelled.state == .cancelled && cancelled.error == "stop")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func cancelInEveryState(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            // scheduled
            let scheduled = try await store.enqueue(EnqueueRequest(kind: "k", runAt: clock.now().addingTimeInterval(100))).task
            #expect(try await store.cancel(scheduled.id).state == .cancelled)
            // queued
            let queued = try await store.enqueue(EnqueueRequest(kind: "k", queue: "q")).task
            #expect(try await store.cancel(queued.id).state == .cancelled)
            #expect(try await store.claim(queues: ["q"], limit: 5, owner: "w", leaseDuration: lease).isEmpty)
            // running: flagged, seen at the next heartbeat, ends cancelled when the worker reports
            let running = try await store.enqueue(EnqueueRequest(kind: "k", queue: "r")).task
            let held = try await store.claim(queues: ["r"], limit: 1, owner: "w", leaseDuration: lease)[0].lease!
            let flagged = try await store.cancel(running.id)
            #expect(flagged.state == .running && flagged.cancelRequested)
            #expect(try await store.heartbeat([held], leaseDuration: lease) == [running.id: .cancelRequested])
            let stopped = try await store.fail(held, failure: TaskFailure("cancelled by request"))
            #expect(stopped.state == .cancelled)
            // retrying
            let retrying = try await store.enqueue(EnqueueRequest(kind: "k", queue: "t")).task
            let held2 = try await store.claim(queues: ["t"], limit: 1, owner: "w", leaseDuration: lease)[0].lease!
            #expect(try await store.fail(held2, failure: TaskFailure("x")).state == .retrying)
            #expect(try await store.cancel(retrying.id).state == .cancelled)
            // cancelled again: no error, no change
            #expect(try await store.cancel(retrying.id).state == .cancelled)
            // succeeded and failed: refused
            let done = try await store.enqueue(EnqueueRequest(kind: "k", queue: "s")).task
            let held3 = try await store.claim(queues: ["s"], limit: 1, owner: "w", leaseDuration: lease)[0].lease!
            _ = try await store.complete(held3, result: nil)
            let refused = await #expect(throws: SluiceError.self) { try await store.cancel(done.id) }
            #expect(refused?.code == .invalidTransition)
            let failed = try await store.enqueue(EnqueueRequest(kind: "k", queue: "f", maxAttempts: 1)).task
            let held4 = try await store.claim(queues: ["f"], limit: 1, owner: "w", leaseDuration: lease)[0].lease!
            _ = try await store.fail(held4, failure: TaskFailure("x"))
            let refused2 = await #expect(throws: SluiceError.self) { try await store.cancel(failed.id) }
            #expect(refused2?.code == .invalidTransition)
            // unknown
            let unknown = await #expect(throws: SluiceError.self) { try await store.cancel(TaskIDGenerator(clock: clock).next()) }
            #expect(unknown?.code == .notFound)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func expiredLeaseOfACancelledTaskEndsCancelled(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let id = try await store.enqueue(EnqueueRequest(kind: "k")).task.id
            _ = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: lease)
            _ = try await store.cancel(id)
            clock.advance(by: .seconds(31))
            #expect(try await store.rescueExpiredLeases().cancelled == [id])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aTaskThatKeepsLosingItsWorkerEndsFailed(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let id = try await store.enqueue(EnqueueRequest(kind: "k", maxAttempts: 2)).task.id
            for round in 1...2 {
                #expect(try await store.claim(queues: ["default"], limit: 1, owner: "w\(round)", leaseDuration: lease).count == 1)
                clock.advance(by: .seconds(31))
                let report = try await store.rescueExpiredLeases()
                #expect(round == 1 ? report.requeued == [id] : report.failed == [id])
            }
            let task = try await store.require(id)
            #expect(task.state == .failed && task.attempt == 2 && task.attemptErrors.count == 2)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func retryByHand(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            let id = try await store.enqueue(EnqueueRequest(kind: "k", maxAttempts: 1)).task.id
            let refused = await #expect(throws: SluiceError.self) { try await store.retry(id) }
            #expect(refused?.code == .invalidTransition)
            let held = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: lease)[0].lease!
            _ = try await store.fail(held, failure: TaskFailure("x"))
            let again = try await store.retry(id)
            #expect(again.state == .queued && again.maxAttempts == 2 && again.error == nil && again.finishedAt == nil)
            #expect(again.attemptErrors.count == 1)
            let second = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: lease)[0]
            #expect(second.attempt == 2)
            _ = try await store.complete(second.lease!, result: 1)
            let done = await #expect(throws: SluiceError.self) { try await store.retry(id) }
            #expect(done?.code == .invalidTransition)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func releaseHandsUnstartedClaimsBack(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            for _ in 0..<3 { _ = try await store.enqueue(EnqueueRequest(kind: "k")) }
            let claimed = try await store.claim(queues: ["default"], limit: 3, owner: "w", leaseDuration: lease)
            try await store.release(claimed.map { $0.lease! })
            let again = try await store.claim(queues: ["default"], limit: 3, owner: "w2", leaseDuration: lease)
            #expect(Set(again.map(\.id)) == Set(claimed.map(\.id)))
            #expect(again.allSatisfy { $0.attempt == 1 })
        }
    }

    @Test(arguments: StoreKind.allCases)
    func idempotencyKeys(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let first = try await store.enqueue(EnqueueRequest(kind: "k", idempotencyKey: "order-7"))
            let second = try await store.enqueue(EnqueueRequest(kind: "k", idempotencyKey: "order-7"))
            #expect(first.created && !second.created && second.task.id == first.task.id && second.task.kind == "k")
            // The same key for other work is refused, naming the field; a batch holding it stores nothing.
            for other in [EnqueueRequest(kind: "other", idempotencyKey: "order-7"), EnqueueRequest(kind: "k", args: ["n": 1], idempotencyKey: "order-7")] {
                let error = await #expect(throws: SluiceError.self) {
                    try await store.enqueue(batch: [EnqueueRequest(kind: "k", queue: "fresh"), other])
                }
                #expect(error?.code == .idempotencyConflict && error?.field == "idempotency_key")
            }
            #expect(try await store.counts().contains { $0.queue == "fresh" } == false)
            // Two requests of one batch with the same key and different args: refused, nothing stored.
            let inBatch = await #expect(throws: SluiceError.self) {
                try await store.enqueue(batch: [EnqueueRequest(kind: "k", queue: "twins", args: ["n": 1], idempotencyKey: "t"),
                                                EnqueueRequest(kind: "k", queue: "twins", args: ["n": 2], idempotencyKey: "t")])
            }
            #expect(inBatch?.code == .idempotencyConflict)
            #expect(try await store.counts().contains { $0.queue == "twins" } == false)
            let otherQueue = try await store.enqueue(EnqueueRequest(kind: "k", queue: "q2", idempotencyKey: "order-7"))
            #expect(otherQueue.created)
            // Within one batch too.
            let batch = try await store.enqueue(batch: [EnqueueRequest(kind: "k", idempotencyKey: "b"), EnqueueRequest(kind: "k", idempotencyKey: "b")])
            #expect(batch[0].created && !batch[1].created && batch[0].task.id == batch[1].task.id)
            // A true replay of args PostgreSQL's jsonb reads back as another kind of number
            // (1e16 as 10000000000000000) is still the same task, not a conflict.
            let big = EnqueueRequest(kind: "k", queue: "big", args: ["n": .double(1e16), "list": [.double(2e20)]], idempotencyKey: "big")
            let bigFirst = try await store.enqueue(big)
            let bigAgain = try await store.enqueue(big)
            #expect(bigFirst.created && !bigAgain.created && bigAgain.task.id == bigFirst.task.id)
            // Once the task is pruned, the key is free again.
            let held = try await store.claim(queues: ["default"], limit: 10, owner: "w", leaseDuration: lease)
            for task in held { _ = try await store.complete(task.lease!, result: nil) }
            clock.advance(by: .seconds(3601))
            #expect(try await store.prune(finishedBefore: .seconds(3600)) == 2)
            #expect(try await store.enqueue(EnqueueRequest(kind: "k", idempotencyKey: "order-7")).created)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func pruneDeletesOnlyOldFinishedTasks(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            for _ in 0..<4 { _ = try await store.enqueue(EnqueueRequest(kind: "k")) }
            let held = try await store.claim(queues: ["default"], limit: 2, owner: "w", leaseDuration: lease)
            _ = try await store.complete(held[0].lease!, result: nil)
            clock.advance(by: .seconds(100))
            _ = try await store.complete(held[1].lease!, result: nil)
            clock.advance(by: .seconds(50))
            #expect(try await store.prune(finishedBefore: .seconds(120)) == 1)
            #expect(try await store.task(held[0].id) == nil)
            #expect(try await store.task(held[1].id) != nil)
            #expect(try await store.counts() == [QueueCounts(queue: "default", counts: [.queued: 2, .succeeded: 1])])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func countsByQueueAndState(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            _ = try await store.enqueue(batch: [EnqueueRequest(kind: "k", queue: "a"), EnqueueRequest(kind: "k", queue: "a"),
                                                EnqueueRequest(kind: "k", queue: "b", runAt: clock.now().addingTimeInterval(9))])
            _ = try await store.claim(queues: ["a"], limit: 1, owner: "w", leaseDuration: lease)
            #expect(try await store.counts() == [
                QueueCounts(queue: "a", counts: [.queued: 1, .running: 1]),
                QueueCounts(queue: "b", counts: [.scheduled: 1]),
            ])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func listFiltersAndPagesNewestFirst(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            var ids: [TaskID] = []
            for i in 0..<25 {
                ids.append(try await store.enqueue(EnqueueRequest(kind: i % 2 == 0 ? "even" : "odd", queue: i < 10 ? "a" : "b")).task.id)
                clock.advance(by: .milliseconds(1))
            }
            var seen: [TaskID] = []
            var cursor: TaskID?
            repeat {
                let page = try await store.list(TaskFilter(), limit: 10, after: cursor)
                #expect(page.tasks.count <= 10)
                seen += page.tasks.map(\.id)
                cursor = page.nextCursor
            } while cursor != nil
            #expect(seen == ids.reversed())

            let evensInB = try await store.list(TaskFilter(queue: "b", kind: "even"), limit: 100, after: nil)
            #expect(evensInB.tasks.map(\.id) == ids.enumerated().filter { $0.offset >= 10 && $0.offset % 2 == 0 }.map(\.element).reversed())
            #expect(evensInB.nextCursor == nil)
            _ = try await store.claim(queues: ["a"], limit: 3, owner: "w", leaseDuration: lease)
            let running = try await store.list(TaskFilter(states: [.running]), limit: 100, after: nil)
            #expect(running.tasks.map(\.id) == Array(ids.prefix(3).reversed()))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func clockJumpsAheadAndBack(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let delayed = try await store.enqueue(EnqueueRequest(kind: "k", runAt: clock.now().addingTimeInterval(600))).task.id
            let now = try await store.enqueue(EnqueueRequest(kind: "k")).task.id
            let held = try await store.claim(queues: ["default"], limit: 5, owner: "w", leaseDuration: lease)
            #expect(held.map(\.id) == [now])
            // Back a minute: the lease does not expire, nothing is staged early.
            clock.advance(by: .seconds(-60))
            #expect(try await store.rescueExpiredLeases().total == 0)
            #expect(try await store.heartbeat([held[0].lease!], leaseDuration: lease) == [now: .held])
            // Ahead an hour: the lease expires and the delayed task becomes due.
            clock.advance(by: .seconds(3600))
            #expect(try await store.rescueExpiredLeases().requeued == [now])
            let next = try await store.claim(queues: ["default"], limit: 5, owner: "w", leaseDuration: lease)
            #expect(Set(next.map(\.id)) == [now, delayed])
        }
    }

    // MARK: - Core roles: counters, complete-and-claim, fences, leadership

    /// Counts by queue and state as the tasks themselves say (every page of the list).
    func countsFromTasks(_ store: any TaskStore) async throws -> [String: [TaskState: Int]] {
        var counts: [String: [TaskState: Int]] = [:]
        var cursor: TaskID?
        repeat {
            let page = try await store.list(TaskFilter(), limit: 1000, after: cursor)
            for task in page.tasks { counts[task.queue, default: [:]][task.state, default: 0] += 1 }
            cursor = page.nextCursor
        } while cursor != nil
        return counts
    }

    func countsFromStore(_ store: any TaskStore) async throws -> [String: [TaskState: Int]] {
        Dictionary(uniqueKeysWithValues: try await store.counts().map { ($0.queue, $0.counts.filter { $0.value != 0 }) })
            .filter { !$0.value.isEmpty }
    }

    @Test(arguments: StoreKind.allCases)
    func countsFollowEveryMove(kind: StoreKind) async throws {
        try await withStore(kind, unit: 0.5) { store, clock in
            for i in 0..<30 {
                _ = try await store.enqueue(EnqueueRequest(kind: "k", queue: i % 3 == 0 ? "mail" : "default",
                                                           runAt: i % 5 == 0 ? clock.now().addingTimeInterval(10) : nil))
            }
            var claimed = try await store.claim(queues: ["default", "mail"], limit: 12, owner: "w", leaseDuration: lease)
            let outcomes: [TaskOutcome] = claimed.prefix(8).enumerated().map { i, task in
                i % 2 == 0 ? .complete(task.lease!, ["i": .int(Int64(i))]) : .fail(task.lease!, TaskFailure("boom", disposition: i == 3 ? .discard : .retry))
            }
            let result = try await store.record(outcomes, thenClaim: [ClaimRequest(queues: ["mail"], limit: 3, owner: "w", leaseDuration: lease)])
            #expect(result.recorded.allSatisfy { (try? $0.get()) != nil })
            claimed += result.claimed[0]
            _ = try await store.cancel(claimed[9].id)
            _ = try await store.release([claimed[10].lease!])
            clock.advance(by: .seconds(31))
            _ = try await store.rescueExpiredLeases()
            _ = try await store.stageDue(limit: 100)
            let failed = try await store.list(TaskFilter(states: [.failed]), limit: 10, after: nil).tasks
            for task in failed { _ = try await store.retry(task.id) }
            let finished = try await store.claim(queues: ["default", "mail"], limit: 5, owner: "w2", leaseDuration: lease)
            for task in finished { _ = try await store.complete(task.lease!, result: nil) }
            clock.advance(by: .seconds(3600))
            _ = try await store.prune(finishedBefore: .seconds(60), limit: 3)
            #expect(try await countsFromStore(store) == countsFromTasks(store))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aCancelRequestedWhileRunningWinsOverSuccess(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            let id = try await store.enqueue(EnqueueRequest(kind: "k")).task.id
            let task = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: lease)[0]
            _ = try await store.cancel(id)
            let done = try await store.complete(task.lease!, result: ["kept": true])
            #expect(done.state == .cancelled)
            #expect(done.result == ["kept": true])
            #expect(done.error == TaskRecord.cancelledWhileRunningMessage)
            #expect(try await store.require(id).state == .cancelled)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aReleasedClaimsLeaseCannotWriteOverTheNextClaim(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            _ = try await store.enqueue(EnqueueRequest(kind: "k"))
            let first = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: lease)[0]
            try await store.release([first.lease!])
            let second = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: lease)[0]
            // Same owner, same attempt number: only the token tells the two claims apart.
            #expect(second.attempt == first.attempt && second.lease!.token != first.lease!.token)
            let error = await #expect(throws: SluiceError.self) { try await store.complete(first.lease!, result: nil) }
            #expect(error?.code == .leaseLost)
            #expect(try await store.heartbeat([first.lease!], leaseDuration: lease)[first.id] == .lost)
            #expect(try await store.heartbeat([second.lease!], leaseDuration: lease)[first.id] == .held)
            let recorded = try await store.record([.complete(first.lease!, nil), .complete(second.lease!, "ok")], thenClaim: [])
            #expect((try? recorded.recorded[0].get()) == nil)
            #expect(try recorded.recorded[1].get().state == .succeeded)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func eachCompletionInABatchGetsItsOwnAnswerAndResult(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            // A kind each, so that an answer matched to the wrong outcome shows.
            for n in 0..<5 { _ = try await store.enqueue(EnqueueRequest(kind: "k\(n)")) }
            let tasks = try await store.claim(queues: ["default"], limit: 4, owner: "w", leaseDuration: lease)
            _ = try await store.cancel(tasks[1].id)
            let stale = tasks[2].lease!
            try await store.release([stale])
            let fresh = try await store.claim(queues: ["default"], limit: 5, owner: "w", leaseDuration: lease)
            // The stale lease's task, claimed again, and the fifth task.
            let again = try #require(fresh.first { $0.id == tasks[2].id })
            let other = try #require(fresh.first { $0.id != tasks[2].id })
            // Text that needs escaping on every layer, a number past a double's precision, a
            // double that must stay one.
            let awkward: JSONValue = ["quote": "a\"b\\c\n\u{1}é😀", "big": .int(9_007_199_254_740_993), "whole": .double(3)]
            let outcomes: [TaskOutcome] = [
                .complete(tasks[0].lease!, awkward), .complete(tasks[1].lease!, "late"), .complete(stale, "stale"),
                .complete(tasks[3].lease!, nil), .complete(other.lease!, [1, 2]),
            ]
            let recorded = try await store.record(outcomes, thenClaim: []).recorded
            #expect(try recorded[0].get().state == .succeeded && recorded[0].get().id == tasks[0].id)
            #expect(try recorded[1].get().state == .cancelled)
            #expect((try? recorded[2].get()) == nil)
            #expect(try recorded[3].get().state == .succeeded && recorded[3].get().id == tasks[3].id)
            #expect(try recorded[4].get().state == .succeeded && recorded[4].get().id == other.id)
            // What a notice needs, whether or not the store returned the whole task; the whole
            // task, where it came back, as stored.
            let kinds = Dictionary((tasks + fresh).map { ($0.id, $0.kind) }, uniquingKeysWith: { first, _ in first })
            for (outcome, answer) in zip(outcomes, recorded) {
                guard let answer = try? answer.get() else { continue }
                #expect(answer.id == outcome.lease.taskID && answer.queue == "default" && answer.kind == kinds[answer.id])
                if let whole = answer.task {
                    #expect(whole.id == answer.id && whole.state == answer.state && whole.kind == answer.kind)
                    #expect(try await whole.result == store.require(answer.id).result)
                }
            }
            #expect(try await store.require(tasks[0].id).result == awkward)
            #expect(try await store.require(tasks[3].id).result == .null)
            #expect(try await store.require(tasks[1].id).state == .cancelled)
            #expect(try await store.require(again.id).state == .running)
            #expect(try await store.require(other.id).result == [1, 2])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func completeAndClaimInOneCall(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            for _ in 0..<5 { _ = try await store.enqueue(EnqueueRequest(kind: "k")) }
            let first = try await store.claim(queues: ["default"], limit: 2, owner: "w", leaseDuration: lease)
            let result = try await store.record(first.map { .complete($0.lease!, "done") },
                                                thenClaim: [ClaimRequest(queues: ["default"], limit: 2, owner: "w", leaseDuration: lease)])
            #expect(try result.recorded.map { try $0.get().state } == [.succeeded, .succeeded])
            #expect(result.claimed.count == 1 && result.claimed[0].count == 2)
            #expect(result.claimed[0].allSatisfy { $0.state == .running && $0.lease?.owner == "w" })
            #expect(Set(result.claimed[0].map(\.id)).isDisjoint(with: first.map(\.id)))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func maintenanceVerbsAreCappedPerCall(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            for _ in 0..<7 { _ = try await store.enqueue(EnqueueRequest(kind: "k", runAt: clock.now().addingTimeInterval(5))) }
            clock.advance(by: .seconds(5))
            #expect(try await store.stageDue(limit: 3) == 3)
            #expect(try await store.stageDue(limit: 100) == 4)
            let held = try await store.claim(queues: ["default"], limit: 7, owner: "w", leaseDuration: lease)
            clock.advance(by: .seconds(31))
            #expect(try await store.rescueExpiredLeases(limit: 4).total == 4)
            #expect(try await store.rescueExpiredLeases(limit: 4).total == 3)
            let again = try await store.claim(queues: ["default"], limit: 7, owner: "w", leaseDuration: lease)
            #expect(again.count == held.count)
            for task in again { _ = try await store.complete(task.lease!, result: nil) }
            clock.advance(by: .seconds(120))
            #expect(try await store.prune(finishedBefore: .seconds(60), limit: 5) == 5)
            #expect(try await store.prune(finishedBefore: .seconds(60), limit: 5) == 2)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func leadershipIsHeldByOneOwnerUntilItExpiresOrIsGivenUp(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            guard let directory = store as? any WorkerDirectory else { Issue.record("\(kind) is not a WorkerDirectory"); return }
            #expect(try await directory.leader("maintenance") == nil)
            #expect(try await directory.acquireLeadership("maintenance", owner: "a", for: .seconds(15)))
            #expect(try await directory.acquireLeadership("maintenance", owner: "b", for: .seconds(15)) == false)
            clock.advance(by: .seconds(10))
            // A renewal pushes the expiry out; b still cannot take it.
            #expect(try await directory.acquireLeadership("maintenance", owner: "a", for: .seconds(15)))
            clock.advance(by: .seconds(10))
            #expect(try await directory.acquireLeadership("maintenance", owner: "b", for: .seconds(15)) == false)
            #expect(try await directory.leader("maintenance")?.owner == "a")
            // a dies: after its lease, b takes over, and a cannot take it back.
            clock.advance(by: .seconds(6))
            #expect(try await directory.leader("maintenance") == nil)
            #expect(try await directory.acquireLeadership("maintenance", owner: "b", for: .seconds(15)))
            #expect(try await directory.acquireLeadership("maintenance", owner: "a", for: .seconds(15)) == false)
            // Another role is another lease.
            #expect(try await directory.acquireLeadership("scheduler", owner: "a", for: .seconds(15)))
            // Resigning frees it at once; resigning what one does not hold changes nothing.
            try await directory.resignLeadership("maintenance", owner: "a")
            #expect(try await directory.leader("maintenance")?.owner == "b")
            try await directory.resignLeadership("maintenance", owner: "b")
            #expect(try await directory.acquireLeadership("maintenance", owner: "a", for: .seconds(15)))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func argsAndResultsComeBackAsTheyWereGiven(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            let args: JSONValue = ["whole": 3.0, "int": 3, "big": .int(Int64.max), "neg": -0.5, "flag": true, "zero": 0,
                                   "list": [1, 1.0, false, nil, "1"], "nested": ["e": 0.25]]
            let id = try await store.enqueue(EnqueueRequest(kind: "k", args: args)).task.id
            #expect(try await store.require(id).args == args)
            let task = try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: lease)[0]
            #expect(task.args == args)
            let done = try await store.complete(task.lease!, result: ["ratio": 2.0, "n": 2])
            #expect(done.result == ["ratio": 2.0, "n": 2])
            #expect(try await store.require(id).result == ["ratio": 2.0, "n": 2])
        }
    }
}
