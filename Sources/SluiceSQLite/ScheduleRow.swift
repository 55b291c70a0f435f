import Foundation
import SluiceCore

/// How a `Schedule` maps to a row of `schedules`, and the statements that read and write them.
enum ScheduleRow {
    static let columns = """
        name, cron, timezone, kind, queue, args, priority, max_attempts, timeout_ms, misfire, overlap, enabled, \
        revision, cursor_at, last_slot_at, last_task_id, created_at, updated_at
        """

    /// Every column, in `columns` order, then `next_at`.
    static func values(_ schedule: Schedule) -> [SQLiteValue] {
        let d = schedule.definition
        return [
            .text(d.name), .text(d.cron.source), .text(d.timeZone), .text(d.kind), .text(d.queue), .text(d.args.jsonText()),
            .integer(Int64(d.priority)), .integer(Int64(d.maxAttempts)), .integer(d.timeout.milliseconds), .text(d.misfire.rawValue),
            .integer(d.overlap ? 1 : 0), .integer(d.enabled ? 1 : 0), .integer(schedule.revision), TaskRow.time(schedule.cursor),
            TaskRow.time(schedule.lastSlot), TaskRow.text(schedule.lastTaskID?.rawValue), TaskRow.time(schedule.createdAt),
            TaskRow.time(schedule.updatedAt), TaskRow.time(schedule.nextFire),
        ]
    }

    static func decode(_ row: SQLiteRow) throws -> Schedule {
        func date(_ c: Int32) -> Date? { row.optionalInt(c).map { Date(microsecondsSince1970: $0) } }
        let name = row.text(0)
        do {
            let definition = ScheduleDefinition(
                name: name, cron: try CronExpression(row.text(1)), timeZone: row.text(2), kind: row.text(3), queue: row.text(4),
                args: try JSONValue(jsonText: row.text(5)), priority: Int(row.int(6)), maxAttempts: Int(row.int(7)),
                timeout: .milliseconds(row.int(8)), misfire: MisfirePolicy(rawValue: row.text(9)) ?? .skip,
                overlap: row.int(10) != 0, enabled: row.int(11) != 0)
            return Schedule(definition: definition, revision: row.int(12), cursor: date(13)!, lastSlot: date(14),
                            lastTaskID: row.optionalText(15).flatMap { TaskID($0) }, createdAt: date(16)!, updatedAt: date(17)!)
        } catch {
            throw SluiceError(.storage, "stored schedule \(name) is unreadable: \(error)")
        }
    }
}

/// Every statement on schedules, named.
enum ScheduleSQL {
    static let byName = "SELECT \(ScheduleRow.columns) FROM schedules WHERE name = ?"
    static let all = "SELECT \(ScheduleRow.columns) FROM schedules ORDER BY name"
    static let insert = "INSERT INTO schedules (\(ScheduleRow.columns), next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    /// Same parameters as `insert`: the name is the first, the key.
    static let update = """
        UPDATE schedules SET cron = ?2, timezone = ?3, kind = ?4, queue = ?5, args = ?6, priority = ?7, max_attempts = ?8,
            timeout_ms = ?9, misfire = ?10, overlap = ?11, enabled = ?12, revision = ?13, cursor_at = ?14, last_slot_at = ?15,
            last_task_id = ?16, created_at = ?17, updated_at = ?18, next_at = ?19
        WHERE name = ?1
        """
    static let delete = "DELETE FROM schedules WHERE name = ?"
    /// Walks `schedules_due`.
    static let due = "SELECT \(ScheduleRow.columns) FROM schedules WHERE next_at <= ? ORDER BY next_at LIMIT ?"
    static let slotFired = "SELECT 1 FROM schedule_slots WHERE schedule = ? AND slot_at = ?"
    static let insertSlot = "INSERT INTO schedule_slots (schedule, slot_at, task_id, fired_at) VALUES (?, ?, ?, ?)"
    static let pruneSlots = """
        DELETE FROM schedule_slots WHERE (schedule, slot_at) IN (SELECT schedule, slot_at FROM schedule_slots WHERE slot_at < ? LIMIT ?)
        """
}
