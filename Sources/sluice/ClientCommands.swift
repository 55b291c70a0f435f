import ArgumentParser
import Foundation
import SluiceClient
import SluiceCore

/// Where the client commands find the server: --url and --token, or SLUICE_URL and SLUICE_TOKEN.
struct ClientOptions: ParsableArguments {
    @Option(help: "The server's address (SLUICE_URL; default http://127.0.0.1:8000).")
    var url: String?

    @Option(help: "Bearer token for a server started with --token (SLUICE_TOKEN).")
    var token: String?

    @Flag(help: "Print the server's JSON instead of a table.")
    var json = false

    func client() throws -> SluiceClient {
        let env = ProcessInfo.processInfo.environment
        let given = GivenSetting(flag: "--url", url, variable: "SLUICE_URL", environment: env, default: "http://127.0.0.1:8000")
        guard let base = URL(string: given.text), base.scheme == "http" || base.scheme == "https", base.host != nil,
              (1...65535).contains(base.port ?? 80) else {
            throw failure("\(given.spelled): expected an address like http://127.0.0.1:8000")
        }
        return SluiceClient(baseURL: base, token: token ?? env["SLUICE_TOKEN"].flatMap { ServeCommand.environmentTokens($0).first }, failFast: true)
    }

    /// Runs a request, printing the server's message and exiting 1 on failure.
    func call(_ body: (SluiceClient) async throws -> Void) async throws {
        let client = try client()
        do {
            try await body(client)
        } catch let error as SluiceClient.Failure {
            throw failure(error.description)
        }
    }

    func print(_ value: JSONValue, table: () -> String) {
        Swift.print(json ? value.jsonText() : table())
    }
}

/// One line per task: id, state, kind, queue, attempt, and the result or error. A task whose
/// cancel was asked for but that has not stopped yet says so after its state.
func taskLine(_ task: JSONValue) -> String {
    let outcome = task["error"]?.stringValue ?? (task["result"].map { $0 == .null ? "" : $0.jsonText() } ?? "")
    var state = task["state"]?.stringValue ?? "?"
    if task["cancel_requested"] == true, TaskState(rawValue: state)?.isFinal == false { state += " (cancelling)" }
    return [task["id"]?.stringValue ?? "?", pad(state, 9), pad(task["kind"]?.stringValue ?? "?", 8),
            pad(task["queue"]?.stringValue ?? "?", 10), "\(task["attempt"]?.intValue ?? 0)/\(task["max_attempts"]?.intValue ?? 0)",
            String(outcome.prefix(80))].joined(separator: "  ")
}

/// After `--wait`, the exit status says how the wait ended, for scripts: 0 the task succeeded, 2 it
/// failed or was cancelled, 3 it had not finished when the wait ran out (the line printed says
/// where it stands). Without `--wait`, printing the task is the whole answer.
func waitOutcome(_ task: JSONValue, waited: Double?) throws {
    guard let waited else { return }
    switch task["state"]?.stringValue.flatMap(TaskState.init(rawValue:)) {
    case .succeeded?: return
    case let state? where state.isFinal: throw ExitCode(2)
    default:
        FileHandle.standardError.write(Data("sluice: the task had not finished after --wait \(waited) s\n".utf8))
        throw ExitCode(3)
    }
}

/// Refuses a seconds option that is infinite or NaN (JSON carries neither), naming it as typed.
func requireSeconds(_ options: (name: String, value: Double?)...) throws {
    for case let (name, value?) in options where !value.isFinite { throw failure("--\(name) \(value): give a number of seconds") }
}

/// Refuses an empty task id before any request: in a path it would name another route.
func requireTaskID(_ id: String) throws {
    guard !id.isEmpty else { throw failure("give a task id, as enqueue and tasks print it") }
}

/// `name` as one segment of a path, refused when empty (it would name another route, and the
/// answer would be a puzzling 404): `what` says whose name, as in "the queue's name is empty".
func pathSegment(_ name: String, _ what: String) throws -> String {
    guard !name.isEmpty else { throw failure("the \(what)'s name is empty: give one") }
    return SluiceClient.encoded(name)
}

