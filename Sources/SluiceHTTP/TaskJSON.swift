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

    /// RFC 3339 with milliseconds, UTC (`2026-11-24T21:18:41.211Z`). Written out by hand, digit by
    /// digit: it runs several times per response, and the format style (and then string
    /// interpolation) cost more than the rest of the encoding.
    static func time(_ date: Date) -> String {
        let millis = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(millis / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(unsafeUninitializedCapacity: 32) { out in
            var at = 0
            func put(_ value: Int, digits: Int) {
                var value = value
                for position in stride(from: at + digits - 1, through: at, by: -1) {
                    out[position] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
                at += digits
            }
            func put(_ byte: Unicode.Scalar) {
                out[at] = UInt8(ascii: byte)
                at += 1
            }
            let year = Int(parts.tm_year) + 1900
            put(year, digits: year > 9999 ? 5 : 4)
            put("-"); put(Int(parts.tm_mon) + 1, digits: 2)
            put("-"); put(Int(parts.tm_mday), digits: 2)
            put("T"); put(Int(parts.tm_hour), digits: 2)
            put(":"); put(Int(parts.tm_min), digits: 2)
            put(":"); put(Int(parts.tm_sec), digits: 2)
            put("."); put(Int(millis % 1000 + 1000) % 1000, digits: 3)
            put("Z")
            return at
        }
    }

    /// Parses RFC 3339, with or without fractional seconds.
    static func parseTime(_ text: String) -> Date? {
        (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text))
            ?? (try? Date.ISO8601FormatStyle().parse(text))
    }
}
