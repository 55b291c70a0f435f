import Foundation
import SluiceCore
import SluiceStore
import SluiceTestSupport
import Testing

/// What only the memory store of fire-and-forget tasks does: keep a bounded number of finished tasks.
@Suite struct MemoryStoreTests {
    /// A result that no store could keep (a NUL, or nesting past the readers' depth) fails its task
    /// without retry, whatever the store: a retry would return it again.
    @Test func aResultThatCannotBeStoredFailsWithoutRetry() {
        let lease = TaskLease(taskID: TaskID.lowerBound(at: Date()), owner: "w", attempt: 1, token: 1, expiresAt: Date())
        var deep: JSONValue = 1
        for _ in 0...JSONValue.maxNesting { deep = .array([deep]) }  // one level too many
        for result in [deep, JSONValue.string("a\u{0}b")] {
            guard case .fail(_, let failure) = TaskOutcome.completed(lease, result) else {
                Issue.record("stored \(result)")
                continue
            }
            #expect(failure.disposition == .discard)
        }
        if case .fail = TaskOutcome.completed(lease, ["ok": [[1]]]) { Issue.record("a plain result failed") }
    }

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

    /// The counts are kept as tasks move rather than counted at each read: after every kind of move,
    /// forgetting included, they equal a count of the tasks the store lists.
    @Test func keptCountsMatchARecountAfterEveryMoveForgettingIncluded() async throws {
        let clock = ManualClock()
        let store = MemoryTaskStore(clock: clock, finishedLimit: 8, unitRandom: { 0.5 })
        func recount() async throws -> [QueueCounts] {
            var byQueue: [String: [TaskState: Int]] = [:]
            for task in try await store.list(TaskFilter(), limit: 10_000, after: nil).tasks { byQueue[task.queue, default: [:]][task.state, default: 0] += 1 }
            return byQueue.keys.sorted().map { QueueCounts(queue: $0, counts: byQueue[$0]!) }
        }
        func check(_ step: String) async throws {
            let counts = try await store.counts()
            #expect(counts == (try await recount()), "after \(step): \(counts)")
        }
        var ids: [TaskID] = []
        for n in 0..<30 {
            ids.append(try await store.enqueue(EnqueueRequest(kind: "k", queue: ["a", "b"][n % 2], runAt: n % 5 == 0 ? clock.now().addingTimeInterval(60) : nil)).task.id)
        }
        try await check("enqueues")
        let claimed = try await store.claim(queues: ["a", "b"], limit: 14, owner: "w", leaseDuration: .seconds(30))
        try await check("claims")
        for task in claimed.prefix(4) { _ = try await store.complete(task.lease!, result: nil) }
        for (task, disposition) in zip(claimed[4..<10], [TaskFailure.Disposition.retry, .discard, .cancel, .retryAfter(.seconds(5)), .retry, .discard]) {
            _ = try await store.fail(task.lease!, failure: TaskFailure("no", disposition: disposition))
        }
        try await check("outcomes")
        _ = try await store.cancel(claimed[10].id)
        let queued = try await store.list(TaskFilter(states: [.queued]), limit: 10, after: nil).tasks
        _ = try await store.cancel(queued[0].id)
        _ = try await store.cancel(queued[1].id)
        _ = try await store.delete(queued[1].id)
        _ = try await store.retry(claimed[5].id)
        try await check("cancel, delete and retry")
        clock.advance(by: .seconds(120))
        _ = try await store.stageDue(limit: 100)
        let rescued = try await store.rescueExpiredLeases(limit: 100)
        #expect(rescued.total == 4)
        try await check("staging and rescue")
        // Enough finished tasks to pass the limit: the oldest finished are forgotten.
        let rest = try await store.claim(queues: ["a", "b"], limit: 100, owner: "w", leaseDuration: .seconds(30))
        let kept = try await store.tasks(ids).count
        for task in rest { _ = try await store.complete(task.lease!, result: nil) }
        #expect(try await store.tasks(ids).count < kept, "some were forgotten")
        try await check("forgetting")
        clock.advance(by: .seconds(1))
        _ = try await store.prune(finishedBefore: .zero)
        try await check("pruning")
        #expect(try await store.counts() == [])
    }
}
