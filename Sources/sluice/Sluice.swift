import ArgumentParser

/// The `sluice` command: a background-task queue on one SQLite file.
@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A background-task queue: durable tasks in SQLite, worker pools you can see and resize.",
        subcommands: [ServeCommand.self, WorkerCommand.self, EnqueueCommand.self, StatusCommand.self, TasksCommand.self, CancelCommand.self, RetryCommand.self, DeleteCommand.self, BulkCommand.self, QueuesCommand.self, PoolsCommand.self, SchedulesCommand.self, CronCommand.self, Migrate.self]
    )
}
