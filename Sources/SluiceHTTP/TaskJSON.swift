import Foundation
import SluiceCore

/// How a task looks in the API.
///
/// Written straight to bytes, its keys already in the sorted order `JSONValue` writes objects in
/// (a test holds the two to the same text): building an 18-key dictionary per task and sorting it
/// again was most of a 200-task batch answer's millisecond, and of a single enqueue's encoding.
enum TaskJSON {
    /// One task as a JSON object.
    static func bytes(_ task: TaskRecord, durable: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(640)
        write(task, durable: durable, to: &out)
        return out
    }

    /// `{"tasks": [...]}` with `members` beside it, every key in sorted order.
    static func page(_ tasks: [TaskRecord], durable: Bool, with members: [String: JSONValue] = [:]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + tasks.count * 640)
        out.append(UInt8(ascii: "{"))
        for (index, name) in (Array(members.keys) + ["tasks"]).sorted().enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            JSONValue.writeString(name, to: &out)
            out.append(UInt8(ascii: ":"))
            if let value = members[name] { value.write(to: &out); continue }
            out.append(UInt8(ascii: "["))
            for (position, task) in tasks.enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                write(task, durable: durable, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    static func write(_ task: TaskRecord, durable: Bool, to out: inout [UInt8]) {
        var first = true
        func key(_ name: StaticString) {
            out.append(UInt8(ascii: first ? "{" : ","))
            first = false
            out.append(UInt8(ascii: "\""))
            name.withUTF8Buffer { out.append(contentsOf: $0) }
            out.append(contentsOf: "\":".utf8)
        }
        func string(_ text: String?) {
            if let text { JSONValue.writeString(text, to: &out) } else { out.append(contentsOf: "null".utf8) }
        }
        func bool(_ value: Bool) { out.append(contentsOf: (value ? "true" : "false").utf8) }
        func int(_ value: Int) { out.append(contentsOf: String(value).utf8) }
        key("args"); task.args.write(to: &out)
        key("attempt"); int(task.attempt)
        key("attempt_errors")
        out.append(UInt8(ascii: "["))
        for (index, error) in task.attemptErrors.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: "{\"at\":".utf8); string(time(error.at))
            out.append(contentsOf: ",\"attempt\":".utf8); int(error.attempt)
            out.append(contentsOf: ",\"message\":".utf8); string(error.message)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        key("cancel_requested"); bool(task.cancelRequested)
        key("created_at"); string(time(task.createdAt))
        key("durable"); bool(durable)
        key("error"); string(task.error)
        key("finished_at"); string(task.finishedAt.map(time))
        key("id"); string(task.id.rawValue)
        key("idempotency_key"); string(task.idempotencyKey)
        key("kind"); string(task.kind)
        if let lease = task.lease {
            key("lease")
            out.append(contentsOf: "{\"expires_at\":".utf8); string(time(lease.expiresAt))
            out.append(contentsOf: ",\"owner\":".utf8); string(lease.owner)
            out.append(UInt8(ascii: "}"))
        }
        key("max_attempts"); int(task.maxAttempts)
        key("priority"); int(task.priority)
        key("queue"); string(task.queue)
        key("result"); (task.result ?? .null).write(to: &out)
        key("run_at"); string(time(task.runAt))
        key("started_at"); string(task.startedAt.map(time))
        key("state"); string(task.state.rawValue)
        key("timeout"); JSONValue.double(task.timeout.seconds).write(to: &out)
        key("worker"); string(task.worker)
        out.append(UInt8(ascii: "}"))
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

    /// Parses RFC 3339, with or without fractional seconds. A date or time that does not exist
    /// (February 30, 25:00, minute 61) is refused: Foundation's parser rolls it over into another.
    static func parseTime(_ text: String) -> Date? {
        guard let fields = text.wholeMatch(of: /(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2}))/),
              let year = Int(fields.1), let month = Int(fields.2), let day = Int(fields.3),
              let hour = Int(fields.4), let minute = Int(fields.5), let second = Int(fields.6),
              (1...12).contains(month), (0...23).contains(hour), (0...59).contains(minute), (0...59).contains(second),
              (1...daysIn(month: month, year: year)).contains(day),
              fields.7.map({ Int($0).map { (0...23).contains($0) } ?? false }) ?? true,
              fields.8.map({ Int($0).map { (0...59).contains($0) } ?? false }) ?? true else { return nil }
        return (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text))
            ?? (try? Date.ISO8601FormatStyle().parse(text))
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}
