import Foundation
import SluiceCore
import SluicePool
import SluiceSQLite
import SluiceStore
import SluiceTestSupport
import Testing

/// Schedules under real `sluice worker` processes and a SIGKILL of the leader.
@Suite(.serialized, .timeLimit(.minutes(4))) struct SchedulerProcessTests {
    @Test func killingTheLeaderNeitherLosesNorDoublesASlotUnderAnyMisfirePolicy() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("schedules.db")
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        for policy in MisfirePolicy.allCases {
            _ = try await store.saveSchedule(ScheduleDefinition(name: "every-second-\(policy.rawValue)", cron: try CronExpression("* * * * * *"),
                                                                kind: "echo", queue: "parked", misfire: policy))
        }
        func fired() async throws -> [String: [String]] { try await SchedulerTests.firedSlots(store) }
        // Nobody drains `parked`: the fired tasks stay to be counted. A 3 s lease: a change of leader within 6 s.
        let arguments = ["worker", "--db", path, "--queues", "elsewhere", "--concurrency", "1", "--lease", "3", "--log-level", "warning"]
        let first = try ChildProcess("sluice", arguments)
        defer { first.kill9() }
        #expect(try await eventually { try await leaderPID(store) == first.pid })
        let second = try ChildProcess("sluice", arguments)
        defer { second.kill9() }
        let started = try await eventually(timeout: .seconds(30)) {
            let slots = try await fired()
            return slots.count == 3 && slots.values.allSatisfy { $0.count >= 3 }
        }
        let soFar = try await fired().mapValues(\.count)
        #expect(started, "fired so far: \(soFar)")

        // Somewhere inside a second, and so mid-minute: the leader dies, perhaps inside a fire's transaction.
        try await Task.sleep(for: .milliseconds(Int.random(in: 0..<1000)))
        first.kill9()
        _ = await first.wait()
        let killedAt = Date()
        #expect(try await eventually(timeout: .seconds(20)) { try await leaderPID(store) == second.pid })
        // The survivor catches up on the slots of the change (well within the 60 s grace) and goes on.
        #expect(try await eventually(timeout: .seconds(20)) {
            try await fired().values.allSatisfy { slots in slots.last.map { SchedulerTests.iso($0) > killedAt.addingTimeInterval(3) } ?? false }
        })
        second.kill9()
        _ = await second.wait()

        let all = try await store.list(TaskFilter(), limit: 100_000, after: nil).tasks
        #expect(Set(all.compactMap(\.idempotencyKey)).count == all.count, "no slot has two tasks")
        for (name, slots) in try await fired() {
            let times = slots.map { SchedulerTests.iso($0).timeIntervalSince1970 }
            #expect(Set(times).count == times.count, "\(name): a slot fired twice")
            let gaps = zip(times, times.dropFirst()).filter { $1 - $0 != 1 }
            #expect(gaps.isEmpty, "\(name): slots lost around the kill: \(gaps.map { "\(Schedule.format(Date(timeIntervalSince1970: $0)))→\(Schedule.format(Date(timeIntervalSince1970: $1)))" })")
        }
    }
}
