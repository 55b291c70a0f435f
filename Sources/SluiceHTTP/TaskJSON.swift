import Foundation
import SluiceCore

/// How a task looks in the API.
enum TaskJSON {
    static func encode(_ task: TaskRecord, durable: Bool) -> JSONValue {
        var object: [String: JSONValue] = [
            "id": .string(task.id.rawValue), "kind": .string(task.kind), "queue": .string(task.queue),
            "state": .string(task.state.rawValue), "attempt": .int(Int64(task.attempt)),
            "max_attempts": .int(Int64(task.maxAttempts)), "priority": .int(Int64(task.priority)), "args": task.args,
            "result": task.result ?? .null, "error": task.error.map { .string($0) } ?? .null,
            "attempt_errors": .array(task.attemptErrors.map {
                ["attempt": .int(Int64($0.attempt)), "message": .string($0.message), "at": .string(time($0.at))]
            }),
            "durable": .bool(durable), "timeout": .double(task.timeout.seconds),
            "created_at": .string(time(task.createdAt)), "run_at": .string(time(task.runAt)),
            "started_at": task.startedAt.map { .string(time($0)) } ?? .null,
            "finished_at": task.finishedAt.map { .string(time($0)) } ?? .null,
            "worker": task.worker.map { .string($0) } ?? .null,
            "cancel_requested": .bool(task.cancelRequested),
            "idempotency_key": task.idempotencyKey.map { .string($0) } ?? .null,
        ]
        if let lease = task.lease {
            object["lease"] = ["owner": .string(lease.owner), "expires_at": .string(time(lease.expiresAt))]
        }
        return .object(object)
    }

    /// RFC 3339 with milliseconds, UTC.
    static func time(_ date: Date) -> String {
        Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date)
    }

    /// Parses RFC 3339, with or without fractional seconds.
    static func parseTime(_ text: String) -> Date? {
        (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text))
            ?? (try? Date.ISO8601FormatStyle().parse(text))
    }
}
