import ArgumentParser
import Foundation
import SluiceCore
import SluicePostgres
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

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        do {
            // Opening the store is what migrates: the same refusals, pragmas and order as every command.
            let (applied, version, location): ([String], Int, String)
            switch try database.target() {
            case .sqlite(let path):
                try checkDatabasePath(path)
                guard let report = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path)).migration else { return }
                (applied, version, location) = (report.applied, report.to, path)
            case .postgres(let configuration):
                (applied, version, location) = try await PostgresTaskStore.withStore(configuration) { store in
                    (store.migration?.applied ?? [], store.migration?.to ?? 0, store.location)
                }
            }
            if applied.isEmpty {
                print("\(location): schema is up to date at version \(version)")
            } else {
                print("\(location): applied \(applied.joined(separator: ", ")); schema now at version \(version)")
            }
        } catch let error as SluiceError {
            throw failure(error.message)
        }
    }
}
