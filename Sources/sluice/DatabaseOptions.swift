import ArgumentParser
import Foundation
import Logging
import SluiceCore
import SluicePool
import SluicePostgres
import SluiceSQLite

/// Where a command keeps its tasks: `--database URL` (PostgreSQL, or `sqlite:PATH`) or `--db PATH`
/// (SQLite). Flags win over the environment (SLUICE_DATABASE_URL, SLUICE_DB); ./sluice.db by default.
struct DatabaseOptions: ParsableArguments {
    @Option(help: "Path of the SQLite database file (SLUICE_DB; default ./sluice.db).")
    var db: String?

    @Option(name: .customLong("database"), help: ArgumentHelp(
        "postgres://USER:PASSWORD@HOST:PORT/DATABASE (a unix socket: postgres://USER@/DATABASE?host=/run/postgresql) or sqlite:PATH (SLUICE_DATABASE_URL).",
        valueName: "url"))
    var database: String?

    @Flag(help: "PostgreSQL, for PgBouncer in transaction mode: no LISTEN connection (serve and worker poll every 50 ms instead), no prepared statements, no session settings at login. SQLite ignores it.")
    var pollOnly = false

    /// The store these options name.
    enum Target {
        case sqlite(String)
        case postgres(PostgresStoreConfiguration)
    }

    func target(environment: [String: String] = ProcessInfo.processInfo.environment) throws(SluiceError) -> Target {
        if db != nil && database != nil {
            throw SluiceError(.invalidArgument, "give --db PATH or --database URL, not both", field: "database")
        }
        if let db { return .sqlite(db) }
        if let url = database ?? environment["SLUICE_DATABASE_URL"].flatMap({ $0.isEmpty ? nil : $0 }) {
            let flag = database != nil ? "--database" : "SLUICE_DATABASE_URL"
            if url.hasPrefix("sqlite://") {
                // Conventions differ on how many slashes make a path absolute; a guess could put the
                // file at / (sqlite://m.db read as //m.db). One form only.
                throw SluiceError(.invalidArgument, "\(flag) \(url): write sqlite:PATH, e.g. sqlite:tasks.db or sqlite:/var/lib/sluice/tasks.db", field: "database")
            }
            if url.hasPrefix("sqlite:") {
                let path = String(url.dropFirst("sqlite:".count))
                guard !path.isEmpty else { throw SluiceError(.invalidArgument, "\(flag) \(url): give a path after sqlite:", field: "database") }
                return .sqlite(path)
            }
            guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") else {
                throw SluiceError(.invalidArgument, "\(flag) \(url.prefix(80)): expected postgres://USER:PASSWORD@HOST:PORT/DATABASE or sqlite:PATH", field: "database")
            }
            do {
                var configuration = try PostgresStoreConfiguration(url: url)
                configuration.listen = !pollOnly
                return .postgres(configuration)
            } catch {
                throw error.context(flag)
            }
        }
        return .sqlite(environment["SLUICE_DB"].flatMap { $0.isEmpty ? nil : $0 } ?? "./sluice.db")
    }
}

/// Opens the store `target` names for the length of `body`: a SQLite file, or a PostgreSQL pool that
/// runs until `body` returns. `body` gets the store and a description of where it is. Lock waits
/// are at most a third of the lease (10 s at most), so that a heartbeat stuck behind a lock can
/// never outlast the lease it renews.
func withStore<T: Sendable>(_ target: DatabaseOptions.Target, sync: GivenSetting, lease: Duration, logger: Logger,
                            _ body: (any Worker.Store, String) async throws -> T) async throws -> T {
    switch target {
    case .sqlite(let path):
        return try await body(try openStore(path, sync: sync, lease: lease), path)
    case .postgres(var configuration):
        configuration.lockTimeout = min(configuration.lockTimeout, lease / 3)
        return try await PostgresTaskStore.withStore(configuration, logger: logger) { store in
            try await body(store, store.location)
        }
    }
}
