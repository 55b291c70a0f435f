import Foundation
import SluiceCore
import Testing

/// A UTC instant from `2026-03-29T01:00:00Z`.
func at(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.date(from: text)!
}

func iso(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.string(from: date)
}

/// The next `count` fire times of `expression` after `from`, as UTC ISO 8601 strings.
func fires(_ expression: String, zone: String = "UTC", from: String, count: Int = 3) throws -> [String] {
    let cron = try CronExpression(expression)
    return cron.next(count, after: at(from), in: TimeZone(identifier: zone)!).map(iso)
}

@Suite(.timeLimit(.minutes(4))) struct CronExpressionTests {
    @Test func fiveFieldsFireAtTheirMinute() throws {
        #expect(try fires("30 2 * * *", from: "2026-01-01T00:00:00Z")
            == ["2026-01-01T02:30:00Z", "2026-01-02T02:30:00Z", "2026-01-03T02:30:00Z"])
        // Strictly after: a time that is itself a slot is not returned.
        #expect(try fires("30 2 * * *", from: "2026-01-01T02:30:00Z", count: 1) == ["2026-01-02T02:30:00Z"])
    }

    @Test func aLeadingSecondsFieldCounts() throws {
        #expect(try fires("*/20 * * * * *", from: "2026-01-01T00:00:05Z") == ["2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z"])
        #expect(try fires("15 30 2 * * *", from: "2026-01-01T00:00:00Z", count: 1) == ["2026-01-01T02:30:15Z"])
    }

    @Test func listsRangesStepsAndNames() throws {
        // 2026-01-02 is a Friday.
        #expect(try fires("0 9-17/4 * * MON-FRI", from: "2026-01-02T10:00:00Z", count: 4)
            == ["2026-01-02T13:00:00Z", "2026-01-02T17:00:00Z", "2026-01-05T09:00:00Z", "2026-01-05T13:00:00Z"])
        #expect(try fires("5,10 0 1 jan,Jul *", from: "2026-01-01T00:06:00Z", count: 3)
            == ["2026-01-01T00:10:00Z", "2026-07-01T00:05:00Z", "2026-07-01T00:10:00Z"])
        #expect(try fires("50/5 * * * *", from: "2026-01-01T00:00:00Z", count: 3)
            == ["2026-01-01T00:50:00Z", "2026-01-01T00:55:00Z", "2026-01-01T01:50:00Z"])
        // 7 is Sunday too; 2026-01-04 is a Sunday.
        #expect(try fires("0 0 * * 7", from: "2026-01-01T00:00:00Z", count: 1) == ["2026-01-04T00:00:00Z"])
        #expect(try fires("0 0 * * 5-7", from: "2026-01-01T00:00:00Z", count: 3)
            == ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"])
    }

    @Test func restrictedDayOfMonthAndDayOfWeekMatchEither() throws {
        // The 13th or any Friday: Friday 2, Friday 9, Tuesday 13, Friday 16.
        #expect(try fires("0 0 13 * FRI", from: "2026-01-01T00:00:00Z", count: 4)
            == ["2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z", "2026-01-16T00:00:00Z"])
        // A day-of-week starting with * leaves the day of month alone in charge.
        #expect(try fires("0 0 13 * *", from: "2026-01-01T00:00:00Z", count: 2) == ["2026-01-13T00:00:00Z", "2026-02-13T00:00:00Z"])
        #expect(try fires("0 0 * * FRI", from: "2026-01-01T00:00:00Z", count: 2) == ["2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z"])
    }

    @Test func monthEndsAnd29February() throws {
        #expect(try fires("0 0 31 * *", from: "2026-01-31T00:00:00Z", count: 3)
            == ["2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z"])
        #expect(try fires("0 12 29 2 *", from: "2026-01-01T00:00:00Z", count: 2) == ["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"])
        // 2100 is not a leap year.
        #expect(try fires("0 0 29 2 *", from: "2096-03-01T00:00:00Z", count: 1) == ["2104-02-29T00:00:00Z"])
        #expect(try fires("0 0 30 2 *", from: "2026-01-01T00:00:00Z", count: 1) == [])
        // The last day of February in a leap year, by name and zone.
        #expect(try fires("0 9 28-29 FEB *", zone: "Asia/Tokyo", from: "2028-02-01T00:00:00Z", count: 2)
            == ["2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z"])
    }

    @Test func macros() throws {
        #expect(try fires("@daily", from: "2026-01-01T10:00:00Z", count: 1) == ["2026-01-02T00:00:00Z"])
        #expect(try fires("@midnight", from: "2026-01-01T10:00:00Z", count: 1) == ["2026-01-02T00:00:00Z"])
        #expect(try fires("@hourly", from: "2026-01-01T10:00:00Z", count: 1) == ["2026-01-01T11:00:00Z"])
        #expect(try fires("@weekly", from: "2026-01-01T10:00:00Z", count: 1) == ["2026-01-04T00:00:00Z"])
        #expect(try fires("@monthly", from: "2026-01-01T10:00:00Z", count: 1) == ["2026-02-01T00:00:00Z"])
        #expect(try fires("@yearly", from: "2026-01-01T10:00:00Z", count: 1) == ["2027-01-01T00:00:00Z"])
        #expect(try fires("@annually", from: "2026-01-01T10:00:00Z", count: 1) == ["2027-01-01T00:00:00Z"])
        #expect(try fires("@daily", zone: "Europe/Paris", from: "2026-01-01T10:00:00Z", count: 1) == ["2026-01-01T23:00:00Z"])
    }

    @Test func everyIsAlignedToTheEpochWhateverTheZone() throws {
        #expect(try fires("@every 30s", from: "2026-01-01T10:00:10Z") == ["2026-01-01T10:00:30Z", "2026-01-01T10:01:00Z", "2026-01-01T10:01:30Z"])
        #expect(try fires("@every 1h30m", zone: "America/New_York", from: "2026-01-01T00:10:00Z", count: 2)
            == ["2026-01-01T01:30:00Z", "2026-01-01T03:00:00Z"])
        #expect(try fires("@every 1d", from: "2026-01-01T00:00:00Z", count: 1) == ["2026-01-02T00:00:00Z"])
        // A zero part, as Go writes durations (1h0m0s), and a newline at the end (a file's) are fine.
        #expect(try fires("@every 1h0m", from: "2026-01-01T00:00:00Z", count: 1) == ["2026-01-01T01:00:00Z"])
        #expect(try fires("30 2 * * *\n", from: "2026-01-01T00:00:00Z", count: 1) == ["2026-01-01T02:30:00Z"])
        #expect(try fires("@daily\n", from: "2026-01-01T00:00:00Z", count: 1) == ["2026-01-02T00:00:00Z"])
    }

    // Europe/Paris springs forward on 2026-03-29 at 02:00 CET (01:00Z) to 03:00 CEST.
    @Test func parisSpringGapFiresOnceAtTheFirstInstantAfterIt() throws {
        #expect(try fires("30 2 * * *", zone: "Europe/Paris", from: "2026-03-28T00:00:00Z")
            == ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"])
        // Four skipped quarter hours and 03:00 itself all fall on 01:00Z: one fire.
        #expect(try fires("*/15 * * * *", zone: "Europe/Paris", from: "2026-03-29T00:30:00Z", count: 3)
            == ["2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z"])
    }

    // Europe/Paris falls back on 2026-10-25 at 03:00 CEST (01:00Z) to 02:00 CET: 02:xx happens twice.
    @Test func parisAutumnRepeatedHourFiresOnceAtSetHoursAndByRealTimeHourly() throws {
        #expect(try fires("30 2 * * *", zone: "Europe/Paris", from: "2026-10-24T12:00:00Z")
            == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"])
        // From inside the second pass, the repeated 02:30 is not due again.
        #expect(try fires("30 2 * * *", zone: "Europe/Paris", from: "2026-10-25T01:10:00Z", count: 1) == ["2026-10-26T01:30:00Z"])
        // An hourly job fires every hour the clock goes through, 02:00 CEST and 02:00 CET alike,
        // as cronie runs it; so do @hourly and */15, with no 75-minute hole.
        for hourly in ["0 * * * *", "@hourly"] {
            #expect(try fires(hourly, zone: "Europe/Paris", from: "2026-10-24T23:30:00Z", count: 4)
                == ["2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"])
        }
        #expect(try fires("*/15 * * * *", zone: "Europe/Paris", from: "2026-10-25T00:40:00Z", count: 6)
            == ["2026-10-25T00:45:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:15:00Z", "2026-10-25T01:30:00Z",
                "2026-10-25T01:45:00Z", "2026-10-25T02:00:00Z"])
        // From inside either pass, the next quarter hour is the next in real time.
        #expect(try fires("*/15 * * * *", zone: "Europe/Paris", from: "2026-10-25T00:50:00Z", count: 1) == ["2026-10-25T01:00:00Z"])
        #expect(try fires("*/15 * * * *", zone: "Europe/Paris", from: "2026-10-25T01:20:00Z", count: 1) == ["2026-10-25T01:30:00Z"])
        // Set minutes in every hour (hour field *) and a step of hours count as hourly too.
        #expect(try fires("10 */2 * * *", zone: "Europe/Paris", from: "2026-10-25T00:00:00Z", count: 2)
            == ["2026-10-25T00:10:00Z", "2026-10-25T01:10:00Z"])
        // A wildcard minute at a set hour runs by real time too, as in cronie.
        #expect(try fires("*/30 2 * * *", zone: "Europe/Paris", from: "2026-10-24T12:00:00Z", count: 4)
            == ["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z"])
        // Every quarter hour of the night in real time, from before the change to after it: no gap, none twice.
        let night = try fires("*/15 * * * *", zone: "Europe/Paris", from: "2026-10-24T23:50:00Z", count: 12)
        let quarters = (1...12).map { iso(at("2026-10-24T23:45:00Z").addingTimeInterval(Double($0 * 900))) }
        #expect(night == quarters, "\(night)")
    }

    // America/New_York: 02:00 EST → 03:00 EDT on 2026-03-08 (07:00Z); 02:00 EDT → 01:00 EST on 2026-11-01 (06:00Z).
    @Test func newYorkSpringAndAutumn() throws {
        #expect(try fires("30 2 * * *", zone: "America/New_York", from: "2026-03-07T12:00:00Z")
            == ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"])
        #expect(try fires("30 1 * * *", zone: "America/New_York", from: "2026-10-31T12:00:00Z")
            == ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"])
        #expect(try fires("0,30 * * * *", zone: "America/New_York", from: "2026-11-01T05:00:00Z", count: 4)
            == ["2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"])
    }

    // Australia/Sydney (southern hemisphere): 02:00 AEST → 03:00 AEDT on 2026-10-04 (16:00Z on the 3rd).
    @Test func sydneySpring() throws {
        #expect(try fires("15 2 * * *", zone: "Australia/Sydney", from: "2026-10-02T12:00:00Z", count: 3)
            == ["2026-10-02T16:15:00Z", "2026-10-03T16:00:00Z", "2026-10-04T15:15:00Z"])
    }

    @Test(arguments: [
        ("61 * * * *", "minute field at position 1: 61 is out of range 0-59"),
        ("* * 32 * *", "day of month field at position 5: 32 is out of range 1-31"),
        ("0 0 * * FOO", "day of week field at position 9: \"FOO\" is not a number 0-7 or a name such as MON"),
        ("0 0 * JAN-XYZ *", "month field at position 11: \"XYZ\" is not"),
        ("*/0 * * * *", "minute field at position 3: step \"0\" must be"),
        ("5-1 * * * *", "minute field at position 1: range 5-1 runs backwards"),
        ("1,,2 * * * *", "minute field at position 3: a value is missing"),
        ("* * *", "has 3 fields"),
        ("", "is empty"),
        ("@weekly 5", "at position 1: @weekly takes no fields"),
        ("@fortnightly", "unknown macro @fortnightly"),
        ("@every 10x", "at position 10: \"x\" is not a unit"),
        ("@every 10", "needs a unit"),
        ("@every 400d", "longer than 366 days"),
        ("@every 999999999999999999m", "longer than 366 days"),
        ("@every 99999999999999999999999s", "longer than 366 days"),
        ("@every 200d200d", "longer than 366 days"),
        ("@every 0s", "needs an interval longer than 0"),
        ("@every 0h0m", "needs an interval longer than 0"),
        ("@every h", "a unit needs a number before it"),
        ("0 0 0 * * * *", "has 7 fields"),
        ("60 * * * * *", "second field at position 1: 60 is out of range 0-59"),
    ])
    func badExpressionsNameTheFieldAndPosition(expression: String, message: String) {
        do {
            _ = try CronExpression(expression)
            Issue.record("\(expression) was accepted")
        } catch {
            #expect(error.field == "cron")
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains(message), "\(error.message)")
        }
    }
}
