import Foundation
import SluiceCore
@testable import SluiceHTTP
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
