import ArgumentParser
import Foundation

/// The `sluice` command: a background-task queue on one SQLite file.
@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A background-task queue: durable tasks in SQLite, worker pools you can see and resize.",
        subcommands: [ServeCommand.self, WorkerCommand.self, EnqueueCommand.self, StatusCommand.self, TasksCommand.self, CancelCommand.self, RetryCommand.self, DeleteCommand.self, BulkCommand.self, QueuesCommand.self, PoolsCommand.self, SchedulesCommand.self, CronCommand.self, Migrate.self]
    )

    /// ArgumentParser's own main, except that a command line it cannot read is refused like every
    /// other error: one line on standard error starting `error:` (its four-line block of message,
    /// help, usage and hint would be the only exception), with the exit status it has always had,
    /// 64 (EX_USAGE). Help, `--version` and the commands' own failures are left as they are.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand { try await command.run() } else { try command.run() }
        } catch {
            guard exitCode(for: error) == .validationFailure else { exit(withError: error) }
            let full = fullMessage(for: error)
            // "See 'sluice enqueue --help' for more information." becomes "(see `sluice enqueue --help`)".
            let command = full.split(separator: "\n").first { $0.contains("See '") }?.split(separator: "'").dropFirst().first
            let line = message(for: error).split(separator: "\n").first.map(String.init) ?? "cannot read the command line"
            FileHandle.standardError.write(Data("error: \(line)\(command.map { " (see `\($0)`)" } ?? "")\n".utf8))
            exit(withError: ExitCode.validationFailure)
        }
    }
}
