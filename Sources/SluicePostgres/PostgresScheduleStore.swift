import Foundation
import PostgresNIO
import SluiceCore
import SluiceStore

/// Schedules in PostgreSQL: a fire locks the schedule's row (`FOR UPDATE`), so fires of one
/// schedule take turns, and stores the task, its slot's row (the primary key refuses a second one)
/// and the schedule's new cursor in one transaction.
extension PostgresTaskStore: ScheduleStore {
    /// The database's `now()` (or the configured clock's, in tests), as leases and due times use.
    public func sharedTime() async throws -> Date? {
        try await connection { connection in try await self.now(connection) }
    }

    public func saveSchedule(_ definition: ScheduleDefinition, ifRevision: Int64?) async throws -> (Schedule, ScheduleChange)? {
        try definition.validate()
        // `FOR UPDATE` locks no row that does not exist yet: two processes creating one name at
        // once (every `serve --schedules` of a cluster starting) both insert. The one that finds
        // the name taken saves again, now as an update of the row the other made.
        for _ in 0..<3 {
            let saved = try await transaction { connection -> (Schedule, ScheduleChange)?? in
                let now = try await self.now(connection)
                let existing = try await self.schedules(connection, PostgresScheduleSQL.byNameForUpdate, Binds(definition.name)).first
                guard ifRevision == nil || existing?.revision == ifRevision else { return .some(nil) }
                guard let existing else {
                    let schedule = Schedule(new: definition, now: now)
                    let inserted = try await self.rows(connection, PostgresScheduleSQL.insert, try PostgresScheduleRow.binds(schedule))
                    if inserted.isEmpty { return nil }  // made meanwhile: save again
                    return (schedule, .created)
                }
                guard let updated = existing.updated(to: definition, now: now) else { return (existing, .unchanged) }
                _ = try await self.rows(connection, PostgresScheduleSQL.update, try PostgresScheduleRow.binds(updated))
                return (updated, .updated)
            }
            if let saved { return saved }
        }
        throw SluiceError(.storage, "schedule \(definition.name) was created and deleted again while this save ran; save it again")
    }

    public func schedule(_ name: String) async throws -> Schedule? {
        try await connection { connection in try await self.schedules(connection, PostgresScheduleSQL.byName, Binds(name)).first }
    }

    public func schedules() async throws -> [Schedule] {
        try await connection { connection in try await self.schedules(connection, PostgresScheduleSQL.all, Binds()) }
    }

    public func dueSchedules(at date: Date, limit: Int) async throws -> [Schedule] {
        try await connection { connection in
            try await self.schedules(connection, PostgresScheduleSQL.due, Binds(Timestamp(date), max(0, limit)))
        }
    }

    public func deleteSchedule(_ name: String) async throws -> Bool {
        try await connection { connection in try await !self.rows(connection, PostgresScheduleSQL.delete, Binds(name)).isEmpty }
    }

    public func fire(_ fire: ScheduleFire) async throws -> FireOutcome {
        let outcome = try await transaction { connection -> FireOutcome in
            let stored = try await self.schedules(connection, PostgresScheduleSQL.byNameForUpdate, Binds(fire.schedule)).first
            var last: TaskState?
            if let id = stored?.lastTaskID { last = try await self.tasks(connection, SQL.ByID.self, Binds(id.rawValue)).first?.state }
            if let refusal = Schedule.refusal(of: fire, stored: stored, lastTaskState: last) {
                if case .overlapping = refusal {
                    _ = try await self.rows(connection, PostgresScheduleSQL.update, try PostgresScheduleRow.binds(stored!.settled(slot: fire.slot, task: nil)))
                }
                return refusal
            }
            // The schedule's row lock orders fires of this schedule: this read sees any committed before.
            guard try await self.rows(connection, PostgresScheduleSQL.slotFired, Binds(fire.schedule, Timestamp(fire.slot))).isEmpty else {
                return .alreadyFired
            }
            let result = try await self.insert([fire.request], on: connection)[0]
            let now = try await self.now(connection)
            // The primary key is the last word: a second row for the slot fails the whole fire.
            _ = try await self.rows(connection, PostgresScheduleSQL.insertSlot,
                                    Binds(fire.schedule, Timestamp(fire.slot), result.task.id.rawValue, Timestamp(now)))
            _ = try await self.rows(connection, PostgresScheduleSQL.update,
                                    try PostgresScheduleRow.binds(stored!.settled(slot: fire.slot, task: result.task.id)))
            return .fired(result.task)
        }
        if case .fired(let task) = outcome { _ = announce(enqueued: [EnqueueResult(task: task, created: true)]) }
        return outcome
    }

    public func advanceSchedule(_ name: String, revision: Int64, to cursor: Date) async throws -> Bool {
        // Read locked and written in one transaction, so the stored next slot follows the cursor.
        try await transaction { connection in
            guard let stored = try await self.schedules(connection, PostgresScheduleSQL.byNameForUpdate, Binds(name)).first,
                  stored.revision == revision else { return false }
            _ = try await self.rows(connection, PostgresScheduleSQL.update, try PostgresScheduleRow.binds(stored.settled(slot: cursor, task: nil)))
            return true
        }
    }

    public func pruneScheduleSlots(before date: Date, limit: Int) async throws -> Int {
        try await connection { connection in
            try await self.rows(connection, PostgresScheduleSQL.pruneSlots, Binds(Timestamp(date), limit)).count
        }
    }

    private func schedules(_ connection: PostgresConnection, _ sql: String, _ binds: Binds) async throws -> [Schedule] {
        try await rows(connection, sql, binds).map(PostgresScheduleRow.decode)
    }
}
