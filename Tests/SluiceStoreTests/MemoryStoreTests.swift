import SluiceCore
import SluiceStore
import SluiceTestSupport
import Testing

/// What only the memory store of fire-and-forget tasks does: keep a bounded number of finished tasks.
@Suite struct MemoryStoreTests {
    /// The oldest finished (not the oldest created) are forgotten first, with their idempotency keys,
    /// and never more than an eighth over the limit are kept; the rest still list in id order.
    @Test func finishedTasksAreForgottenOldestFinishedFirstWithinTheBound() async throws {
        let store = MemoryTaskStore(clock: ManualClock(), finishedLimit: 16)
        var ids: [TaskID] = []
        for n in 0..<40 { ids.append(try await store.enqueue(EnqueueRequest(kind: "echo", idempotencyKey: "k\(n)")).task.id) }
        let claimed = try await store.claim(queues: ["default"], limit: 40, owner: "w", leaseDuration: .seconds(30))
        #expect(claimed.map(\.id) == ids)
        // Finished newest first, so the oldest finished are the newest created.
        for task in claimed.reversed() {
            _ = try await store.complete(task.lease!, result: nil)
            let kept = try await store.tasks(ids, onlyFinal: true).count
            #expect(kept <= 16 + 2, "\(kept) finished tasks kept")
        }
        let kept = try await store.tasks(ids)
        #expect((16...18).contains(kept.count))
        #expect(Set(kept.keys) == Set(ids.prefix(kept.count)), "the last finished are kept")
        let page = try await store.list(TaskFilter(), limit: 100, after: nil)
        #expect(page.tasks.map(\.id) == ids.prefix(kept.count).reversed(), "newest first")
        // A forgotten task's key is free again; a kept one's still names its task.
        let again = try await store.enqueue(EnqueueRequest(kind: "echo", idempotencyKey: "k39"))
        #expect(again.created)
        let same = try await store.enqueue(EnqueueRequest(kind: "echo", idempotencyKey: "k0"))
        #expect(!same.created && same.task.id == ids[0])
    }
}
