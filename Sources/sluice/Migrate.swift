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
            // Opening the store is what migrates: the same refusals, pragmas and order as every command.
            guard let report = try SQLiteTaskStore(SQLiteStoreConfiguration(path: db)).migration else { return }
            if report.applied.isEmpty {
                print("\(db): schema is up to date at version \(report.to)")
            } else {
                print("\(db): applied \(report.applied.joined(separator: ", ")); schema now at version \(report.to)")
            }
        } catch {
            throw failure(error.message)
        }
    }
}
