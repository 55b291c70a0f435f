import Foundation
import SluiceCore
import SluiceStore
import SluiceTestSupport
import Testing

/// The schedule half of the store contract, on every store.
@Suite(.timeLimit(.minutes(4))) struct ScheduleStoreTests {
    func withStore(_ kind: StoreKind, _ body: (any TaskStore & ScheduleStore, ManualClock) async throws -> Void) async throws {
        let clock = ManualClock(at("2026-03-01T00:00:00Z"))
        try await SluiceStoreTests.withStore(kind, clock: clock) { store in try await body(store as! any TaskStore & ScheduleStore, clock) }
    }

    static func nightly(_ cron: String = "*/5 * * * *", overlap: Bool = true, enabled: Bool = true) throws -> ScheduleDefinition {
        ScheduleDefinition(name: "nightly", cron: try CronExpression(cron), timeZone: "Europe/Paris", kind: "echo", queue: "reports",
                           args: ["to": "ops"], priority: 3, maxAttempts: 2, timeout: .seconds(60), misfire: .all, overlap: overlap, enabled: enabled)
    }

    @Test(arguments: StoreKind.allCases)
    func saveReadUpdateDelete(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let (created, change) = try await store.saveSchedule(try Self.nightly())
            #expect(change == .created && created.revision == 1 && created.cursor == clock.now())
            #expect(try await store.schedule("nightly") == created)
            #expect(try await store.saveSchedule(try Self.nightly()).1 == .unchanged)
            clock.advance(by: .seconds(90))
            let (updated, again) = try await store.saveSchedule(try Self.nightly("0 * * * *"))
            #expect(again == .updated && updated.revision == 2 && updated.cursor == clock.now())
            #expect(try await store.schedules() == [updated])
            #expect(try await store.deleteSchedule("nightly"))
            #expect(try await !store.deleteSchedule("nightly"))
            #expect(try await store.schedule("nightly") == nil)
        }
    }

    /// Every `serve --schedules` of a cluster starting at once saves the same new schedules: one
    /// creates each, the others find it made (on PostgreSQL one used to fail on the primary key).
    @Test(arguments: StoreKind.allCases)
    func concurrentCreatesOfOneNameAllSucceedAndOneCreates(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            for round in 0..<10 {
                let definition = try Self.nightly().renamed("report-\(round)")
                let changes = try await withThrowingTaskGroup(of: ScheduleChange.self) { group in
                    for _ in 0..<6 { group.addTask { try await store.saveSchedule(definition).1 } }
                    return try await group.reduce(into: [ScheduleChange]()) { $0.append($1) }
                }
                #expect(changes.filter { $0 == .created }.count == 1 && changes.count == 6, "round \(round): \(changes)")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aSaveAtARevisionLandsOnlyOnThatRevision(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            let (created, _) = try await store.saveSchedule(try Self.nightly())
            var paused = created.definition
            paused.enabled = false
            let saved = try await store.saveSchedule(paused, ifRevision: created.revision)
            #expect(saved?.1 == .updated && saved?.0.revision == created.revision + 1)
            // A change read at the old revision no longer lands, and changes nothing.
            #expect(try await store.saveSchedule(try Self.nightly("0 * * * *"), ifRevision: created.revision) == nil)
            #expect(try await store.schedule("nightly") == saved?.0)
            // Nor does one for a schedule deleted since: it does not come back.
            #expect(try await store.deleteSchedule("nightly"))
            #expect(try await store.saveSchedule(paused, ifRevision: saved?.0.revision) == nil)
            #expect(try await store.schedule("nightly") == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aSlotFiresOnceAndItsTaskSaysWhereItCameFrom(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let (schedule, _) = try await store.saveSchedule(try Self.nightly())
            let slot = at("2026-03-01T00:05:00Z")
            clock.set(slot)
            guard case .fired(let task) = try await store.fire(ScheduleFire(schedule: schedule, slot: slot)) else {
                Issue.record("the first fire stored nothing"); return
            }
            #expect(task.kind == "echo" && task.queue == "reports" && task.args == ["to": "ops"] && task.priority == 3 && task.maxAttempts == 2)
            #expect(task.idempotencyKey == "schedule:nightly@2026-03-01T00:05:00Z")
            #expect(try await store.fire(ScheduleFire(schedule: schedule, slot: slot)) == .alreadyFired)
            // Its record pruned, the cursor still refuses the slot.
            #expect(try await store.pruneScheduleSlots(before: slot.addingTimeInterval(1), limit: 10) == 1)
            #expect(try await store.fire(ScheduleFire(schedule: schedule, slot: slot)) == .alreadyFired)
            let stored = try #require(try await store.schedule("nightly"))
            #expect(stored.cursor == slot && stored.lastSlot == slot && stored.lastTaskID == task.id)
            #expect(try await store.list(TaskFilter(), limit: 10, after: nil).tasks.map(\.id) == [task.id])
            // Deleted and made again: the slot's record stays, so it does not fire twice. The next
            // day's slot is fired, the schedule deleted and made again a minute before that slot (a
            // clock stepped back), so its cursor does not refuse the slot: the record must.
            let next = at("2026-03-02T00:05:00Z")
            clock.set(next)
            guard case .fired = try await store.fire(ScheduleFire(schedule: stored, slot: next)) else {
                Issue.record("the next day's slot did not fire"); return
            }
            _ = try await store.deleteSchedule("nightly")
            clock.set(next.addingTimeInterval(-60))
            let (again, _) = try await store.saveSchedule(try Self.nightly())
            #expect(again.cursor < next)
            var old = ScheduleFire(schedule: again, slot: next)
            old.revision = again.revision
            #expect(try await store.fire(old) == .alreadyFired)
            #expect(try await store.counts().first?.counts[.queued] == 2)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func anEditedOrDisabledScheduleRefusesAFireComputedBefore(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let (schedule, _) = try await store.saveSchedule(try Self.nightly())
            clock.advance(by: .seconds(300))
            _ = try await store.saveSchedule(try Self.nightly(enabled: false))
            #expect(try await store.fire(ScheduleFire(schedule: schedule, slot: clock.now())) == .stale)
            #expect(try await !store.advanceSchedule("nightly", revision: schedule.revision, to: clock.now()))
            #expect(try await store.list(TaskFilter(), limit: 10, after: nil).tasks.isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func withoutOverlapASlotIsSkippedWhileThePreviousTaskIsLive(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let (schedule, _) = try await store.saveSchedule(try Self.nightly(overlap: false))
            clock.set(at("2026-03-01T00:05:00Z"))
            guard case .fired(let first) = try await store.fire(ScheduleFire(schedule: schedule, slot: clock.now())) else { Issue.record("no fire"); return }
            clock.set(at("2026-03-01T00:10:00Z"))
            #expect(try await store.fire(ScheduleFire(schedule: schedule, slot: clock.now())) == .overlapping(first.id))
            #expect(try await store.schedule("nightly")?.cursor == clock.now())
            let claimed = try await store.claim(queues: ["reports"], limit: 1, owner: "w", leaseDuration: .seconds(30))
            _ = try await store.complete(try #require(claimed.first?.lease), result: .null)
            clock.set(at("2026-03-01T00:15:00Z"))
            guard case .fired = try await store.fire(ScheduleFire(schedule: schedule, slot: clock.now())) else { Issue.record("no fire after the task ended"); return }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func onlyDueSchedulesAreReadForFiring(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            var hourly = try Self.nightly("0 * * * *")
            hourly.name = "hourly"
            var paused = try Self.nightly(enabled: false)
            paused.name = "paused"
            let (often, _) = try await store.saveSchedule(try Self.nightly())
            _ = try await store.saveSchedule(hourly)
            _ = try await store.saveSchedule(paused)
            #expect(try await store.dueSchedules(at: clock.now(), limit: 10).isEmpty)
            clock.set(at("2026-03-01T00:05:00Z"))
            #expect(try await store.dueSchedules(at: clock.now(), limit: 10).map(\.name) == ["nightly"])
            _ = try await store.fire(ScheduleFire(schedule: often, slot: clock.now()))
            #expect(try await store.dueSchedules(at: clock.now(), limit: 10).isEmpty, "fired: due next at 00:10")
            clock.set(at("2026-03-01T01:00:00Z"))
            #expect(try await store.dueSchedules(at: clock.now(), limit: 10).map(\.name) == ["nightly", "hourly"])
            #expect(try await store.advanceSchedule("nightly", revision: often.revision, to: clock.now()))
            #expect(try await store.dueSchedules(at: clock.now(), limit: 10).map(\.name) == ["hourly"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func theCursorNeverMovesBack(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let (schedule, _) = try await store.saveSchedule(try Self.nightly())
            let later = clock.now().addingTimeInterval(600)
            #expect(try await store.advanceSchedule("nightly", revision: schedule.revision, to: later))
            #expect(try await store.advanceSchedule("nightly", revision: schedule.revision, to: clock.now()))
            #expect(try await store.schedule("nightly")?.cursor == later)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func badDefinitionsNameTheirField(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            var definition = try Self.nightly()
            definition.timeZone = "Mars/Olympus"
            await #expect(throws: SluiceError.self) { try await store.saveSchedule(definition) }
            definition.timeZone = "UTC"
            definition.name = "no spaces"
            let error = await #expect(throws: SluiceError.self) { try await store.saveSchedule(definition) }
            #expect(error?.field == "name")
            #expect(try await store.schedules().isEmpty)
        }
    }
}

/// A UTC instant from ISO 8601.
func at(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.date(from: text)!
}

extension ScheduleDefinition {
    func renamed(_ name: String) -> ScheduleDefinition {
        var copy = self
        copy.name = name
        return copy
    }
}