func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text : text + String(repeating: " ", count: width - text.count) }

struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enqueue", abstract: "Enqueue a task through the HTTP API.",
        discussion: "Example: sluice enqueue sleep --args '{\"seconds\": 3}' --wait 10")

    @Argument(help: "The task kind (the handler's name), e.g. sleep, echo, fail, cpu, exec.")
    var kind: String
    @Option(help: "Arguments as a JSON object.") var args: String = "{}"
    @Option(help: "Queue (default: default).") var queue: String?
    @Option(parsing: .unconditional, help: "Seconds to wait before the task may run.") var delay: Double?
    @Option(parsing: .unconditional, help: "Higher runs first (-1000…1000).") var priority: Int?
    @Option(name: .customLong("max-attempts"), help: "Attempts before the task fails for good.") var maxAttempts: Int?
    @Option(help: "Seconds one attempt may run.") var timeout: Double?
    @Option(name: .customLong("idempotency-key"), help: "Enqueue at most once per key and queue (keys starting with schedule: are kept for schedules).") var idempotencyKey: String?
    @Flag(name: .customLong("fire-and-forget"), help: "Run in the server's own pool without storing the task (lost if the server stops).")
    var fireAndForget = false
    @Option(help: "Hold on up to this many seconds for the task to finish; the exit status is then 0 if it succeeded, 2 if it failed or was cancelled, 3 if it had not finished.") var wait: Double?
    @OptionGroup var client: ClientOptions

    func run() async throws {
        guard let parsed = try? JSONValue(jsonText: args), parsed.objectValue != nil else { throw failure("--args must be a JSON object, e.g. '{\"seconds\": 3}'") }
        try requireSeconds(("delay", delay), ("timeout", timeout), ("wait", wait))
        var body: [String: JSONValue] = ["kind": .string(kind), "args": parsed]
        if let queue { body["queue"] = .string(queue) }
        if let delay { body["delay"] = .double(delay) }
        if let priority { body["priority"] = .int(Int64(priority)) }
        if let maxAttempts { body["max_attempts"] = .int(Int64(maxAttempts)) }
        if let timeout { body["timeout"] = .double(timeout) }
        if let idempotencyKey { body["idempotency_key"] = .string(idempotencyKey) }
        if fireAndForget { body["durable"] = false }
        try await client.call { api in
            let task = try await api.enqueue(.object(body), wait: wait)
            client.print(task) { taskLine(task) }
            try waitOutcome(task, waited: wait)
        }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show a task, optionally waiting for it to finish.")
    @Argument(help: "The task id.") var id: String
    @Option(help: "Hold on up to this many seconds for the task to finish; the exit status is then 0 if it succeeded, 2 if it failed or was cancelled, 3 if it had not finished.") var wait: Double?
    @OptionGroup var client: ClientOptions

    func run() async throws {
        try requireTaskID(id)
        try requireSeconds(("wait", wait))
        try await client.call { api in
            let task = try await api.task(id, wait: wait)
            client.print(task) { taskLine(task) }
            try waitOutcome(task, waited: wait)
        }
    }
}

/// The search options `tasks` and `bulk` share: the parameters of `GET /v1/tasks`.
struct SearchOptions: ParsableArguments {
    @Option(help: "Only these states, comma-separated (e.g. failed,retrying).") var state: String?
    @Option(help: "Only this queue.") var queue: String?
    @Option(help: "Only this kind.") var kind: String?
    @Option(help: "Only ids starting with this.") var id: String?
    @Option(help: "Only tasks whose args' JSON contains this text.") var args: String?
    @Option(name: .customLong("where"), help: "Only tasks whose top-level args field NAME has this value: NAME=VALUE (repeatable).")
    var fields: [String] = []
    @Option(name: .customLong("created-after"), help: "Only tasks created at or after this RFC 3339 time.") var createdAfter: String?
    @Option(name: .customLong("created-before"), help: "Only tasks created before this RFC 3339 time.") var createdBefore: String?

