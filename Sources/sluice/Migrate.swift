import ArgumentParser
import Foundation
import SluiceCore
import SluiceSQLite

/// `sluice migrate`: create or upgrade a database's schema.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or upgrade the schema of a Sluice database.",
        discussion: """
            Applies the migrations embedded in this binary that the database lacks, each in its own \
            transaction. Running it again changes nothing. A database from a newer Sluice, or a file \
            that is not a Sluice database, is refused and left untouched.
            """
    )

    @Option(name: .long, help: "Path of the SQLite database file (created when missing).")
    var db: String = "./sluice.db"

    func run() async throws {
        do {
            let connection = try SQLiteConnection(path: db)
            try connection.execute("PRAGMA busy_timeout = 10000")
            let migrator = try Migrator()
            _ = try migrator.check(connection)
            try connection.execute("PRAGMA journal_mode = WAL")
            let report = try migrator.migrate(connection, now: SystemClock().now())
            if report.applied.isEmpty {
                print("\(db): schema is up to date at version \(report.to)")
            } else {
                print("\(db): applied \(report.applied.joined(separator: ", ")); schema now at version \(report.to)")
            }
        } catch let error as SluiceError {
            throw failure(error.message)
        } catch let error as SQLiteError {
            throw failure(error.description)
        }
    }
}
