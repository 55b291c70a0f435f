import Foundation
import SluiceCore
import SluicePool
import SluiceSQLite
import SluiceStore
import SluiceTestSupport
import Synchronization
import Testing

/// The scheduler on a manual clock: hours of simulated time, several schedulers on one store.
@Suite(.timeLimit(.minutes(4))) struct SchedulerTests {
    static func iso(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)!
    }

    static func definition(_ name: String, _ cron: String, misfire: MisfirePolicy = .skip, zone: String = "UTC") throws -> ScheduleDefinition {
        ScheduleDefinition(name: name, cron: try CronExpression(cron), timeZone: zone, kind: "echo", misfire: misfire)
    }

    /// Slot times fired per schedule, read back from the tasks' idempotency keys.
    static func firedSlots(_ store: any TaskStore) async throws -> [String: [String]] {
        var slots: [String: [String]] = [:]
        var cursor: TaskID?
        repeat {
            let page = try await store.list(TaskFilter(), limit: 500, after: cursor)
            for task in page.tasks {
                guard let key = task.idempotencyKey, key.hasPrefix("schedule:"), let at = key.firstIndex(of: "@") else { continue }
                slots[String(key[key.index(key.startIndex, offsetBy: 9)..<at]), default: []].append(String(key[key.index(after: at)...]))
            }
            cursor = page.nextCursor
        } while cursor != nil
        return slots.mapValues { $0.sorted() }
    }

    @Test func threeSchedulersOnOneFileFireEverySlotExactlyOnceOverSixHours() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let clock = ManualClock(Self.iso("2026-03-29T00:00:00Z"))
        var configuration = SQLiteStoreConfiguration(path: dir.path("sluice.db"))
        configuration.clock = clock
        // Three processes' stores on one file; each scheduler runs passes as if it led, at times of its own.
        let stores = try (0..<3).map { _ in try SQLiteTaskStore(configuration) }
        _ = try await stores[0].saveSchedule(try Self.definition("minutely", "* * * * *"))
        _ = try await stores[0].saveSchedule(try Self.definition("paris", "*/15 * * * *", zone: "Europe/Paris"))
        _ = try await stores[0].saveSchedule(try Self.definition("fast", "@every 20s", misfire: .all))
        let schedulers = stores.map { Scheduler(store: $0, clock: clock) }
        let start = clock.now()
        var step = 0
        while clock.now() < start.addingTimeInterval(6 * 3600) {
            step += 1
            // 7 s steps: slots land at every offset within a pass; two or three schedulers race per step.
            clock.advance(by: .seconds(7))
            try await withThrowingTaskGroup(of: SchedulerReport.self) { group in
                for (index, scheduler) in schedulers.enumerated() where (step + index) % 3 != 0 {
                    group.addTask { try await scheduler.pass() }
                }
                try await group.waitForAll()
            }
        }
        let end = clock.now()
        let fired = try await Self.firedSlots(stores[0])
        for name in ["minutely", "paris", "fast"] {
            let schedule = try #require(try await stores[0].schedule(name))
            let expected = schedule.definition.cron.next(10_000, after: start, in: try schedule.definition.zone())
                .filter { $0 <= end }.map(Schedule.format)
            #expect(fired[name] == expected, "\(name): \(fired[name]?.count ?? 0) fired, \(expected.count) expected")
        }
        // 02:00-02:45 Paris was skipped by the spring change: its slots fired once, at 03:00 CEST.
        #expect(fired["paris"]?.contains("2026-03-29T01:00:00Z") == true)
        #expect(fired["minutely"]?.count == 360)
    }

    /// A day of downtime: `skip` fires nothing missed, `latest` the newest missed, `all` the newest
    /// 100 and reports the rest.
    @Test(arguments: [MisfirePolicy.skip, .latest, .all])
    func afterDowntimeEachMisfirePolicyFiresWhatItSays(policy: MisfirePolicy) async throws {
        let clock = ManualClock(Self.iso("2026-01-01T00:00:00Z"))
        let store = MemoryTaskStore(clock: clock)
        _ = try await store.saveSchedule(try Self.definition("job", "*/5 * * * *", misfire: policy))
        let scheduler = Scheduler(store: store, clock: clock, grace: .seconds(60))
        clock.set(Self.iso("2026-01-02T00:00:30Z"))  // 288 slots passed; the last, 00:00:00, is on time
        let report = try await scheduler.pass()
        let fired = try await Self.firedSlots(store)["job"] ?? []
        switch policy {
        case .skip:
            #expect(fired == ["2026-01-02T00:00:00Z"])
            #expect(report.missed == 287)
        case .latest:
            #expect(fired == ["2026-01-01T23:55:00Z", "2026-01-02T00:00:00Z"])
            #expect(report.missed == 286)
        case .all:
            #expect(fired.count == 100 && fired.last == "2026-01-02T00:00:00Z" && fired.first == "2026-01-01T15:45:00Z")
            #expect(report.overCap == 188)
        }
        // Settled: another pass fires nothing until the next slot.
        #expect(try await scheduler.pass() == SchedulerReport())
        #expect(try await store.schedule("job")?.cursor == Self.iso("2026-01-02T00:00:00Z"))
    }

    /// Two days of a schedule every second: more missed slots than one pass enumerates. `latest`
    /// still fires only the newest missed slot, `all` the newest 100.
    @Test(arguments: [MisfirePolicy.latest, .all])
    func afterDowntimeLongerThanOnePassEnumeratesTheNewestSlotsStillFire(policy: MisfirePolicy) async throws {
        let clock = ManualClock(Self.iso("2026-01-01T00:00:00Z"))
        let store = MemoryTaskStore(clock: clock)
        _ = try await store.saveSchedule(try Self.definition("job", "* * * * * *", misfire: policy))
        let scheduler = Scheduler(store: store, clock: clock, grace: .seconds(60))
        clock.set(Self.iso("2026-01-03T00:00:00Z"))
        var passes = 0
        while try await scheduler.pass() != SchedulerReport() { passes += 1 }
        #expect(passes == 2)
        let fired = try #require(try await Self.firedSlots(store)["job"])
        switch policy {
        case .latest:  // the 61 on time (23:59:00 is exactly 60 s old) and the newest one missed before them
            #expect(fired.count == 62 && fired.first == "2026-01-02T23:58:59Z" && fired.last == "2026-01-03T00:00:00Z", "\(fired.count) \(fired.first ?? "")")
        default:
            #expect(fired.count == 100 && fired.first == "2026-01-02T23:58:21Z" && fired.last == "2026-01-03T00:00:00Z", "\(fired.count) \(fired.first ?? "")")
        }
    }

    /// A pass that takes long (here 30 schedules every second, each fire taking 3 s of the injected
    /// clock: 90 s in all) does not make the next pass drop the slots that fell due meanwhile: they
    /// were not missed for want of a scheduler. (The old rule judged them against the next pass's
    /// start and skipped every slot older than the grace: 29 of the 90 per schedule.)
    @Test func slotsThatFallDueDuringALongPassStillFire() async throws {
        let clock = ManualClock(Self.iso("2026-01-01T00:00:00Z"))
        let store = MemoryTaskStore(clock: clock)
        for n in 0..<30 { _ = try await store.saveSchedule(try Self.definition("s\(n)", "* * * * * *", misfire: .skip)) }
        let slow = CountingStore(base: store) { clock.advance(by: .seconds(3)) }
        let scheduler = Scheduler(store: slow, clock: clock, grace: .seconds(60), passBudget: .seconds(600))
        clock.advance(by: .seconds(1))
        #expect(try await scheduler.pass().fired == 30)
        #expect(clock.now() == Self.iso("2026-01-01T00:01:31Z"))
        let report = try await scheduler.pass()
        #expect(report.missed == 0, "\(report)")
        let fired = try await Self.firedSlots(store)
        #expect(fired.count == 30 && fired.values.allSatisfy { $0.count == 91 }, "every slot up to the second pass's start: \(fired.mapValues(\.count))")
    }

    @Test func aSlotWhoseKeyAnotherTaskHoldsIsSettledOnceAndTheOthersFire() async throws {
        let clock = ManualClock(Self.iso("2026-01-01T00:00:00Z"))
        let store = MemoryTaskStore(clock: clock)
        _ = try await store.saveSchedule(try Self.definition("blocked", "* * * * *"))
        _ = try await store.saveSchedule(try Self.definition("other", "* * * * *"))
        // Another task already holds the key of blocked's next slot, so that fire is refused.
        let slot = Self.iso("2026-01-01T00:01:00Z")
        _ = try await store.enqueue(EnqueueRequest(kind: "unrelated", idempotencyKey: ScheduleDefinition.idempotencyKey(schedule: "blocked", slot: slot)))
        let scheduler = Scheduler(store: store, clock: clock)
        clock.advance(by: .seconds(61))
        let report = try await scheduler.pass()
        #expect(report.fired == 1 && report.missed == 1 && report.failed == 0)
        #expect(try await Self.firedSlots(store)["other"] == ["2026-01-01T00:01:00Z"])
        // The blocked slot is settled once, not tried every pass: the next slot fires.
        #expect(try await store.schedule("blocked")?.cursor == slot)
        clock.advance(by: .seconds(60))
        #expect(try await scheduler.pass().fired == 2)
    }

    /// A store that counts the scheduler's commits: each fire, and each settling of skipped slots.
    final class CountingStore: ScheduleStore {
        let base: MemoryTaskStore
        let writes = Mutex((fires: 0, advances: 0))
        /// Fires of this schedule fail, as a storage error would.
        let failing: String?
        /// Called after each fire (a test's clock moving on: a slow store, without sleeping).
        let afterFire: @Sendable () -> Void
        init(base: MemoryTaskStore, failing: String? = nil, afterFire: @escaping @Sendable () -> Void = {}) {
            self.base = base
            self.failing = failing
            self.afterFire = afterFire
        }
        func saveSchedule(_ definition: ScheduleDefinition, ifRevision: Int64?) async throws -> (Schedule, ScheduleChange)? {
            try await base.saveSchedule(definition, ifRevision: ifRevision)
        }
        func schedule(_ name: String) async throws -> Schedule? { try await base.schedule(name) }
        func schedules() async throws -> [Schedule] { try await base.schedules() }
        func dueSchedules(at date: Date, limit: Int) async throws -> [Schedule] { try await base.dueSchedules(at: date, limit: limit) }
        func deleteSchedule(_ name: String) async throws -> Bool { try await base.deleteSchedule(name) }
        func fire(_ fire: ScheduleFire) async throws -> FireOutcome {
            writes.withLock { $0.fires += 1 }
            if fire.schedule == failing { throw SluiceError(.storage, "disk I/O error") }
            defer { afterFire() }
            return try await base.fire(fire)
        }
        func advanceSchedule(_ name: String, revision: Int64, to cursor: Date) async throws -> Bool {
            writes.withLock { $0.advances += 1 }
            return try await base.advanceSchedule(name, revision: revision, to: cursor)
        }
        func pruneScheduleSlots(before date: Date, limit: Int) async throws -> Int { try await base.pruneScheduleSlots(before: date, limit: limit) }
    }

    /// A schedule whose fire fails is tried again next pass; the others fire meanwhile (one failure
    /// used to end the pass, and since it stayed the oldest due, every pass after it).
    @Test func aScheduleWhoseFireFailsDoesNotStopTheOthers() async throws {
        let clock = ManualClock(Self.iso("2026-01-01T00:00:00Z"))
        let store = CountingStore(base: MemoryTaskStore(clock: clock), failing: "broken")
        _ = try await store.saveSchedule(try Self.definition("broken", "* * * * *"))
        _ = try await store.saveSchedule(try Self.definition("fine", "* * * * *"))
        let scheduler = Scheduler(store: store, clock: clock)
        for minute in 1...3 {
            clock.advance(by: .seconds(60))
            let report = try await scheduler.pass()
            #expect(report.failed == 1 && report.fired == 1, "minute \(minute)")
        }
        #expect(try await Self.firedSlots(store.base)["fine"]?.count == 3)
        #expect(try await store.schedule("broken")?.cursor == Self.iso("2026-01-01T00:00:00Z"), "its slots stay due")
    }

    /// Many schedules due at once (a thousand @daily at midnight) cost one commit each, not two:
    /// a fire settles its own slot, so nothing is left to settle after it.
    @Test func aSlotFiredOnTimeCostsOneCommit() async throws {
        let clock = ManualClock(Self.iso("2026-01-01T00:00:00Z"))
        let store = CountingStore(base: MemoryTaskStore(clock: clock))
        for n in 0..<50 { _ = try await store.saveSchedule(try Self.definition("daily-\(n)", "@daily")) }
        clock.set(Self.iso("2026-01-02T00:00:01Z"))
        let report = try await Scheduler(store: store, clock: clock).pass()
        #expect(report.fired == 50)
        #expect(store.writes.withLock { $0 } == (fires: 50, advances: 0))
        // Missed slots still settle: a day's downtime of a minutely `skip` schedule, one fire on time.
        _ = try await store.saveSchedule(try Self.definition("minutely", "* * * * *"))
        clock.set(Self.iso("2026-01-03T00:00:30Z"))
        #expect(try await Scheduler(store: store, clock: clock).pass().missed > 1000)
        #expect(try await store.schedule("minutely")?.cursor == Self.iso("2026-01-03T00:00:00Z"))
    }

    @Test func aScheduleEditedOrDisabledWhileASlotIsDue() async throws {
        let clock = ManualClock(Self.iso("2026-01-01T00:00:00Z"))
        let store = MemoryTaskStore(clock: clock)
        _ = try await store.saveSchedule(try Self.definition("job", "* * * * *"))
        let scheduler = Scheduler(store: store, clock: clock)
        clock.advance(by: .seconds(61))
        // Disabled before the pass: the due 00:01 slot is not fired, now or when enabled again.
        _ = try await store.saveSchedule(ScheduleDefinition(name: "job", cron: try CronExpression("* * * * *"), kind: "echo", enabled: false))
        #expect(try await scheduler.pass().fired == 0)
        clock.advance(by: .seconds(30))
        _ = try await store.saveSchedule(try Self.definition("job", "* * * * *"))
        #expect(try await scheduler.pass().fired == 0)
        clock.advance(by: .seconds(30))
        #expect(try await scheduler.pass().fired == 1)
        // A new expression starts from its change: the hourly slot at 01:00 fires, no minute slot in between.
        _ = try await store.saveSchedule(try Self.definition("job", "0 * * * *"))
        clock.set(Self.iso("2026-01-01T01:00:10Z"))
        #expect(try await scheduler.pass().fired == 1)
        #expect(try await Self.firedSlots(store)["job"] == ["2026-01-01T00:02:00Z", "2026-01-01T01:00:00Z"])
    }
}
