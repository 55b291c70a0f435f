import ArgumentParser
import Foundation
import SluiceClient
import SluiceCore

/// `sluice schedules`: periodic tasks through the HTTP API.
struct SchedulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedules", abstract: "List, add, change, remove and run periodic tasks (see docs/SCHEDULES.md).",
        subcommands: [List.self, Add.self, Set.self, Remove.self, Run.self], defaultSubcommand: List.self)

    /// The fields `add` and `set` share; only those given are sent.
    struct Fields: ParsableArguments {
        @Option(help: "Cron expression, quoted: '30 2 * * *', '@daily', '@every 30s'.") var cron: String?
        @Option(help: "IANA time zone of the expression (UTC for a new schedule that gives none; set leaves it as it is).") var tz: String?
        @Option(help: "The task kind (the handler's name).") var kind: String?
        @Option(help: "The task's arguments as a JSON object.") var args: String?
        @Option(help: "The task's queue (default for a new schedule that gives none; set leaves it as it is).") var queue: String?
        @Option(parsing: .unconditional, help: "The task's priority (-1000…1000).") var priority: Int?
        @Option(help: "The task's attempts (1…1000).") var maxAttempts: Int?
        @Option(help: "Seconds one attempt may run.") var timeout: Double?
        @Option(help: "Slots missed while no scheduler ran: skip, latest or all.") var misfire: String?
        @Option(help: "true: fire even while the previous task is live; false: skip that slot.") var overlap: Bool?
        @Option(help: "false pauses the schedule.") var enabled: Bool?

        func body() throws -> JSONValue {
            var object: [String: JSONValue] = [:]
            var task: [String: JSONValue] = [:]
            if let cron { object["cron"] = .string(cron) }
            if let tz { object["timezone"] = .string(tz) }
            if let misfire { object["misfire"] = .string(misfire) }
            if let overlap { object["overlap"] = .bool(overlap) }
            if let enabled { object["enabled"] = .bool(enabled) }
            if let kind { task["kind"] = .string(kind) }
            if let args {
                guard let parsed = try? JSONValue(parsing: Data(args.utf8)), parsed.objectValue != nil else {
                    throw failure("--args: must be a JSON object, e.g. '{\"to\": \"ops\"}'")
                }
                task["args"] = parsed
            }
            if let queue { task["queue"] = .string(queue) }
            if let priority { task["priority"] = .int(Int64(priority)) }
            if let maxAttempts { task["max_attempts"] = .int(Int64(maxAttempts)) }
            if let timeout {
                guard timeout.isFinite else { throw failure("--timeout \(timeout): give a number of seconds, more than 0") }
                task["timeout"] = .double(timeout)
            }
            if !task.isEmpty { object["task"] = .object(task) }
            return .object(object)
        }

        /// Sends `body` and prints what changed (`add` and `set`).
        func save(_ method: String, _ path: String, body: JSONValue, name: String, client: ClientOptions) async throws {
            try await client.call { api in
                let answer = try await api.send(method, path, body: body).body
                client.print(answer) { "schedule \(name) \(answer["change"]?.stringValue ?? "saved")\n" + table([scheduleRow(answer)]) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Every schedule with its next fire and last task (the default).")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await client.call { api in
                let answer = try await api.send("GET", "/v1/schedules").body
                client.print(answer) {
                    guard case .array(let all)? = answer["schedules"], !all.isEmpty else { return "no schedules" }
                    return table([["name", "cron", "timezone", "kind", "enabled", "next", "last task"]] + all.map(scheduleRow))
                }
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Create a schedule (or replace one of that name).",
            discussion: "Example: sluice schedules add nightly-report --cron '30 2 * * *' --tz Europe/Paris --kind echo --args '{\"to\": \"ops\"}'")
        @Argument(help: "The schedule's name.") var name: String
        @OptionGroup var fields: Fields
        @OptionGroup var client: ClientOptions

        func run() async throws {
            guard case .object(var body) = try fields.body() else { return }
            body["name"] = .string(name)
            try await fields.save("POST", "/v1/schedules", body: .object(body), name: name, client: client)
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "Change some fields of a schedule; the others stay.",
            discussion: "Example: sluice schedules set nightly-report --enabled false")
        @Argument(help: "The schedule's name.") var name: String
        @OptionGroup var fields: Fields
        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await fields.save("PATCH", "/v1/schedules/\(name)", body: try fields.body(), name: name, client: client)
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete a schedule (its tasks stay).")
        @Argument(help: "The schedule's name.") var name: String
        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await client.call { api in
                _ = try await api.send("DELETE", "/v1/schedules/\(try pathSegment(name, "schedule"))")
                print("schedule \(name) deleted")
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Enqueue the schedule's task once, now (its slots fire as usual).")
        @Argument(help: "The schedule's name.") var name: String
        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await client.call { api in
                let task = try await api.send("POST", "/v1/schedules/\(try pathSegment(name, "schedule"))/run").body
                client.print(task) { taskLine(task) }
            }
        }
    }
}

/// name, cron, zone, kind, enabled, next fire, last task id and state.
func scheduleRow(_ s: JSONValue) -> [String] {
    let next: String
    if case .array(let times)? = s["next_fires"], let first = times.first?.stringValue { next = first } else { next = "-" }
    let last = s["last_task"].flatMap { $0 == .null ? nil : "\($0["id"]?.stringValue ?? "?") \($0["state"]?.stringValue ?? "?")" } ?? "-"
    return [s["name"]?.stringValue ?? "?", s["cron"]?.stringValue ?? "?", s["timezone"]?.stringValue ?? "?",
            s["task"]?["kind"]?.stringValue ?? "?", s["enabled"] == .bool(false) ? "no" : "yes", next, last]
}
