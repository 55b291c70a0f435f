import Foundation
import Logging
import SluiceCore
@testable import SluicePool
import SluiceStore
import SluiceTestSupport
import Testing

@Suite(.timeLimit(.minutes(4))) struct SlotPrunerTests {
    /// More records than one batch are due: a pass takes batches until none is left, where it used
    /// to take one batch an hour while a thousand minutely schedules add 60,000.
    @Test func aPassPrunesEveryRecordPastTheRetentionInBatches() async throws {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let clock = ManualClock(start)
        let store = MemoryTaskStore(clock: clock)
        let (schedule, _) = try await store.saveSchedule(
            ScheduleDefinition(name: "fast", cron: try CronExpression("* * * * * *"), kind: "echo"))
        let old = SlotPruner.batch * 2 + 500
        for second in 1...old {
            let outcome = try await store.fire(ScheduleFire(schedule: schedule, slot: start.addingTimeInterval(Double(second))))
            guard case .fired = outcome else { Issue.record("slot \(second): \(outcome)"); return }
        }
        // A week and a day on, one record younger than the retention stays.
        clock.set(start.addingTimeInterval(SlotPruner.retention + Double(old) + 1))
        _ = try await store.fire(ScheduleFire(schedule: schedule, slot: clock.now().addingTimeInterval(-10)))
        let pruner = SlotPruner(store: store, clock: clock, logger: Logger(label: "test"))
        #expect(try await pruner.prune() == old)
        #expect(try await pruner.prune() == 0)
        #expect(try await store.pruneScheduleSlots(before: clock.now(), limit: 10) == 1)
    }
}
