import Foundation
import PostgresNIO
import SluiceCore

/// How a `Schedule` maps to a row of `schedules` (JSON read as text).
enum PostgresScheduleRow {
    static let columns = """
        name, cron, timezone, kind, queue, args::text, priority, max_attempts, timeout_ms, misfire, overlap, enabled, \
        revision, cursor_at, last_slot_at, last_task_id, created_at, updated_at
        """

    /// Every column, in `columns` order, then `next_at`.
    static func binds(_ schedule: Schedule) throws -> Binds {
        let d = schedule.definition
        return try Binds(
            d.name, d.cron.source, d.timeZone, d.kind, d.queue, d.args.jsonText(), d.priority, d.maxAttempts, d.timeout.milliseconds,
            d.misfire.rawValue, d.overlap, d.enabled, schedule.revision, Timestamp(schedule.cursor), schedule.lastSlot.map(Timestamp.init),
            schedule.lastTaskID?.rawValue, Timestamp(schedule.createdAt), Timestamp(schedule.updatedAt), schedule.nextFire.map(Timestamp.init))
    }

    static func decode(_ row: PostgresRandomAccessRow) throws -> Schedule {
        let name = try row[0].decode(String.self)
        do {
            let definition = ScheduleDefinition(
                name: name, cron: try CronExpression(try row[1].decode(String.self)), timeZone: try row[2].decode(String.self),
                kind: try row[3].decode(String.self), queue: try row[4].decode(String.self),
                args: try JSONValue(jsonText: try row[5].decode(String.self)), priority: try row[6].decode(Int.self),
                maxAttempts: try row[7].decode(Int.self), timeout: .milliseconds(try row[8].decode(Int64.self)),
                misfire: MisfirePolicy(rawValue: try row[9].decode(String.self)) ?? .skip,
                overlap: try row[10].decode(Bool.self), enabled: try row[11].decode(Bool.self))
            return Schedule(
                definition: definition, revision: try row[12].decode(Int64.self), cursor: try row[13].decode(Timestamp.self).date,
                lastSlot: try row[14].decode(Timestamp?.self)?.date, lastTaskID: try row[15].decode(String?.self).flatMap { TaskID($0) },
                createdAt: try row[16].decode(Timestamp.self).date, updatedAt: try row[17].decode(Timestamp.self).date)
        } catch {
            throw SluiceError(.storage, "stored schedule \(name) is unreadable: \(PostgresErrors.describe(error))")
        }
    }
}

/// Every statement on schedules, named.
enum PostgresScheduleSQL {
    static let byName = "SELECT \(PostgresScheduleRow.columns) FROM schedules WHERE name = $1"
    static let byNameForUpdate = "SELECT \(PostgresScheduleRow.columns) FROM schedules WHERE name = $1 FOR UPDATE"
    static let all = "SELECT \(PostgresScheduleRow.columns) FROM schedules ORDER BY name"
    static let insert = """
        INSERT INTO schedules (name, cron, timezone, kind, queue, args, priority, max_attempts, timeout_ms, misfire, overlap, enabled,
                               revision, cursor_at, last_slot_at, last_task_id, created_at, updated_at, next_at)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
        ON CONFLICT (name) DO NOTHING RETURNING 1
        """
    /// Same parameters as `insert`: the name is the first, the key.
    static let update = """
        UPDATE schedules SET cron = $2, timezone = $3, kind = $4, queue = $5, args = $6::jsonb, priority = $7, max_attempts = $8,
            timeout_ms = $9, misfire = $10, overlap = $11, enabled = $12, revision = $13, cursor_at = $14, last_slot_at = $15,
            last_task_id = $16, created_at = $17, updated_at = $18, next_at = $19
        WHERE name = $1
        """
    static let delete = "DELETE FROM schedules WHERE name = $1 RETURNING 1"
    /// Walks `schedules_due`.
    static let due = "SELECT \(PostgresScheduleRow.columns) FROM schedules WHERE next_at <= $1 ORDER BY next_at LIMIT $2"
    static let slotFired = "SELECT 1 FROM schedule_slots WHERE schedule = $1 AND slot_at = $2"
    static let insertSlot = "INSERT INTO schedule_slots (schedule, slot_at, task_id, fired_at) VALUES ($1, $2, $3, $4)"
    static let pruneSlots = """
        DELETE FROM schedule_slots WHERE (schedule, slot_at) IN (SELECT schedule, slot_at FROM schedule_slots WHERE slot_at < $1 LIMIT $2)
        RETURNING 1
        """
}
