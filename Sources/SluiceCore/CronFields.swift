import Foundation

/// The six fields of a cron expression as sets of allowed values, and the search for the first
/// local wall time that matches them. Wall times are seconds since 1970-01-01T00:00:00 *local*
/// (no zone): calendar arithmetic here is plain proleptic Gregorian, the zone is `ZonedTime`'s job.
struct CronFields: Sendable, Hashable {
    var seconds: CronSet
    var minutes: CronSet
    var hours: CronSet
    var daysOfMonth: CronSet
    var months: CronSet
    /// 0 = Sunday … 6 = Saturday (7 is read as 0).
    var daysOfWeek: CronSet
    /// Whether the day fields were written starting with `*`: then only the other one restricts.
    var daysOfMonthStar: Bool
    var daysOfWeekStar: Bool
    /// Whether the seconds (when given), minute or hour field was written starting with `*` (`*`,
    /// `*/15`): cronie's "wildcard" job, which it runs by real time through a repeated hour
    /// (`CronExpression.next`); a job at set times fires once.
    var runsByRealTime: Bool

    /// One field's name, range and names, in the order fields are written.
    struct Spec {
        var name: String
        var range: ClosedRange<Int>
        var names: [String: Int] = [:]
    }

    static let monthNames = ["jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
                             "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12]
    static let dayNames = ["sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6]
    static let specs = [
        Spec(name: "second", range: 0...59),
        Spec(name: "minute", range: 0...59),
        Spec(name: "hour", range: 0...23),
        Spec(name: "day of month", range: 1...31),
        Spec(name: "month", range: 1...12, names: monthNames),
        Spec(name: "day of week", range: 0...7, names: dayNames),
    ]

    /// Parses five fields, or six with seconds first.
    init(parsing source: String) throws(SluiceError) {
        var tokens: [(text: Substring, position: Int)] = []
        var start: String.Index?
        for index in source.indices {
            // A newline too: an expression read from a file or a heredoc often ends with one.
            if source[index] == " " || source[index] == "\t" || source[index] == "\n" || source[index] == "\r\n" || source[index] == "\r" {
                if let s = start { tokens.append((source[s..<index], source.distance(from: source.startIndex, to: s) + 1)); start = nil }
            } else if start == nil {
                start = index
            }
        }
        if let s = start { tokens.append((source[s...], source.distance(from: source.startIndex, to: s) + 1)) }
        guard tokens.count == 5 || tokens.count == 6 else {
            throw .invalid("cron", "has \(tokens.count) field\(tokens.count == 1 ? "" : "s"); write five (minute hour day-of-month month day-of-week) or six with seconds first, as in \"30 2 * * *\"")
        }
        let specs = tokens.count == 6 ? Self.specs : Array(Self.specs.dropFirst())
        var sets: [CronSet] = []
        for (token, spec) in zip(tokens, specs) {
            sets.append(try CronSet(parsing: token.text, position: token.position, spec: spec))
        }
        if tokens.count == 5 { sets.insert(CronSet(0), at: 0) }
        seconds = sets[0]; minutes = sets[1]; hours = sets[2]; daysOfMonth = sets[3]; months = sets[4]
        var week = sets[5]
        if week.contains(7) { week.insert(0) }
        week.remove(7)
        daysOfWeek = week
        runsByRealTime = tokens.dropLast(3).contains { $0.text.hasPrefix("*") }
        let dayTokens = tokens.suffix(3)
        daysOfMonthStar = dayTokens.first!.text.hasPrefix("*")
        daysOfWeekStar = dayTokens.last!.text.hasPrefix("*")
    }

    /// Whether a calendar day matches the day fields under the classic rule.
    func dayMatches(year: Int64, month: Int64, day: Int64) -> Bool {
        let ofMonth = daysOfMonth.contains(Int(day))
        let ofWeek = daysOfWeek.contains(Int(CivilDate.weekday(CivilDate.days(year: year, month: month, day: day))))
        if !daysOfMonthStar && !daysOfWeekStar { return ofMonth || ofWeek }
        return ofMonth && ofWeek
    }

    /// The first wall time at or after `wall` whose fields all match; `nil` if none within 30 years
    /// (an impossible date such as 30 February).
    func firstMatch(atOrAfter wall: Int64) -> Int64? {
        var t = CivilDate(wall: wall)
        let lastYear = t.year + 30
        while t.year <= lastYear {
            if !months.contains(Int(t.month)) {
                t.nextMonth()
                continue
            }
            if t.day > CivilDate.daysIn(year: t.year, month: t.month) || !dayMatches(year: t.year, month: t.month, day: t.day) {
                t.nextDay()
                continue
            }
            guard let hour = hours.first(atOrAfter: Int(t.hour)) else { t.nextDay(); continue }
            if hour != t.hour { t.hour = Int64(hour); t.minute = 0; t.second = 0 }
            guard let minute = minutes.first(atOrAfter: Int(t.minute)) else { t.nextHour(); continue }
            if minute != t.minute { t.minute = Int64(minute); t.second = 0 }
            guard let second = seconds.first(atOrAfter: Int(t.second)) else { t.nextMinute(); continue }
            t.second = Int64(second)
            return t.wall
        }
        return nil
    }
}

/// A set of small integers (0…63) as a bit mask.
struct CronSet: Sendable, Hashable {
    var bits: UInt64 = 0

    init(_ values: Int...) { for value in values { insert(value) } }

    func contains(_ value: Int) -> Bool { value >= 0 && value < 64 && bits & (1 << UInt64(value)) != 0 }
    mutating func insert(_ value: Int) { bits |= 1 << UInt64(value) }
    mutating func remove(_ value: Int) { bits &= ~(1 << UInt64(value)) }

    /// The smallest member at or above `value`.
    func first(atOrAfter value: Int) -> Int? {
        guard value < 64 else { return nil }
        let rest = bits >> UInt64(value)
        return rest == 0 ? nil : value + rest.trailingZeroBitCount
    }

    /// Parses one field: `*`, `5`, `1-5`, `*/15`, `10-50/10`, `5/15` (5 to the end, every 15),
    /// `MON-FRI`, and comma-separated lists of these.
    init(parsing text: Substring, position: Int, spec: CronFields.Spec) throws(SluiceError) {
        func fail(_ offset: Int, _ message: String) -> SluiceError {
            .invalid("cron", "\(spec.name) field at position \(position + offset): \(message)")
        }
        func value(_ part: Substring, at offset: Int) throws(SluiceError) -> Int {
            // Digits only: Int("+5") parses, and a cron field has no signs.
            if part.allSatisfy(\.isASCIIDigit), let number = Int(part) {
                guard spec.range.contains(number) else {
                    throw fail(offset, "\(number) is out of range \(spec.range.lowerBound)-\(spec.range.upperBound)")
                }
                return number
            }
            if let named = spec.names[part.lowercased()] { return named }
            let hint = spec.names.isEmpty ? "a number \(spec.range.lowerBound)-\(spec.range.upperBound)" : "a number \(spec.range.lowerBound)-\(spec.range.upperBound) or a name such as \(spec.name == "month" ? "JAN" : "MON")"
            throw fail(offset, part.isEmpty ? "a value is missing; expected \(hint)" : "\"\(part)\" is not \(hint)")
        }
        var offset = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            defer { offset += item.count + 1 }
            let halves = item.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let base = halves[0]
            var step = 1
            if halves.count == 2 {
                guard halves[1].allSatisfy(\.isASCIIDigit), let parsed = Int(halves[1]), parsed > 0, parsed <= spec.range.upperBound else {
                    throw fail(offset + base.count + 1, "step \"\(halves[1])\" must be a number from 1 to \(spec.range.upperBound)")
                }
                step = parsed
            }
            var low: Int, high: Int
            if base == "*" {
                (low, high) = (spec.range.lowerBound, spec.range.upperBound)
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash], at: offset)
                high = try value(base[base.index(after: dash)...], at: offset + base.distance(from: base.startIndex, to: dash) + 1)
                guard low <= high else { throw fail(offset, "range \(base) runs backwards; write the smaller value first") }
            } else {
                low = try value(base, at: offset)
                // `5/15` means from 5 to the end, every 15; a lone value is just itself.
                high = halves.count == 2 ? spec.range.upperBound : low
            }
            for member in stride(from: low, through: high, by: step) { insert(member) }
        }
    }
}

