import Foundation
import SluiceCore
import SluiceHTTP
import SluiceStore
import TOMLKit

/// A declarative schedules file (`sluice serve --schedules FILE.toml`): one table per schedule,
/// named after it, with the fields of `POST /v1/schedules`:
///
///     [schedules.nightly-report]
///     cron = "30 2 * * *"
///     timezone = "Europe/Paris"
///     task = { kind = "echo", args = { to = "ops" } }
///
/// Read and checked whole before the server starts; applied after the store opens: schedules in
/// the file are created or updated, others (made through the API) stay.
struct SchedulesFile {
    let path: String
    let definitions: [ScheduleDefinition]

    /// Reads and checks every schedule; an error names the file, the line or the field.
    init(path: String) throws(SluiceError) {
        self.path = path
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw SluiceError(.invalidArgument, "--schedules \(path): cannot read it (\(error.localizedDescription))", field: "schedules")
        }
        let json: JSONValue
        do {
            let table = try TOMLTable(string: text)
            json = try JSONValue(parsing: Data(table.convert(to: .json).utf8))
        } catch let error as TOMLParseError {
            throw SluiceError(.invalidArgument, "--schedules \(path):\(error.source.begin.line):\(error.source.begin.column): \(error.description)", field: "schedules")
        } catch {
            throw SluiceError(.invalidArgument, "--schedules \(path): \(error)", field: "schedules")
        }
        guard let top = json.objectValue, Set(top.keys).isSubset(of: ["schedules"]) else {
            throw SluiceError(.invalidArgument, "--schedules \(path): put each schedule in a table [schedules.NAME]; found \(json.objectValue?.keys.sorted().joined(separator: ", ") ?? "no tables")", field: "schedules")
        }
        guard let tables = top["schedules"]?.objectValue else {
            definitions = []
            return
        }
        var definitions: [ScheduleDefinition] = []
        for name in tables.keys.sorted() {
            do {
                definitions.append(try ScheduleJSON.parse(tables[name]!, name: name))
            } catch {
                throw SluiceError(.invalidArgument, "--schedules \(path): [schedules.\(name)] \(error.message)", field: "schedules")
            }
        }
        self.definitions = definitions
    }

    /// Creates or updates each schedule; returns one line per schedule saying what changed.
    func apply(to store: any ScheduleStore) async throws -> [String] {
        var lines: [String] = []
        for definition in definitions {
            let (schedule, change) = try await store.saveSchedule(definition)
            lines.append("schedule \(schedule.name): \(change.rawValue) (\(schedule.definition.cron.source), \(schedule.definition.timeZone))")
        }
        return lines
    }
}
