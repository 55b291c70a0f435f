import Foundation
import SluiceCore

/// What saving a schedule did.
public enum ScheduleChange: String, Sendable, Hashable {
    case created, updated, unchanged
}

/// Where schedules and their fired slots are kept. A fire stores the task and the slot's record in
/// one transaction under a uniqueness constraint on (schedule, slot), so a slot fires at most once
/// whichever process, leader or clock tries it.
public protocol ScheduleStore: Sendable {
    /// Creates the schedule, or updates the one of that name (bumping its revision when it changed).
    /// With `ifRevision`, only updates the stored schedule at that revision, and returns `nil` when
    /// it is gone or at another: a read-modify-write (`PATCH`) then reads again rather than
    /// undoing another change or bringing back a deleted schedule.
    func saveSchedule(_ definition: ScheduleDefinition, ifRevision: Int64?) async throws -> (Schedule, ScheduleChange)?
    /// The schedule called `name`, or `nil`.
    func schedule(_ name: String) async throws -> Schedule?
    /// Every schedule, by name.
    func schedules() async throws -> [Schedule]
    /// Enabled schedules whose next slot is at or before `date`, soonest first, at most `limit`.
    func dueSchedules(at date: Date, limit: Int) async throws -> [Schedule]
    /// Deletes the schedule; returns whether there was one. Its fired slots' records stay, so that
    /// a schedule made again under the same name does not fire them again.
    func deleteSchedule(_ name: String) async throws -> Bool
    /// Fires one slot: in one transaction, checks the schedule's revision and that it is enabled,
    /// records the slot (or finds it fired), skips it when the previous task is live and
    /// `skipIfLive`, stores the task, and moves the schedule's cursor and last task on.
    func fire(_ fire: ScheduleFire) async throws -> FireOutcome
    /// Settles every slot up to `cursor` without firing (skipped by the misfire policy); the cursor
    /// never moves back. Returns `false` when the schedule changed since `revision`.
    func advanceSchedule(_ name: String, revision: Int64, to cursor: Date) async throws -> Bool
    /// Deletes at most `limit` slot records older than `date`; returns how many.
    func pruneScheduleSlots(before date: Date, limit: Int) async throws -> Int
    /// The time slots fall due by, when the store has a clock that every host shares (PostgreSQL's
    /// `now()`): a leader whose own clock is off then fires no slot early or late. `nil` for a
    /// store on one host, where the scheduler's clock serves.
    func sharedTime() async throws -> Date?
}

extension ScheduleStore {
    public func sharedTime() async throws -> Date? { nil }
}

extension ScheduleStore {
    /// Creates the schedule, or updates the one of that name, whatever its revision.
    public func saveSchedule(_ definition: ScheduleDefinition) async throws -> (Schedule, ScheduleChange) {
        // Without a revision to match, a save always lands.
        try await saveSchedule(definition, ifRevision: nil)!
    }
}
