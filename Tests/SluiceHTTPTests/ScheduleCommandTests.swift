import Foundation
import SluiceTestSupport
import Testing

/// `sluice cron next` and `sluice serve --schedules`, run as a user runs them.
@Suite(.timeLimit(.minutes(4))) struct ScheduleCommandTests {
    static func output(_ arguments: [String], in directory: String) async throws -> (Int32, String, String) {
        try await CommandLineTests.start(arguments, in: directory).finish()
    }

    @Test func cronNextPrintsLocalAndUTCTimesAcrossASpringChange() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (status, text, _) = try await Self.output(["cron", "next", "30 2 * * *", "--tz", "Europe/Paris", "--from", "2026-03-28T00:00:00Z", "--count", "2"], in: dir.url.path)
        #expect(status == 0)
        #expect(text == "2026-03-28T02:30:00+01:00  2026-03-28T01:30:00Z\n2026-03-29T03:00:00+02:00  2026-03-29T01:00:00Z\n")
        // EST is the zone of a fixed -05:00 (IANA has it); it was printed as New York's summer time.
        let est = try await Self.output(["cron", "next", "0 12 * * *", "--tz", "EST", "--from", "2026-07-01T00:00:00Z", "--count", "1"], in: dir.url.path)
        #expect(est.1 == "2026-07-01T12:00:00-05:00  2026-07-01T17:00:00Z\n", "\(est)")
    }

    @Test func cronAloneIsCronNextAndWithoutAnExpressionFails() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (status, text, _) = try await Self.output(["cron", "0 3 * * *", "--from", "2026-03-28T00:00:00Z", "--count", "1"], in: dir.url.path)
        #expect(status == 0 && text == "2026-03-28T03:00:00Z\n", "\(text)")
        let (missing, _, error) = try await Self.output(["cron"], in: dir.url.path)
        #expect(missing != 0 && error.contains("<expression>"), "\(error)")
    }

    @Test(arguments: [
        (["cron", "next", "* * 32 * *"], "cron: day of month field at position 5: 32 is out of range 1-31"),
        (["cron", "next", "@daily", "--tz", "Mars/Olympus"], "--tz: \"Mars/Olympus\" is not an IANA time zone"),
        (["cron", "next", "0 0 +5 * *"], "cron: day of month field at position 5: \"+5\" is not a number 1-31"),
        (["cron", "next", "@daily", "--from", "yesterday"], "--from yesterday: expected an ISO 8601 time"),
    ])
    func badCronInputIsOneLineAndExit1(arguments: [String], message: String) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (status, _, error) = try await Self.output(arguments, in: dir.url.path)
        #expect(status == 1)
        #expect(error.contains(message), "\(error)")
    }

    @Test func aBadSchedulesFileStopsServeBeforeItStarts() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try "[schedules.report]\ncron = \"61 * * * *\"\ntask = { kind = \"echo\" }\n".write(toFile: dir.path("bad.toml"), atomically: true, encoding: .utf8)
        try "[schedules.report\n".write(toFile: dir.path("broken.toml"), atomically: true, encoding: .utf8)
        let (status, _, error) = try await Self.output(["serve", "--port", "0", "--schedules", "bad.toml"], in: dir.url.path)
        #expect(status == 1 && error.contains("--schedules bad.toml: [schedules.report] cron: minute field at position 1"), "\(error)")
        let (broken, _, parse) = try await Self.output(["serve", "--port", "0", "--schedules", "broken.toml"], in: dir.url.path)
        #expect(broken == 1 && parse.contains("--schedules broken.toml:1:"), "\(parse)")
        // Files TOML reads but a schedule cannot: each names what is wrong.
        for (text, message) in [("schedules = 5\n", "schedules must hold tables [schedules.NAME], not a value"),
                                ("[schedules]\na = 5\n", "schedules.a must be a table [schedules.a], not a value"),
                                ("[schedules.r]\ncron = \"@daily\"\ntask = { kind = \"echo\", timeout = nan }\n", "a value is nan or inf")] {
            try text.write(toFile: dir.path("odd.toml"), atomically: true, encoding: .utf8)
            let (odd, _, said) = try await Self.output(["serve", "--port", "0", "--schedules", "odd.toml"], in: dir.url.path)
            #expect(odd == 1 && said.contains("--schedules odd.toml: \(message)"), "\(text): \(said)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path("sluice.db")), "refused before the store opened")
    }
}