    /// The search as query parameters.
    func parameters() throws -> [String: String] {
        var query: [String: String] = [:]
        query["state"] = state
        query["queue"] = queue
        query["kind"] = kind
        query["id"] = id
        query["args"] = args
        query["created_after"] = createdAfter
        query["created_before"] = createdBefore
        for field in fields {
            let parts = field.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { throw failure("--where \(field): expected NAME=VALUE, e.g. --where customer=42") }
            query["args.\(parts[0])"] = String(parts[1])
        }
        return query
    }
}

struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tasks", abstract: "List or search tasks, newest first.",
        discussion: "Example: sluice tasks --state failed --where customer=42")
    @OptionGroup var search: SearchOptions
    @Option(help: "At most this many (1…1000).") var limit: Int = 20
    @Option(help: "Continue after this cursor (printed after a full page).") var cursor: String?
    @OptionGroup var client: ClientOptions

    func run() async throws {
        var query = try search.parameters()
        query["limit"] = String(limit)
        query["cursor"] = cursor
        try await client.call { api in
            let page = try await api.send("GET", "/v1/tasks", query: query).body
            client.print(page) {
                guard case .array(let tasks)? = page["tasks"] else { return "" }
                var lines = tasks.map(taskLine)
                if page["partial"] == .bool(true) { lines.append("(this page stopped at the search's scan bound; more may match)") }
                if let next = page["next_cursor"]?.stringValue { lines.append("more: --cursor \(next)") }
                return lines.isEmpty ? "no tasks" : lines.joined(separator: "\n")
            }
        }
    }
}

/// A change to one task by id: `cancel`, `retry` and `delete` differ only in the request.
struct TaskChange {
    let method: String
    let path: String
    let client: ClientOptions

    func run(_ id: String) async throws {
        try requireTaskID(id)
        try await client.call { api in
            let task = try await api.send(method, path.replacingOccurrences(of: "{id}", with: SluiceClient.encoded(id))).body
            client.print(task) { taskLine(task) }
        }
    }
}

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a task (a running one stops at its worker's next heartbeat).")
    @Argument(help: "The task id.") var id: String
    @OptionGroup var client: ClientOptions

    func run() async throws { try await TaskChange(method: "POST", path: "/v1/tasks/{id}/cancel", client: client).run(id) }
}

struct RetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "retry", abstract: "Put a failed or cancelled task back in its queue.")
    @Argument(help: "The task id.") var id: String
    @OptionGroup var client: ClientOptions

    func run() async throws { try await TaskChange(method: "POST", path: "/v1/tasks/{id}/retry", client: client).run(id) }
}

struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a finished task (succeeded, failed or cancelled).")
    @Argument(help: "The task id.") var id: String
    @OptionGroup var client: ClientOptions

    func run() async throws { try await TaskChange(method: "DELETE", path: "/v1/tasks/{id}", client: client).run(id) }
}

struct BulkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bulk", abstract: "Retry, cancel or delete every task a search finds (at most 1000 per call).",
        discussion: "Example: sluice bulk retry --state failed --queue mail")
    @Argument(help: "retry, cancel or delete.") var action: String
    @OptionGroup var search: SearchOptions
    @OptionGroup var client: ClientOptions

    func run() async throws {
        let filter = try search.parameters()
        guard filter.values.contains(where: { !$0.isEmpty }) else { throw failure("give at least one search option (e.g. --state failed): a bulk action on every task needs a filter") }
        try await client.call { api in
            let answer = try await api.send("POST", "/v1/tasks/bulk", body: [
                "action": .string(action), "filter": .object(filter.mapValues { .string($0) }),
            ]).body
            client.print(answer) {
                "\(action): \(answer["changed"]?.intValue ?? 0) of \(answer["matched"]?.intValue ?? 0) changed"
                    + (answer["more"] == .bool(true) ? "; more match: run it again" : "")
            }
        }
    }
}

