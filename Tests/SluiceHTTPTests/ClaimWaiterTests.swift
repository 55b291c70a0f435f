import Foundation
import SluiceCore
@testable import SluiceHTTP
import SluiceStore
import Testing

@Suite(.timeLimit(.minutes(1))) struct ClaimWaiterTests {
    /// A remote worker's long poll on a queue whose next task is delayed: no enqueue announces
    /// that it falls due, so the waiter asks the store when it does and claims then, instead of at
    /// its next poll (here 30 s away, past the claim's own 10 s).
    @Test func aWaitingClaimWakesWhenADelayedTaskFallsDue() async throws {
        let store = MemoryTaskStore()
        let waiter = ClaimWaiter(store: store, pollInterval: .seconds(30))
        let id = try await store.enqueue(EnqueueRequest(kind: "k", runAt: Date().addingTimeInterval(0.3))).task.id
        let started = ContinuousClock.now
        let claimed = try await waiter.wait(on: ["default"], timeout: .seconds(10),
                                            nextDue: { try await store.nextDue(in: ["default"], within: $0) }) {
            try await store.claim(queues: ["default"], limit: 1, owner: "w", leaseDuration: .seconds(30))
        }
        #expect(claimed.map(\.id) == [id])
        #expect(ContinuousClock.now - started < .seconds(5))
    }
}