/// A wall time split into calendar fields (proleptic Gregorian), with the carries cron needs.
struct CivilDate {
    var year: Int64, month: Int64, day: Int64, hour: Int64, minute: Int64, second: Int64

    init(wall: Int64) {
        let days = wall.floorDiv(86_400)
        let rest = wall - days * 86_400
        (year, month, day) = Self.civil(days)
        hour = rest / 3600; minute = rest % 3600 / 60; second = rest % 60
    }

    var wall: Int64 { Self.days(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second }

    mutating func nextMonth() {
        day = 1; hour = 0; minute = 0; second = 0
        month += 1
        if month > 12 { month = 1; year += 1 }
    }

    mutating func nextDay() {
        hour = 0; minute = 0; second = 0
        day += 1
        if day > Self.daysIn(year: year, month: month) { nextMonth() }
    }

    mutating func nextHour() {
        minute = 0; second = 0
        hour += 1
        if hour > 23 { nextDay() }
    }

    mutating func nextMinute() {
        second = 0
        minute += 1
        if minute > 59 { nextHour() }
    }

    static func isLeap(_ year: Int64) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    static func daysIn(year: Int64, month: Int64) -> Int64 {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// 0 = Sunday; day 0 (1970-01-01) was a Thursday.
    static func weekday(_ days: Int64) -> Int64 { ((days + 4) % 7 + 7) % 7 }

    /// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The calendar date of a day count (Howard Hinnant's `civil_from_days`).
    static func civil(_ days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

/// Converts between instants and local wall times in one zone, DST included.
struct ZonedTime {
    let zone: TimeZone

    /// The zone's offset from UTC, in seconds, at `instant` (seconds since 1970 UTC).
    func offset(at instant: Int64) -> Int64 {
        Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(instant))))
    }

    /// Every instant a local wall time happens: two when the hour repeats, else one (the first
    /// instant after the gap when a change skipped it).
    func instants(forWall wall: Int64) -> [Int64] {
        let before = offset(at: wall - 172_800)
        let after = offset(at: wall + 172_800)
        let matching = Set([wall - before, wall - after]).sorted().filter { $0 + offset(at: $0) == wall }
        return matching.isEmpty ? [instant(forWall: wall)] : matching
    }

    /// The instant a local wall time happens: its first occurrence when the hour repeats, and the
    /// first instant after the gap when a change skipped it. Assumes at most one offset change
    /// within two days either side, true of every zone in the IANA database.
    func instant(forWall wall: Int64) -> Int64 {
        let before = offset(at: wall - 172_800)
        let after = offset(at: wall + 172_800)
        let candidates = Set([wall - before, wall - after]).sorted()
        if let first = candidates.first(where: { $0 + offset(at: $0) == wall }) { return first }
        // In a gap: the transition is between (wall - after) and (wall - before); find its
        // first instant on the new offset.
        var low = wall - max(before, after), high = wall - min(before, after)
        let lowOffset = offset(at: low)
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if offset(at: middle) == lowOffset { low = middle } else { high = middle }
        }
        return high
    }
}

extension Character {
    /// 0 to 9, and nothing else Unicode calls a digit.
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