struct QueuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "queues", abstract: "Show queues, or pause and resume one.",
                                                    subcommands: [Show.self, Pause.self, Resume.self], defaultSubcommand: Show.self)

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Task counts by state per queue (the default).")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await client.call { api in
                let answer = try await api.send("GET", "/v1/queues").body
                client.print(answer) {
                    let paused = Swift.Set(array(answer["paused"]).compactMap(\.stringValue))
                    let states = TaskState.allCases.map(\.rawValue)
                    // Fire-and-forget tasks, in the server's memory, on rows of their own.
                    let rows = [("durable", ""), ("memory", " (memory)")].flatMap { kind, label in
                        array(answer[kind]).map { q -> [String] in
                            let name = q["queue"]?.stringValue ?? "?"
                            return [name + label + (paused.contains(name) ? " (paused)" : "")] + states.map { "\(q["counts"]?[$0]?.intValue ?? 0)" }
                        }
                    }
                    return table([["queue"] + states] + rows)
                }
            }
        }
    }

    /// `POST /v1/queues/NAME/pause` or `…/resume`.
    static func change(_ name: String, _ verb: String, _ client: ClientOptions) async throws {
        try await client.call { api in
            let answer = try await api.send("POST", "/v1/queues/\(try pathSegment(name, "queue"))/\(verb)").body
            client.print(answer) { "queue \(name) \(verb == "pause" ? "paused" : "resumed")" }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "pause", abstract: "Stop every process claiming from a queue (enqueues are still accepted).")
        @Argument(help: "The queue's name.") var name: String
        @OptionGroup var client: ClientOptions

        func run() async throws { try await QueuesCommand.change(name, "pause", client) }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "resume", abstract: "Let processes claim from a paused queue again.")
        @Argument(help: "The queue's name.") var name: String
        @OptionGroup var client: ClientOptions

        func run() async throws { try await QueuesCommand.change(name, "resume", client) }
    }
}

struct PoolsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pools", abstract: "Show pool capacity across every live process, or change it.",
                                                    subcommands: [Show.self, Set.self], defaultSubcommand: Show.self)

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show every pool's capacity (the default).")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await client.call { api in
                let answer = try await api.send("GET", "/v1/pools").body
                client.print(answer) {
                    guard case .array(let pools)? = answer["pools"] else { return "" }
                    let header = ["pool", "target", "actual", "busy", "free", "stuck", "waiting", "scheduled", "processed", "failed", "p50 s", "p99 s"]
                    let rows = pools.map { p -> [String] in
                        [p["name"]?.stringValue ?? "?"] + ["target", "actual", "busy", "free", "stuck", "waiting", "scheduled", "processed", "failed"]
                            .map { "\(p[$0]?.intValue ?? 0)" } + ["run_time_p50", "run_time_p99"].map { p[$0]?.doubleValue.map { String(format: "%.3f", $0) } ?? "-" }
                    }
                    let verdicts = pools.map { "\($0["name"]?.stringValue ?? "?"): \($0["advisor"]?["message"]?.stringValue ?? "")" }
                    return table([header] + rows) + "\n\n" + verdicts.joined(separator: "\n")
                }
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "Set a pool's concurrency in every process running it.",
            discussion: "Example: sluice pools set default 50")
        @Argument(help: "The pool's name.") var name: String
        @Argument(help: "Tasks it may run at once (1…10000).") var concurrency: Int
        @Option(help: "Only this process (an id from `sluice pools --json` or GET /v1/workers).") var worker: String?
        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await client.call { api in
                let answer = try await api.send("PATCH", "/v1/pools/\(try pathSegment(name, "pool"))", query: worker.map { ["worker": $0] } ?? [:],
                                                body: ["concurrency": .int(Int64(concurrency))]).body
                client.print(answer) {
                    "pool \(name): concurrency \(concurrency) set for \(answer["applied_to"].map { $0.jsonText() } ?? "?"); target now \(answer["capacity"]?["target"]?.intValue ?? 0) (others apply it within a second)"
                }
            }
        }
    }
}

/// The elements of a JSON array, or none.
func array(_ value: JSONValue?) -> [JSONValue] {
    if case .array(let items)? = value { return items }
    return []
}

/// Columns padded to their widest cell.
func table(_ rows: [[String]]) -> String {
    guard let first = rows.first else { return "" }
    let widths = first.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
    return rows.map { row in zip(row, widths).map { pad($0, $1) }.joined(separator: "  ") }.joined(separator: "\n")
}
