import Foundation
import Logging
import Metrics
import SluiceCore
import SluiceStore
import Synchronization

/// What one scheduler pass did, summed over every schedule.
public struct SchedulerReport: Sendable, Hashable {
    /// Tasks stored, one per slot.
    public var fired = 0
    /// Slots another process (or an earlier pass) had fired: nothing stored.
    public var alreadyFired = 0
    /// Slots the misfire policy let pass unfired (too late for `skip`, older than the newest for `latest`).
    public var missed = 0
    /// Slots past `Schedule.Limits.catchUp` that `all` could not fire.
    public var overCap = 0
    /// Slots skipped because the previous task was live and the schedule does not overlap.
    public var overlapping = 0
    /// Schedules whose firing failed this pass (logged; their due slots stay due).
    public var failed = 0

    public init() {}

    /// Each figure by its name in `sluice_schedule_slots_total`'s `outcome` label.
    var byOutcome: [(String, Int)] {
        [("fired", fired), ("already_fired", alreadyFired), ("missed", missed), ("over_cap", overCap),
         ("overlapping", overlapping), ("failed", failed)]
    }
}

/// Fires the due slots of every enabled schedule: the leader's chore (any process may run a pass
/// safely; the store's (schedule, slot) uniqueness keeps each slot to one task). For each
/// schedule, the slots after its cursor up to now are due; a slot older than `grace` is *missed*
/// and handled by the schedule's misfire policy. Slots fire oldest first, each in its own
/// transaction, so a pass cut short by a crash leaves the rest due for the next leader.
///
/// Lateness is judged from the start of the previous pass when passes ran on without a gap: a slot
/// that fell due while a long pass (a catch-up, thousands of schedules due at once) was busy was
/// not missed for want of a scheduler, and firing it late beats dropping it. A pass also stops
/// taking schedules after `passBudget`, so the leader's other chores are not held up; the rest are
/// still due at the next pass, and by the rule above none of their slots turns late meanwhile.
public struct Scheduler: Chore {
    let store: any ScheduleStore
    let clock: any WallClock
    let interval: Duration
    /// A slot seen this long after its time is missed; longer than a leader change takes.
    let grace: Duration
    let logger: Logger
    private let previous = PreviousPass()
    /// `sluice_schedule_slots_total`, one counter per outcome: what the logs say slot by slot, for alerts.
    private let slotCounters: [String: Counter]

    /// When the previous pass in this process started and ended (by the clock its `now` came from).
    private final class PreviousPass: Sendable {
        let span = Mutex<(start: Date, end: Date)?>(nil)
    }

    /// Real time one pass may spend taking schedules.
    let passBudget: Duration

    /// Slots enumerated per schedule and pass, at most: a schedule every second that was down for
    /// more than a day catches up over several passes.
    static let enumerationLimit = 100_000

    public init(store: any ScheduleStore, clock: any WallClock = SystemClock(), interval: Duration = .seconds(1),
                grace: Duration = .seconds(60), passBudget: Duration = .seconds(5), logger: Logger = Logger(label: "sluice.scheduler")) {
        self.passBudget = passBudget
        slotCounters = Dictionary(uniqueKeysWithValues: SchedulerReport().byOutcome.map {
            ($0.0, Counter(label: "sluice_schedule_slots_total", dimensions: [("outcome", $0.0)]))
        })
        self.store = store
        self.clock = clock
        self.interval = interval
        self.grace = grace
        self.logger = logger
    }

    func tick() async {
        do { _ = try await pass() } catch { logger.warning("firing schedules failed: \(error)") }
    }

    /// One pass over every schedule.
    @discardableResult
    public func pass() async throws -> SchedulerReport {
        var report = SchedulerReport()
        // The database's clock where hosts share one, so a leader whose own clock is off fires on time.
        let now = try await store.sharedTime() ?? clock.now()
        let began = clock.now()
        let started = ContinuousClock.now
        var onTimeSince = now.addingTimeInterval(-grace.seconds)
        if let last = previous.span.withLock({ $0 }), now.timeIntervalSince(last.end) <= grace.seconds {
            onTimeSince = min(onTimeSince, last.start.addingTimeInterval(-grace.seconds))
        }
        defer {
            let end = now.addingTimeInterval(max(0, clock.now().timeIntervalSince(began)))
            previous.span.withLock { $0 = (start: now, end: end) }
        }
        // Only the schedules due (an index walk): thousands of idle ones cost nothing. Capped per
        // pass; the rest are due at the next.
        defer { for (outcome, count) in report.byOutcome where count > 0 { slotCounters[outcome]?.increment(by: count) } }
        for schedule in try await store.dueSchedules(at: now, limit: 1000) where schedule.definition.enabled {
            guard ContinuousClock.now - started < passBudget else { break }
            // One schedule's failure is its own: the others still fire, and it is tried again next pass.
            do {
                try await fireDue(schedule, now: now, onTimeSince: onTimeSince, report: &report)
            } catch {
                report.failed += 1
                logger.warning("schedule \(schedule.name): firing failed, tried again next pass: \(error)")
            }
        }
        return report
    }

