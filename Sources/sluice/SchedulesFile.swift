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
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw SluiceError(.invalidArgument, "--schedules \(path):\(error.source.begin.line):\(error.source.begin.column): \(error.description)", field: "schedules")
        } catch {
            throw SluiceError(.invalidArgument, "--schedules \(path): \(error)", field: "schedules")
        }
        // TOML has nan and inf; JSON, and so a schedule's fields, has neither.
        guard let json = try? JSONValue(parsing: Data(table.convert(to: .json).utf8)) else {
            throw SluiceError(.invalidArgument, "--schedules \(path): a value is nan or inf, which no field takes; give finite numbers", field: "schedules")
        }
        guard let top = json.objectValue, Set(top.keys).isSubset(of: ["schedules"]) else {
            throw SluiceError(.invalidArgument, "--schedules \(path): put each schedule in a table [schedules.NAME]; found \(json.objectValue?.keys.sorted().joined(separator: ", ") ?? "no tables")", field: "schedules")
        }
        guard let entry = top["schedules"] else {
            definitions = []  // a file with no schedules yet
            return
        }
        guard let tables = entry.objectValue else {
            throw SluiceError(.invalidArgument, "--schedules \(path): schedules must hold tables [schedules.NAME], not a value", field: "schedules")
        }
        var definitions: [ScheduleDefinition] = []
        for name in tables.keys.sorted() {
            guard tables[name]?.objectValue != nil else {
                throw SluiceError(.invalidArgument, "--schedules \(path): schedules.\(name) must be a table [schedules.\(name)], not a value", field: "schedules")
            }
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
