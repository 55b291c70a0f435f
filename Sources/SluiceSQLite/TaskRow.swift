import Foundation
import SluiceCore

/// How a `TaskRecord` maps to a row of `tasks`: the column list every SELECT and RETURNING uses,
/// and the encoding of JSON and time columns.
enum TaskRow {
    static let columns = """
        id, queue, kind, args, priority, state, run_at, attempt, max_attempts, timeout_ms, backoff_base_ms, \
        backoff_cap_ms, idempotency_key, result, error, attempt_errors, cancel_requested, created_at, started_at, \
        finished_at, worker, lease_owner, lease_expires_at, lease_token
        """

    /// An attempt error as stored in the `attempt_errors` JSON array.
    struct StoredAttemptError: Codable {
        var attempt: Int
        var message: String
        var at: Int64
    }

    static func decode(_ row: SQLiteRow) throws -> TaskRecord {
        guard let id = TaskID(row.text(0)) else { throw SluiceError(.storage, "a stored task id is malformed: \(row.text(0))") }
        let id0 = id
        func date(_ c: Int32) -> Date? { row.optionalInt(c).map { Date(microsecondsSince1970: $0) } }
        let errorsText = row.text(15)
        let errors = errorsText == "[]" ? [] : try JSONCoders.decoder.decode([StoredAttemptError].self, from: Data(errorsText.utf8))
        let attempt = Int(row.int(7))
        let leaseOwner = row.optionalText(21)
        let lease = leaseOwner.flatMap { owner in
            date(22).map { TaskLease(taskID: id0, owner: owner, attempt: attempt, token: row.int(23), expiresAt: $0) }
        }
        return TaskRecord(
            id: id, queue: row.text(1), kind: row.text(2), args: try JSONValue(jsonText: row.text(3)),
            priority: Int(row.int(4)), state: TaskState(rawValue: row.text(5)) ?? .failed,
            runAt: date(6)!, attempt: attempt, maxAttempts: Int(row.int(8)),
            timeout: .milliseconds(row.int(9)),
            retryPolicy: RetryPolicy(base: .milliseconds(row.int(10)), cap: .milliseconds(row.int(11))),
            idempotencyKey: row.optionalText(12), result: try row.optionalText(13).map(JSONValue.init(jsonText:)),
            error: row.optionalText(14),
            attemptErrors: errors.map { AttemptError(attempt: $0.attempt, message: $0.message, at: Date(microsecondsSince1970: $0.at)) },
            cancelRequested: row.int(16) != 0, createdAt: date(17)!, startedAt: date(18), finishedAt: date(19),
            worker: row.optionalText(20), lease: lease)
    }

    static func encodeErrors(_ errors: [AttemptError]) -> String {
        if errors.isEmpty { return "[]" }
        let stored = errors.map { StoredAttemptError(attempt: $0.attempt, message: $0.message, at: $0.at.microsecondsSince1970) }
        return String(decoding: try! JSONCoders.encoder.encode(stored), as: UTF8.self)
    }

    static func time(_ date: Date?) -> SQLiteValue {
        date.map { .integer($0.microsecondsSince1970) } ?? .null
    }

    static func text(_ string: String?) -> SQLiteValue {
        string.map { .text($0) } ?? .null
    }
}
