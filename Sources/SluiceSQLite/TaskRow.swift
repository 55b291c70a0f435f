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

    /// A row as stored, JSON columns still text: what the writer thread copies out of a statement.
    /// Decoding it (parsing the JSON) happens after the transaction, off the single writer thread
    /// that every process's writes queue on; on the hot paths the parsing was most of its time.
    struct Stored: Sendable {
        let id, queue, kind, args, state, attemptErrors: String
        let priority, runAt, attempt, maxAttempts, timeoutMS, backoffBaseMS, backoffCapMS, createdAt: Int64
        let idempotencyKey, result, error, worker, leaseOwner: String?
        let startedAt, finishedAt, leaseExpiresAt: Int64?
        let leaseToken: Int64
        let cancelRequested: Bool

        init(_ row: SQLiteRow) {
            id = row.text(0); queue = row.text(1); kind = row.text(2); args = row.text(3); priority = row.int(4)
            state = row.text(5); runAt = row.int(6); attempt = row.int(7); maxAttempts = row.int(8); timeoutMS = row.int(9)
            backoffBaseMS = row.int(10); backoffCapMS = row.int(11); idempotencyKey = row.optionalText(12)
            result = row.optionalText(13); error = row.optionalText(14); attemptErrors = row.text(15)
            cancelRequested = row.int(16) != 0; createdAt = row.int(17); startedAt = row.optionalInt(18)
            finishedAt = row.optionalInt(19); worker = row.optionalText(20); leaseOwner = row.optionalText(21)
            leaseExpiresAt = row.optionalInt(22); leaseToken = row.int(23)
        }

        /// The task.
        func decode() throws -> TaskRecord {
            guard let taskID = TaskID(id) else { throw SluiceError(.storage, "a stored task id is malformed: \(id)") }
            func date(_ micros: Int64?) -> Date? { micros.map { Date(microsecondsSince1970: $0) } }
            let errors = attemptErrors == "[]" ? [] : try JSONCoders.decoder.decode([StoredAttemptError].self, from: Data(attemptErrors.utf8))
            let attempt = Int(self.attempt)
            let lease = leaseOwner.flatMap { owner in
                date(leaseExpiresAt).map { TaskLease(taskID: taskID, owner: owner, attempt: attempt, token: leaseToken, expiresAt: $0) }
            }
            return TaskRecord(
                id: taskID, queue: queue, kind: kind, args: try JSONValue(jsonText: args),
                priority: Int(priority), state: TaskState(rawValue: state) ?? .failed,
                runAt: date(runAt)!, attempt: attempt, maxAttempts: Int(maxAttempts),
                timeout: .milliseconds(timeoutMS),
                retryPolicy: RetryPolicy(base: .milliseconds(backoffBaseMS), cap: .milliseconds(backoffCapMS)),
                idempotencyKey: idempotencyKey, result: try result.map(JSONValue.init(jsonText:)),
                error: error,
                attemptErrors: errors.map { AttemptError(attempt: $0.attempt, message: $0.message, at: Date(microsecondsSince1970: $0.at)) },
                cancelRequested: cancelRequested, createdAt: date(createdAt)!, startedAt: date(startedAt), finishedAt: date(finishedAt),
                worker: worker, lease: lease)
        }
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
