import Foundation
import SluiceCore

/// How a schedule looks in the API and in a schedules file (TOML tables become the same JSON),
/// read strictly: unknown fields and wrong types are refused, naming the field.
public enum ScheduleJSON {
    static let fields: Set<String> = ["name", "cron", "timezone", "task", "misfire", "overlap", "enabled"]
    static let taskFields: Set<String> = ["kind", "args", "queue", "priority", "max_attempts", "timeout"]

    /// A definition from `value`; `name` (from the URL or the file's table) wins over a body's own.
    /// With `base`, fields left out keep its values (a PATCH); without, `cron` and `task.kind` are required.
    public static func parse(_ value: JSONValue, name: String? = nil, base: ScheduleDefinition? = nil) throws(APIError) -> ScheduleDefinition {
        guard let object = value.objectValue else { throw .badRequest("body", "must be a JSON object") }
        if let unknown = object.keys.sorted().first(where: { !fields.contains($0) }) {
            throw .badRequest(unknown, "is not a known field; known fields: \(fields.sorted().joined(separator: ", "))")
        }
        func string(_ object: [String: JSONValue], _ key: String, _ field: String) throws(APIError) -> String? {
            guard let value = object[key], value != .null else { return nil }
            guard let text = value.stringValue else { throw .badRequest(field, "must be a string") }
            return text
        }
        func bool(_ key: String) throws(APIError) -> Bool? {
            guard let value = object[key], value != .null else { return nil }
            guard case .bool(let flag) = value else { throw .badRequest(key, "must be true or false") }
            return flag
        }
        let bodyName = try string(object, "name", "name")
        if let name, let bodyName, bodyName != name { throw .badRequest("name", "is \(bodyName) in the body but \(name) in the path") }
        guard let finalName = name ?? bodyName ?? base?.name else { throw .badRequest("name", "is required") }
        let cron: CronExpression
        if let text = try string(object, "cron", "cron") {
            do { cron = try CronExpression(text) } catch { throw APIError(error) }
        } else if let base {
            cron = base.cron
        } else {
            throw .badRequest("cron", "is required, e.g. \"30 2 * * *\"")
        }
        var definition = base ?? ScheduleDefinition(name: finalName, cron: cron, kind: "")
        definition.name = finalName
        definition.cron = cron
        if let zone = try string(object, "timezone", "timezone") { definition.timeZone = zone }
        if let misfire = try string(object, "misfire", "misfire") {
            guard let policy = MisfirePolicy(rawValue: misfire) else { throw .badRequest("misfire", "must be skip, latest or all, not \(misfire)") }
            definition.misfire = policy
        }
        if let overlap = try bool("overlap") { definition.overlap = overlap }
        if let enabled = try bool("enabled") { definition.enabled = enabled }
        if let task = object["task"], task != .null {
            guard let fields = task.objectValue else { throw .badRequest("task", "must be a JSON object") }
            if let unknown = fields.keys.sorted().first(where: { !taskFields.contains($0) }) {
                throw .badRequest("task.\(unknown)", "is not a known field; known fields: \(taskFields.sorted().joined(separator: ", "))")
            }
            if let kind = try string(fields, "kind", "task.kind") { definition.kind = kind }
            if let queue = try string(fields, "queue", "task.queue") { definition.queue = queue }
            if let args = fields["args"], args != .null {
                guard args.objectValue != nil else { throw .badRequest("task.args", "must be a JSON object") }
                definition.args = args
            }
            for (key, field) in [("priority", "task.priority"), ("max_attempts", "task.max_attempts")] {
                guard let value = fields[key], value != .null else { continue }
                guard let number = value.intValue, let int = Int(exactly: number) else { throw .badRequest(field, "must be a whole number") }
                if key == "priority" { definition.priority = int } else { definition.maxAttempts = int }
            }
            if let value = fields["timeout"], value != .null {
                guard let seconds = value.doubleValue, seconds.isFinite, seconds > 0, seconds <= 86_400 else {
                    throw .badRequest("task.timeout", "must be more than 0 and at most 86400 seconds")
                }
                definition.timeout = .milliseconds(Int64((seconds * 1000).rounded(.up)))
            }
        }
        guard !definition.kind.isEmpty else { throw .badRequest("task.kind", "is required: the handler the schedule runs") }
        do {
            try definition.validate()
        } catch {
            // The task's own fields are checked as an enqueue names them; here they sit under `task.`.
            let field = error.field.map { ["kind", "queue", "args", "priority", "max_attempts", "timeout"].contains($0) ? "task.\($0)" : $0 } ?? "body"
            throw .badRequest(field, String(error.message.drop(while: { $0 != ":" }).dropFirst(2)))
        }
        return definition
    }

    /// The definition as the API shows it and `parse` reads it.
    public static func encode(_ definition: ScheduleDefinition) -> [String: JSONValue] {
        [
            "name": .string(definition.name), "cron": .string(definition.cron.source), "timezone": .string(definition.timeZone),
            "task": [
                "kind": .string(definition.kind), "queue": .string(definition.queue), "args": definition.args,
                "priority": .int(Int64(definition.priority)), "max_attempts": .int(Int64(definition.maxAttempts)),
                "timeout": .double(definition.timeout.seconds),
            ],
            "misfire": .string(definition.misfire.rawValue), "overlap": .bool(definition.overlap), "enabled": .bool(definition.enabled),
        ]
    }

    /// A stored schedule with its firing state: the next fire times, the last slot fired and its task.
    public static func encode(_ schedule: Schedule, now: Date, lastTask: TaskRecord?, upcoming: Int = 5) -> [String: JSONValue] {
        var object = encode(schedule.definition)
        object["revision"] = .int(schedule.revision)
        object["next_fires"] = .array(schedule.upcomingFires(now: now, count: upcoming).map { .string(TaskJSON.time($0)) })
        object["last_slot"] = schedule.lastSlot.map { .string(TaskJSON.time($0)) } ?? .null
        object["last_task"] = schedule.lastTaskID.map { id in
            ["id": .string(id.rawValue), "state": lastTask.map { .string($0.state.rawValue) } ?? .null]
        } ?? .null
        object["created_at"] = .string(TaskJSON.time(schedule.createdAt))
        object["updated_at"] = .string(TaskJSON.time(schedule.updatedAt))
        return object
    }
}
