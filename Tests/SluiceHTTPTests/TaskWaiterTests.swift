import Foundation
import SluiceCore
@testable import SluiceHTTP
import SluicePostgres
import SluiceSQLite
import SluiceStore
import SluiceTestSupport
import Testing

@Suite(.timeLimit(.minutes(1))) struct TaskWaiterTests {
    /// A memory store keeps a bounded number of finished tasks. When one write finishes two tasks
    /// and the second pushes the first out, the first one's waiter must still get its task (it
    /// used to read it back, find nothing, and answer 404 for a task that had just finished).
    @Test func aWaiterGetsItsFinishedTaskEvenWhenTheStoreHasAlreadyForgottenIt() async throws {
        let clock = ManualClock()
        let store = MemoryTaskStore(clock: clock, finishedLimit: 1)
        let first = try await store.enqueue(EnqueueRequest(kind: "echo", maxAttempts: 1)).task.id
        _ = try await store.enqueue(EnqueueRequest(kind: "echo", maxAttempts: 1))
        let claimed = try await store.claim(queues: ["default"], limit: 2, owner: "w1", leaseDuration: .seconds(30))
        #expect(claimed.count == 2)
        let waiter = TaskWaiter(stores: [store])
        async let answer = waiter.wait(for: first, in: store, timeout: .seconds(30))
        #expect(await eventually { waiter.count == 1 })
        // One rescue fails both (each had its only attempt) inside one lock, keeping only the later
        // one, and only then tells anyone that they finished.
        clock.advance(by: .seconds(31))
        let report = try await store.rescueExpiredLeases(limit: 10)
        #expect(report.failed.count == 2)
        #expect(try await store.task(first) == nil)
        let task = try await answer
        #expect(task.id == first && task.state == .failed)
        #expect(waiter.count == 0)
    }
}