    private func fireDue(_ schedule: Schedule, now: Date, onTimeSince: Date, report: inout SchedulerReport) async throws {
        guard let zone = try? schedule.definition.zone() else { return }
        // The newest `catchUp` due slots, and how many there were in all.
        var recent: [Date] = []
        var total = 0
        var cursor = schedule.cursor
        while total < Self.enumerationLimit, let slot = schedule.definition.cron.next(after: cursor, in: zone), slot <= now {
            total += 1
            recent.append(slot)
            if recent.count > Schedule.Limits.catchUp { recent.removeFirst() }
            cursor = slot
        }
        guard total > 0 else { return }
        if total == Self.enumerationLimit, let more = schedule.definition.cron.next(after: cursor, in: zone), more <= now {
            // Slots remain beyond the limit, so none of these is the newest: settle them unfired
            // and let the next pass find the newest, so `latest` and `all` fire what they promise.
            if schedule.definition.misfire == .all { report.overCap += total } else { report.missed += total }
            logger.info("schedule \(schedule.name): \(total) missed slots skipped, more are still due")
            _ = try await store.advanceSchedule(schedule.name, revision: schedule.revision, to: cursor)
            return
        }
        let onTime = recent.filter { $0 >= onTimeSince }
        let missed = recent.filter { $0 < onTimeSince }
        var toFire: [Date]
        switch schedule.definition.misfire {
        case .skip: toFire = onTime
        case .latest: toFire = (missed.last.map { [$0] } ?? []) + onTime
        case .all:
            toFire = recent
            report.overCap += total - recent.count
            if total > recent.count {
                logger.warning("schedule \(schedule.name): \(total - recent.count) missed slots over the catch-up cap of \(Schedule.Limits.catchUp) were skipped")
            }
        }
        let unfired = total - toFire.count - (schedule.definition.misfire == .all ? total - recent.count : 0)
        report.missed += unfired
        if unfired > 0 { logger.info("schedule \(schedule.name): \(unfired) missed slot(s) skipped (misfire \(schedule.definition.misfire.rawValue))") }
        var settled: Date?
        for slot in toFire {
            let outcome: FireOutcome
            do {
                outcome = try await store.fire(ScheduleFire(schedule: schedule, slot: slot))
            } catch let error as SluiceError where error.code == .idempotencyConflict {
                // Another task holds this slot's key (enqueued through the Swift API, which cannot
                // refuse it as the HTTP API does): it can never fire, so settle it once and go on,
                // rather than fail on it every pass until that task is pruned.
                report.missed += 1
                logger.warning("schedule \(schedule.name): slot \(Schedule.format(slot)) not fired: \(error.message)")
                guard try await store.advanceSchedule(schedule.name, revision: schedule.revision, to: slot) else { return }
                continue
            }
            switch outcome {
            case .fired(let task):
                report.fired += 1
                settled = slot
                logger.debug("schedule \(schedule.name) fired slot \(Schedule.format(slot)) as task \(task.id)")
            case .alreadyFired: report.alreadyFired += 1
            case .overlapping:
                report.overlapping += 1
                settled = slot
                logger.info("schedule \(schedule.name): slot \(Schedule.format(slot)) not fired: its previous task is still live (overlap false)")
            case .stale: return  // edited, disabled or deleted meanwhile: the next pass reads it anew
            }
        }
        // Settle what the policy let pass. A fire or skip settles its own slot in its transaction,
        // so when the newest due slot was one, there is nothing left: one commit per slot, not two.
        guard settled != cursor else { return }
        _ = try await store.advanceSchedule(schedule.name, revision: schedule.revision, to: cursor)
    }
}
