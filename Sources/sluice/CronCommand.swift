import ArgumentParser
import Foundation
import SluiceCore

/// `sluice cron`: check a cron expression before trusting a schedule to it.
struct CronCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cron", abstract: "Check cron expressions.", subcommands: [CronNextCommand.self],
        defaultSubcommand: CronNextCommand.self)
}

/// `sluice cron next 'EXPR'`: the next fire times, as a schedule with that expression would fire.
struct CronNextCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "next", abstract: "Print the next fire times of a cron expression.",
        discussion: """
            Prints each time in the zone (with its offset) and in UTC. Five fields (minute hour \
            day-of-month month day-of-week), or six with seconds first; @hourly, @daily, @weekly, \
            @monthly, @yearly; @every 30s. See docs/SCHEDULES.md.
            Example: sluice cron next '30 2 * * *' --tz Europe/Paris --from 2026-03-28T00:00:00Z
            """)

    @Argument(help: "The expression, quoted: '30 2 * * *'.") var expression: String
    @Option(help: "IANA time zone the expression's times are in (default UTC).") var tz = "UTC"
    @Option(help: "Start after this ISO 8601 time, e.g. 2026-03-28T00:00:00Z (default now).") var from: String?
    @Option(help: "How many fire times to print (1…1000).") var count = 5

    func run() async throws {
        do {
            let cron = try CronExpression(expression)
            let zone = try CronExpression.zone(named: tz, field: "--tz")
            guard (1...1000).contains(count) else { throw failure("--count \(count): must be between 1 and 1000") }
            var start = Date()
            if let from {
                guard let parsed = ISO8601DateFormatter().date(from: from) else {
                    throw failure("--from \(from): expected an ISO 8601 time such as 2026-03-28T00:00:00Z")
                }
                start = parsed
            }
            let times = cron.next(count, after: start, in: zone)
            if times.isEmpty { print("\(expression) never fires after \(ISO8601DateFormatter().string(from: start))") }
            let utc = ISO8601DateFormatter()
            for time in times { print(tz == "UTC" ? utc.string(from: time) : "\(Self.local(time, in: zone))  \(utc.string(from: time))") }
        } catch let error as SluiceError {
            throw failure(error.message)
        }
    }

    /// `time` as the zone's wall clock with its offset, from the offset the cron engine uses
    /// (`secondsFromGMT(for:)`): Foundation's formatter read EST as New York, summer time and all.
    static func local(_ time: Date, in zone: TimeZone) -> String {
        let offset = zone.secondsFromGMT(for: time)
        let wall = ISO8601DateFormatter()
        wall.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withDashSeparatorInDate]
        let sign = offset < 0 ? "-" : "+"
        let minutes = abs(offset) / 60
        return wall.string(from: time.addingTimeInterval(Double(offset))) + sign + String(format: "%02d:%02d", minutes / 60, minutes % 60)
    }
}
