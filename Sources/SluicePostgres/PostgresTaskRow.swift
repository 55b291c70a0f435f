import Foundation
import PostgresNIO
import SluiceCore

/// A `timestamptz` exact to the microsecond both ways. postgres-nio's own `Date` coding truncates
/// on the way in and goes through another epoch on the way out, which can move a time by a
/// microsecond; every store must give back exactly the times it was given (`storedPrecision`).
struct Timestamp: PostgresNonThrowingEncodable, PostgresDecodable, Sendable {
    var date: Date

    init(_ date: Date) { self.date = date }

    /// Microseconds from 1970 to 2000, PostgreSQL's epoch.
    static let epochOffset: Int64 = 946_684_800_000_000

    static var psqlType: PostgresDataType { .timestamptz }
    static var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        buffer.writeInteger(date.microsecondsSince1970 - Self.epochOffset)
    }

    init<JSONDecoder: PostgresJSONDecoder>(from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat,
                                           context: PostgresDecodingContext<JSONDecoder>) throws {
        guard type == .timestamptz || type == .timestamp, format == .binary, buffer.readableBytes == 8,
              let micros = buffer.readInteger(as: Int64.self) else { throw PostgresDecodingError.Code.typeMismatch }
        date = Date(microsecondsSince1970: micros + Self.epochOffset)
    }
}

/// How a `TaskRecord` maps to a row of `tasks`: the column list every SELECT and RETURNING uses
/// (JSON read as text, so that `JSONValue` parses it), and the encoding of attempt errors.
enum PostgresTaskRow {
    /// Qualified by the alias `t`, so that UPDATE … FROM and DELETE … USING can return them.
    static let columns = """
        t.id, t.queue, t.kind, t.args::text, t.priority, t.state, t.run_at, t.attempt, t.max_attempts, t.timeout_ms, \
        t.backoff_base_ms, t.backoff_cap_ms, t.idempotency_key, t.result::text, t.error, t.attempt_errors::text, \
        t.cancel_requested, t.created_at, t.started_at, t.finished_at, t.worker, t.lease_owner, t.lease_expires_at, \
        t.lease_token
        """
    static let columnCount = 24

    /// An attempt error as stored in the `attempt_errors` array (the same shape as SQLite's).
    struct StoredAttemptError: Codable {
        var attempt: Int
        var message: String
        var at: Int64
    }

    /// Decodes the first `columnCount` columns of `row` (more may follow: a query's own extras).
    static func decode(_ row: PostgresRandomAccessRow) throws -> TaskRecord {
        let idText = try row[0].decode(String.self)
        guard let id = TaskID(idText) else { throw SluiceError(.storage, "a stored task id is malformed: \(idText)") }
        func time(_ c: Int) throws -> Date? { try row[c].decode(Timestamp?.self)?.date }
        let errorsText = try row[15].decode(String.self)
        let errors = errorsText == "[]" ? [] : try JSONCoders.decoder.decode([StoredAttemptError].self, from: Data(errorsText.utf8))
        let attempt = try row[7].decode(Int.self)
        let lease: TaskLease? = try row[21].decode(String?.self).flatMap { owner in
            guard let expires = try time(22), let token = try row[23].decode(Int64?.self) else { return nil }
            return TaskLease(taskID: id, owner: owner, attempt: attempt, token: token, expiresAt: expires)
        }
        guard let runAt = try time(6), let createdAt = try time(17) else {
            throw SluiceError(.storage, "task \(id) has no run_at or created_at")
        }
        return TaskRecord(
            id: id, queue: try row[1].decode(String.self), kind: try row[2].decode(String.self),
            args: try JSONValue(jsonText: try row[3].decode(String.self)),
            priority: try row[4].decode(Int.self), state: TaskState(rawValue: try row[5].decode(String.self)) ?? .failed,
            runAt: runAt, attempt: attempt, maxAttempts: try row[8].decode(Int.self),
            timeout: .milliseconds(try row[9].decode(Int64.self)),
            retryPolicy: RetryPolicy(base: .milliseconds(try row[10].decode(Int64.self)), cap: .milliseconds(try row[11].decode(Int64.self))),
            idempotencyKey: try row[12].decode(String?.self),
            result: try row[13].decode(String?.self).map(JSONValue.init(jsonText:)),
            error: try row[14].decode(String?.self),
            attemptErrors: errors.map { AttemptError(attempt: $0.attempt, message: $0.message, at: Date(microsecondsSince1970: $0.at)) },
            cancelRequested: try row[16].decode(Bool.self), createdAt: createdAt, startedAt: try time(18),
            finishedAt: try time(19), worker: try row[20].decode(String?.self), lease: lease)
    }

    static func encodeErrors(_ errors: [AttemptError]) -> String {
        if errors.isEmpty { return "[]" }
        let stored = errors.map { StoredAttemptError(attempt: $0.attempt, message: $0.message, at: $0.at.microsecondsSince1970) }
        return String(decoding: try! JSONCoders.encoder.encode(stored), as: UTF8.self)
    }
}
