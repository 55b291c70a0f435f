import Foundation
import SluiceCore
import SluiceStore

/// Schedules in SQLite: a fire is one write transaction holding the task, its slot's row (the
/// primary key refuses a second one) and the schedule's new cursor.
extension SQLiteTaskStore: ScheduleStore {
    public func saveSchedule(_ definition: ScheduleDefinition, ifRevision: Int64?) async throws -> (Schedule, ScheduleChange)? {
        try definition.validate()
        let clock = self.clock
        return try await write { connection -> (Schedule, ScheduleChange)? in
            let now = clock.now()
            let existing = try Self.schedules(connection, ScheduleSQL.byName, [.text(definition.name)]).first
            guard ifRevision == nil || existing?.revision == ifRevision else { return nil }
            guard let existing else {
                let schedule = Schedule(new: definition, now: now)
                try connection.run(ScheduleSQL.insert, ScheduleRow.values(schedule))
                return (schedule, .created)
            }
            guard let updated = existing.updated(to: definition, now: now) else { return (existing, .unchanged) }
            try Self.saveSchedule(connection, updated)
            return (updated, .updated)
        }
    }

    public func schedule(_ name: String) async throws -> Schedule? {
        try await read { connection in try Self.schedules(connection, ScheduleSQL.byName, [.text(name)]).first }
    }

    public func schedules() async throws -> [Schedule] {
        try await read { connection in try Self.schedules(connection, ScheduleSQL.all, []) }
    }

    public func dueSchedules(at date: Date, limit: Int) async throws -> [Schedule] {
        try await read { connection in try Self.schedules(connection, ScheduleSQL.due, [TaskRow.time(date), .integer(Int64(max(0, limit)))]) }
    }

    public func deleteSchedule(_ name: String) async throws -> Bool {
        try await write { connection in try connection.run(ScheduleSQL.delete, [.text(name)]) == 1 }
    }

    public func fire(_ fire: ScheduleFire) async throws -> FireOutcome {
        try fire.request.validate(now: clock.now())
        let (ids, clock) = (self.ids, self.clock)
        let outcome = try await write { connection -> FireOutcome in
            let now = clock.now()
            // The write transaction is exclusive (BEGIN IMMEDIATE): nothing changes the row meanwhile.
            let stored = try Self.schedules(connection, ScheduleSQL.byName, [.text(fire.schedule)]).first
            let last = try stored?.lastTaskID.flatMap { try Self.fetch(connection, SQL.byID, [.text($0.rawValue)]).first?.state }
            if let refusal = Schedule.refusal(of: fire, stored: stored, lastTaskState: last) {
                if case .overlapping = refusal { try Self.saveSchedule(connection, stored!.settled(slot: fire.slot, task: nil)) }
                return refusal
            }
            let slot: [SQLiteValue] = [.text(fire.schedule), TaskRow.time(fire.slot)]
            guard try connection.scalar(ScheduleSQL.slotFired, slot) == nil else { return .alreadyFired }
            var counts = CountDeltas()
            let result = try Self.insert(connection, fire.request, ids: ids, now: now, counts: &counts)
            // The primary key is the last word: a second row for the slot fails the whole fire.
            try connection.run(ScheduleSQL.insertSlot, slot + [.text(result.task.id.rawValue), TaskRow.time(now)])
            try counts.flush(connection)
            try Self.saveSchedule(connection, stored!.settled(slot: fire.slot, task: result.task.id))
            return .fired(result.task)
        }
        if case .fired(let task) = outcome { _ = announce(enqueued: [EnqueueResult(task: task, created: true)]) }
        return outcome
    }

    public func advanceSchedule(_ name: String, revision: Int64, to cursor: Date) async throws -> Bool {
        // Read and written in one transaction, so the stored next slot follows the cursor.
        try await write { connection in
            guard let stored = try Self.schedules(connection, ScheduleSQL.byName, [.text(name)]).first, stored.revision == revision else { return false }
            try Self.saveSchedule(connection, stored.settled(slot: cursor, task: nil))
            return true
        }
    }

    public func pruneScheduleSlots(before date: Date, limit: Int) async throws -> Int {
        try await write { connection in try connection.run(ScheduleSQL.pruneSlots, [TaskRow.time(date), .integer(Int64(limit))]) }
    }

    private static func schedules(_ connection: SQLiteConnection, _ sql: String, _ parameters: [SQLiteValue]) throws -> [Schedule] {
        var schedules: [Schedule] = []
        try connection.query(sql, parameters) { row in schedules.append(try ScheduleRow.decode(row)) }
        return schedules
    }

    private static func saveSchedule(_ connection: SQLiteConnection, _ schedule: Schedule) throws {
        try connection.run(ScheduleSQL.update, ScheduleRow.values(schedule))
    }
}