/// Waiting on a batch: one request until every task of it is final.
@Suite(.timeLimit(.minutes(1))) struct BatchWaitTests {
    private func claimed(_ store: MemoryTaskStore, _ count: Int) async throws -> [TaskRecord] {
        try await Self.claimed(store, count)
    }

    private static func claimed(_ store: MemoryTaskStore, _ count: Int) async throws -> [TaskRecord] {
        for _ in 0..<count { _ = try await store.enqueue(EnqueueRequest(kind: "echo", maxAttempts: 1)) }
        return try await store.claim(queues: ["default"], limit: count, owner: "w1", leaseDuration: .seconds(30))
    }

    /// Finished in this process: the store's announcements answer the wait, in the order asked
    /// for, whatever order the tasks finished in. The store keeps one finished task only, so reading
    /// it back could not answer: only the announcements can.
    @Test func announcedTasksAnswerInTheOrderAsked() async throws {
        let store = MemoryTaskStore(clock: ManualClock(), finishedLimit: 1)
        let tasks = try await claimed(store, 3)
        let waiter = TaskWaiter(stores: [store])
        async let answer = waiter.wait(for: tasks.map(\.id), in: store, timeout: .seconds(30))
        #expect(await eventually { waiter.count == 1 }, "one request, however many tasks")
        for (index, task) in tasks.enumerated().reversed() { _ = try await store.complete(task.lease!, result: .int(Int64(index))) }
        let done = try await answer
        #expect(done.map(\.id) == tasks.map(\.id))
        #expect(done.map(\.state) == [.succeeded, .succeeded, .succeeded] && done.map(\.result) == [0, 1, 2])
        #expect(waiter.count == 0)
    }

    /// Finished by another process, which announces nothing here: the wait reads the store and
    /// still sees every task, including ones finished out of order.
    @Test func tasksFinishedElsewhereAreSeenByReadingTheStore() async throws {
        let store = MemoryTaskStore(clock: ManualClock())
        let tasks = try await claimed(store, 3)
        let waiter = TaskWaiter(stores: [])
        async let answer = waiter.wait(for: tasks.map(\.id), in: store, timeout: .seconds(30))
        #expect(await eventually { waiter.count == 1 }, "one request, however many tasks")
        _ = try await store.complete(tasks[2].lease!, result: nil)
        _ = try await store.fail(tasks[0].lease!, failure: TaskFailure("no"))
        _ = try await store.complete(tasks[1].lease!, result: nil)
        let done = try await answer
        #expect(done.map(\.id) == tasks.map(\.id) && done.map(\.state) == [.failed, .succeeded, .succeeded])
    }

    /// Not all final within the time: every task as it stands, finished or not.
    @Test func aTimeoutAnswersEveryTaskAsItStands() async throws {
        let store = MemoryTaskStore(clock: ManualClock())
        let tasks = try await claimed(store, 3)
        _ = try await store.complete(tasks[1].lease!, result: nil)
        let waiter = TaskWaiter(stores: [store])
        let answer = try await waiter.wait(for: tasks.map(\.id), in: store, timeout: .milliseconds(50))
        #expect(answer.map(\.id) == tasks.map(\.id) && answer.map(\.state) == [.running, .succeeded, .running])
    }

    /// A task deleted while awaited is an error at the next read, not a wait until the timeout.
    /// (Reads 5 s apart, so that none falls between the fail and the delete.)
    @Test func aTaskDeletedWhileAwaitedIsNotFoundAtTheNextRead() async throws {
        let store = MemoryTaskStore(clock: ManualClock())
        let tasks = try await claimed(store, 2)
        let waiter = TaskWaiter(stores: [], poll: (.seconds(5), .seconds(5)))
        let answer = Task { try await waiter.wait(for: tasks.map(\.id), in: store, timeout: .seconds(20)) }
        #expect(await eventually { waiter.count == 1 })
        let started = ContinuousClock.now
        _ = try await store.fail(tasks[1].lease!, failure: TaskFailure("no"))
        _ = try await store.delete(tasks[1].id)
        let error = await #expect(throws: SluiceError.self) { try await answer.value }
        #expect(error?.code == .notFound)
        #expect(ContinuousClock.now - started < .seconds(10), "at the next read, not at the timeout")
    }

    /// This process's durable store completes tasks in a batch and announces them without their
    /// record (what comes back from the batch's statement is kept small): the waits read them at
    /// once. The batch's failure comes whole in the same notice, so the batch's wait already holds
    /// one of its tasks when it wakes and must still read the other. The requests' own polls are
    /// pushed out past the test's time, so nothing else could answer them.
    @Test(arguments: ["sqlite", "postgres"])
    func tasksCompletedInABatchHereAnswerWithTheirResults(store kind: String) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        if kind == "sqlite" {
            try await batchCompletionsAnswerTheirWaits(try SQLiteTaskStore(SQLiteStoreConfiguration(path: dir.path("batch.db"))))
        } else {
            var configuration = try PostgresStoreConfiguration(url: try postgresDatabase("waiter"))
            // Not listening: the listener's first connect has every wait read its tasks, which
            // would answer them even if the notices were ignored.
            configuration.listen = false
            try await PostgresTaskStore.withStore(configuration) { store in try await batchCompletionsAnswerTheirWaits(store) }
        }
    }

    private func batchCompletionsAnswerTheirWaits(_ store: any TaskStore) async throws {
        for _ in 0..<3 { _ = try await store.enqueue(EnqueueRequest(kind: "echo", maxAttempts: 1)) }
        let tasks = try await store.claim(queues: ["default"], limit: 3, owner: "w1", leaseDuration: .seconds(30))
        #expect(tasks.count == 3)
        let waiter = TaskWaiter(stores: [store], poll: (.seconds(60), .seconds(60)))
        async let batch = waiter.wait(for: [tasks[0].id, tasks[1].id], in: store, timeout: .seconds(20))
        async let single = waiter.wait(for: tasks[2].id, in: store, timeout: .seconds(20))
        #expect(await eventually { waiter.count == 2 })
        let started = ContinuousClock.now
        let recorded = try await store.record([
            .fail(tasks[0].lease!, TaskFailure("zero")), .complete(tasks[1].lease!, "one"), .complete(tasks[2].lease!, "two"),
        ], thenClaim: []).recorded
        #expect(try recorded[0].get().task?.state == .failed)
        #expect(try recorded[1].get().task == nil && recorded[1].get().state == .succeeded, "the batch's completions come back without the whole task")
        let (done, last) = try await (batch, single)
        #expect(done.map(\.state) == [.failed, .succeeded] && done[1].result == "one")
        #expect(last.state == .succeeded && last.result == "two")
        #expect(ContinuousClock.now - started < .seconds(10), "answered by the notices, not by the timeout")
        #expect(waiter.count == 0)
    }

    /// Another process finishes the tasks of a file this server watches: the waits are answered
    /// when its commit is heard, with one read of every awaited task. The requests' own polls are
    /// pushed out past the test's time here, so nothing else could answer them.
    @Test func tasksAnotherProcessFinishesAnswerWhenItsWriteIsHeard() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var configuration = SQLiteStoreConfiguration(path: dir.path("wait.db"))
        configuration.watchOtherProcesses = true
        let server = try SQLiteTaskStore(configuration)
        let worker = try SQLiteTaskStore(SQLiteStoreConfiguration(path: dir.path("wait.db")))
        for _ in 0..<3 { _ = try await server.enqueue(EnqueueRequest(kind: "echo", maxAttempts: 1)) }
        let tasks = try await worker.claim(queues: ["default"], limit: 3, owner: "w1", leaseDuration: .seconds(30))
        #expect(tasks.count == 3)
        let waiter = TaskWaiter(stores: [server], poll: (.seconds(60), .seconds(60)))
        async let batch = waiter.wait(for: [tasks[0].id, tasks[1].id], in: server, timeout: .seconds(20))
        async let single = waiter.wait(for: tasks[2].id, in: server, timeout: .seconds(20))
        #expect(await eventually { waiter.count == 2 })
        let started = ContinuousClock.now
        _ = try await worker.complete(tasks[1].lease!, result: "one")
        _ = try await worker.fail(tasks[0].lease!, failure: TaskFailure("zero"))
        _ = try await worker.complete(tasks[2].lease!, result: "two")
        let (done, last) = try await (batch, single)
        #expect(done.map(\.state) == [.failed, .succeeded] && done[1].result == "one")
        #expect(last.state == .succeeded && last.result == "two")
        #expect(ContinuousClock.now - started < .seconds(10), "answered by the write heard, not by the timeout")
        #expect(waiter.count == 0)
    }
}
