import Foundation
import SluiceCore
import SluiceSQLite
import SluiceStore
import SluiceTestSupport
import Testing

/// Many claimers on one database file: every task is claimed exactly once and none is left behind.
@Suite(.serialized, .timeLimit(.minutes(4))) struct ClaimExclusivityTests {
    static let taskCount = 5000

    func prefilled(_ dir: TempDir) async throws -> (String, Set<TaskID>) {
        let path = dir.path("claims.db")
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        let ids = try await store.enqueue(batch: (0..<Self.taskCount).map { EnqueueRequest(kind: "k", args: ["i": .int(Int64($0))]) }).map(\.task.id)
        return (path, Set(ids))
    }

    @Test func eightThreadsWithTheirOwnConnections() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (path, ids) = try await prefilled(dir)
        // Eight stores = eight connections, each with its own writer thread, racing for the lock.
        let stores = try (0..<8).map { _ in try SQLiteTaskStore(SQLiteStoreConfiguration(path: path)) }
        let claims = try await withThrowingTaskGroup(of: [TaskID].self) { group in
            for (n, store) in stores.enumerated() {
                group.addTask {
                    var mine: [TaskID] = []
                    while true {
                        let batch = try await store.claim(queues: ["default"], limit: 7, owner: "thread-\(n)", leaseDuration: .seconds(60))
                        if batch.isEmpty { return mine }
                        mine += batch.map(\.id)
                        for task in batch { _ = try await store.complete(task.lease!, result: nil) }
                    }
                }
            }
            return try await group.reduce(into: [[TaskID]]()) { $0.append($1) }
        }
        let all = claims.flatMap { $0 }
        #expect(all.count == Self.taskCount, "claimed \(all.count) times for \(Self.taskCount) tasks")
        #expect(Set(all) == ids)
        #expect(claims.filter { !$0.isEmpty }.count > 1, "only one thread ever got work")
        let counts = try await stores[0].counts()
        #expect(counts == [QueueCounts(queue: "default", counts: [.succeeded: Self.taskCount])])
    }

    @Test func fourRealProcesses() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (path, ids) = try await prefilled(dir)
        let children = try (0..<4).map { try ChildProcess("sluice-testkit", ["claim", "--db", path, "--owner", "proc-\($0)", "--batch", "9"]) }
        var perProcess: [[String]] = []
        var statuses: [Int32] = []
        for child in children {
            perProcess.append(await child.lines())
            statuses.append(await child.wait())
        }
        #expect(statuses == [0, 0, 0, 0])
        let all = perProcess.flatMap { $0 }.compactMap(TaskID.init)
        #expect(all.count == Self.taskCount, "claimed \(all.count) times for \(Self.taskCount) tasks")
        #expect(Set(all) == ids)
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        let counts = try await store.counts()
        #expect(counts == [QueueCounts(queue: "default", counts: [.succeeded: Self.taskCount])])
        // Every task succeeded on its first attempt: nobody claimed it twice.
        let page = try await store.list(TaskFilter(), limit: Self.taskCount, after: nil)
        #expect(page.tasks.allSatisfy { $0.attempt == 1 })
    }
}

/// A worker process killed with SIGKILL: its tasks come back once the lease expires.
@Suite(.timeLimit(.minutes(4))) struct CrashRecoveryTests {
    @Test func killedWorkersTasksAreClaimedAgain() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("crash.db")
        let clock = ManualClock(Date())
        var configuration = SQLiteStoreConfiguration(path: path)
        configuration.clock = clock
        let store = try SQLiteTaskStore(configuration)
        let ids = Set(try await store.enqueue(batch: (0..<20).map { _ in EnqueueRequest(kind: "k") }).map(\.task.id))

        let child = try ChildProcess("sluice-testkit", ["hold", "--db", path, "--owner", "doomed", "--count", "8", "--lease", "60"])
        let held = Set(await child.lines(until: "ready").compactMap(TaskID.init))
        #expect(held.count == 8 && held.isSubset(of: ids))
        child.kill9()

        // The lease still runs: nothing to rescue, and the held tasks are not claimable.
        #expect(try await store.rescueExpiredLeases().total == 0)
        let others = try await store.claim(queues: ["default"], limit: 100, owner: "survivor", leaseDuration: .seconds(60))
        #expect(Set(others.map(\.id)) == ids.subtracting(held))

        // Once the lease has expired (by the injected clock, no sleeping), the rescuer requeues them.
        clock.advance(by: .seconds(3600))
        let report = try await store.rescueExpiredLeases()
        #expect(Set(report.requeued).isSuperset(of: held))
        let again = try await store.claim(queues: ["default"], limit: 100, owner: "survivor-2", leaseDuration: .seconds(60))
        let retaken = again.filter { held.contains($0.id) }
        #expect(Set(retaken.map(\.id)) == held)
        #expect(retaken.allSatisfy { $0.attempt == 2 && $0.attemptErrors.first?.message == TaskRecord.leaseExpiredMessage })
    }
}
