import Foundation

/// A cron expression: five fields (minute hour day-of-month month day-of-week), or six with a
/// leading seconds field; `*`, lists, ranges, steps, month and day names; the macros `@yearly`,
/// `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`; and `@every 30s` intervals.
///
/// Fire times are local wall-clock times in a time zone (see `next(after:in:)` for DST). When both
/// day fields are restricted, a day matches if *either* does (the classic cron rule); a field that
/// starts with `*` counts as unrestricted, as in Vixie cron and cronie.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The expression as written.
    public let source: String
    let rule: Rule

    enum Rule: Sendable, Hashable {
        /// Local wall-clock times matching every field.
        case fields(CronFields)
        /// Every `seconds` seconds, at multiples of it since 1970-01-01T00:00:00Z, whatever the zone,
        /// so that every process computes the same slots.
        case every(seconds: Int64)
    }

    /// The longest `@every` interval: a year.
    public static let longestInterval: Int64 = 366 * 86_400

    /// Parses `source`; a bad expression throws an `invalid_argument` error naming the field
    /// `cron`, the cron field and the character position (1-based) at fault.
    public init(_ source: String) throws(SluiceError) {
        self.source = source
        let trimmed = source.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .invalid("cron", "is empty; write five fields such as \"30 2 * * *\", or a macro such as @daily") }
        if trimmed.hasPrefix("@") {
            rule = try Self.macro(trimmed, in: source)
        } else {
            rule = .fields(try CronFields(parsing: source))
        }
    }

    public var description: String { source }

    /// The first fire time strictly after `date`, or `nil` if the expression never matches again
    /// (`0 0 30 2 *`). Local times skipped by a DST change (spring forward) fire at the first
    /// instant after the gap, once however many of them the gap swallowed. Local times that happen
    /// twice (autumn back) fire once, at their first occurrence, for a job at set times
    /// (`30 2 * * *`); a job whose minute or hour field (or seconds, when given) starts with `*`
    /// fires in both passes, by real time, as cronie runs such jobs: `0 * * * *` fires every hour
    /// the clock goes through, and `*/15 * * * *` every quarter hour.
    public func next(after date: Date, in zone: TimeZone) -> Date? {
        switch rule {
        case .every(let seconds):
            let now = Int64(floor(date.timeIntervalSince1970))
            return Date(timeIntervalSince1970: Double((now.floorDiv(seconds) + 1) * seconds))
        case .fields(let fields):
            let after = Int64(floor(date.timeIntervalSince1970))
            let zoned = ZonedTime(zone: zone)
            let first = { (wall: Int64) in zoned.instant(forWall: wall) }
            guard fields.runsByRealTime else {
                return Self.search(fields, fromWall: after + zoned.offset(at: after), after: after, instant: first)
                    .map { Date(timeIntervalSince1970: Double($0)) }
            }
            // Each pass of a repeated hour on its own: taking the first or the last occurrence of
            // every wall time, instants grow with wall times, so each search's first find is its
            // earliest, and the earlier of the two is the next fire. Near a change, searches start
            // from the local time of `date` under the other offset too: from inside the first pass,
            // the second starts at an earlier wall time.
            let last = { (wall: Int64) in zoned.instants(forWall: wall).last! }
            let offsets = Set([zoned.offset(at: after), zoned.offset(at: after - 172_800), zoned.offset(at: after + 172_800)])
            return offsets.flatMap { offset in
                [first, last].compactMap { Self.search(fields, fromWall: after + offset, after: after, instant: $0) }
            }.min().map { Date(timeIntervalSince1970: Double($0)) }
        }
    }

    /// The first instant after `after` of a wall time matching `fields`, searching wall times from
    /// `start`, each wall time's instant as `instant` gives it.
    private static func search(_ fields: CronFields, fromWall start: Int64, after: Int64, instant: (Int64) -> Int64) -> Int64? {
        var wall = start
        // Bounded: a repeated hour of `* * * * * *` rejects at most 3600 candidates.
        for _ in 0..<10_000 {
            guard let local = fields.firstMatch(atOrAfter: wall) else { return nil }
            let found = instant(local)
            if found > after { return found }
            wall = local + 1
        }
        return nil
    }

    /// The next `count` fire times after `date`.
    public func next(_ count: Int, after date: Date, in zone: TimeZone) -> [Date] {
        var times: [Date] = []
        var from = date
        while times.count < count, let time = next(after: from, in: zone) {
            times.append(time)
            from = time
        }
        return times
    }

    private static func macro(_ text: String, in source: String) throws(SluiceError) -> Rule {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        let name = parts[0].lowercased()
        let position = (source.distance(from: source.startIndex, to: source.firstIndex(of: "@")!)) + 1
        let fields: String
        switch name {
        case "@yearly", "@annually": fields = "0 0 1 1 *"
        case "@monthly": fields = "0 0 1 * *"
        case "@weekly": fields = "0 0 * * 0"
        case "@daily", "@midnight": fields = "0 0 * * *"
        case "@hourly": fields = "0 * * * *"
        case "@every":
            guard parts.count == 2 else {
                throw .invalid("cron", "at position \(position): @every takes one interval, such as \"@every 30s\" or \"@every 1h30m\"")
            }
            let seconds = try interval(String(parts[1]), position: position + 7)
            return .every(seconds: seconds)
        default:
            throw .invalid("cron", "at position \(position): unknown macro \(parts[0]); use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every")
        }
        guard parts.count == 1 else { throw .invalid("cron", "at position \(position): \(parts[0]) takes no fields after it") }
        return .fields(try CronFields(parsing: fields))
    }

    /// Parses `90s`, `5m`, `1h30m`, `2d` into seconds.
    private static func interval(_ text: String, position: Int) throws(SluiceError) -> Int64 {
        var total: Int64 = 0
        var digits = ""
        var sawUnit = false
        for (offset, character) in text.enumerated() {
            if character.isASCII, character.isNumber {
                digits.append(character)
                continue
            }
            let unit: Int64
            switch character {
            case "s": unit = 1
            case "m": unit = 60
            case "h": unit = 3600
            case "d": unit = 86_400
            default: throw .invalid("cron", "at position \(position + offset): \"\(character)\" is not a unit; use s, m, h or d, as in \"@every 90s\"")
            }
            // A part may be 0 (1h0m), as long as the whole is not.
            guard !digits.isEmpty else {
                throw .invalid("cron", "at position \(position + offset): a unit needs a number before it, as in \"@every 30s\"")
            }
            // Bounded before multiplying: a number of any length is an error, never an overflow.
            guard let value = Int64(digits), value <= longestInterval / unit, total + value * unit <= longestInterval else {
                throw .invalid("cron", "at position \(position): @every is longer than 366 days")
            }
            total += value * unit
            digits = ""
            sawUnit = true
        }
        guard digits.isEmpty, sawUnit else {
            throw .invalid("cron", "at position \(position + text.count): the interval needs a unit (s, m, h or d), as in \"@every 30s\"")
        }
        guard total > 0 else { throw .invalid("cron", "at position \(position): @every needs an interval longer than 0, as in \"@every 30s\"") }
        return total
    }
}

extension Int64 {
    /// Division rounding towards minus infinity (for times before 1970).
    func floorDiv(_ divisor: Int64) -> Int64 {
        let q = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? q - 1 : q
    }
}

extension CronExpression {
    /// The IANA zone called `name` (`Europe/Paris`, `UTC`); an unknown name is an `invalid_argument`
    /// error naming `field`.
    public static func zone(named name: String, field: String = "timezone") throws(SluiceError) -> TimeZone {
        guard !name.isEmpty, let zone = TimeZone(identifier: name) else {
            throw .invalid(field, "\"\(name)\" is not an IANA time zone name such as UTC, Europe/Paris or America/New_York")
        }
        return zone
    }
}
