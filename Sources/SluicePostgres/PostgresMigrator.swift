import Foundation
import Logging
import PostgresNIO
import SluiceCore
import SluiceStore

extension Migration {
    /// The file's statements one by one: postgres-nio speaks only the extended protocol, which
    /// takes one statement at a time. Splits at `;` outside quotes, identifiers, comments and
    /// dollar-quoted bodies; comments are dropped.
    public var statements: [String] {
        var statements: [String] = []
        var current = ""
        var characters = Array(sql)[...]
        func flush() {
            let statement = current.trimmingCharacters(in: .whitespacesAndNewlines)
            if !statement.isEmpty { statements.append(statement) }
            current = ""
        }
        while let c = characters.first {
            characters = characters.dropFirst()
            switch c {
            case "-" where characters.first == "-":
                while let n = characters.first, n != "\n" { characters = characters.dropFirst() }
            case "'", "\"":
                current.append(c)
                while let n = characters.first {
                    characters = characters.dropFirst()
                    current.append(n)
                    if n == c { break }
                }
            case "$":
                // A dollar quote: $tag$ … $tag$.
                let tag = characters.prefix { $0 != "$" && ($0.isLetter || $0.isNumber || $0 == "_") }
                guard characters.dropFirst(tag.count).first == "$" else { current.append(c); continue }
                let delimiter = "$" + String(tag) + "$"
                characters = characters.dropFirst(tag.count + 1)
                current += delimiter
                let rest = String(characters)
                if let end = rest.range(of: delimiter) {
                    current += rest[..<end.upperBound]
                    characters = characters.dropFirst(rest.distance(from: rest.startIndex, to: end.upperBound))
                } else {
                    current += rest
                    characters = []
                }
            case ";":
                flush()
            default:
                current.append(c)
            }
        }
        flush()
        return statements
    }
}

/// Applies PostgreSQL migrations in order, each in its own transaction together with its version
/// row, under a transaction-scoped advisory lock (two processes starting at once apply each
/// migration once); refuses a schema newer than this binary or built from edited migrations.
public struct PostgresMigrator: Sendable {
    public let migrations: [Migration]

    /// Checks the list: versions must run 1, 2, 3… with no gap or duplicate.
    public init(migrations: [Migration] = Migration.postgres) throws(SluiceError) {
        for (index, migration) in migrations.enumerated() where migration.version != index + 1 {
            throw SluiceError(.incompatibleDatabase,
                "migration \(migration.name) should be version \(index + 1): migrations must be numbered 0001, 0002… without gaps or duplicates")
        }
        self.migrations = migrations
    }

    /// The newest version this binary knows.
    public var latestVersion: Int { migrations.count }

    /// What `migrate` did.
    public struct Report: Sendable, Hashable {
        public var from: Int
        public var to: Int
        public var applied: [String]
    }

    /// The schema version in the connection's schema (0 when Sluice has no tables there), refusing
    /// a schema whose `tasks` table is not Sluice's.
    func currentVersion(_ connection: PostgresConnection, place: String, logger: Logger) async throws -> Int {
        let row = try await connection.query(SQL.tables, logger: logger).collect().first!.makeRandomAccess()
        let hasMigrations = try row[0].decode(Bool.self), hasTasks = try row[1].decode(Bool.self)
        guard hasMigrations else {
            if hasTasks {
                throw SluiceError(.incompatibleDatabase,
                    "\(place) already has a table named tasks that Sluice did not make (no sluice_migrations); Sluice will not modify it: use another schema (?search_path= in the URL)")
            }
            return 0
        }
        return try await connection.query(SQL.version, logger: logger).collect().first!.makeRandomAccess()[0].decode(Int.self)
    }

    /// The current version, after refusing a schema newer than this binary knows or built from
    /// migrations whose text differs from this binary's.
    public func check(_ connection: PostgresConnection, place: String, logger: Logger) async throws -> Int {
        let version = try await currentVersion(connection, place: place, logger: logger)
        guard version <= latestVersion else {
            throw SluiceError(.incompatibleDatabase,
                "\(place) has schema version \(version) but this sluice knows only up to \(latestVersion); upgrade sluice (the database was left untouched)")
        }
        guard version > 0 else { return 0 }
        for row in try await connection.query(SQL.checksums, logger: logger).collect() {
            let (applied, checksum) = try row.decode((Int, String).self)
            guard applied >= 1 && applied <= migrations.count else { continue }
            let known = migrations[applied - 1]
            guard known.checksum == checksum else {
                throw SluiceError(.incompatibleDatabase,
                    "\(place): migration \(known.name) was applied with other text (checksum \(checksum), this sluice's is \(known.checksum)); a migration must never be edited once released. The database was left untouched")
            }
        }
        return version
    }

    /// Brings the schema up to `latestVersion`. Running it again changes nothing; a schema newer
    /// than this binary is refused untouched. `schema`, when given, is created if missing.
    /// `now` is the time to record (`nil`: the database's).
    @discardableResult
    public func migrate(_ connection: PostgresConnection, place: String, schema: String?, now: Date?, logger: Logger) async throws -> Report {
        let start = try await check(connection, place: place, logger: logger)
        var applied: [String] = []
        for migration in migrations where migration.version > start {
            do {
                try await connection.query("BEGIN", logger: logger)
                // A migration may wait as long as it takes for another process's, and take as long
                // as it needs (an index on a large table): no lock or statement timeout.
                try await connection.query("SET LOCAL lock_timeout = 0", logger: logger)
                try await connection.query("SET LOCAL statement_timeout = 0", logger: logger)
                // Held until COMMIT: a second process starting now waits here, then finds the
                // migration applied and skips it.
                try await connection.query(PostgresQuery(unsafeSQL: SQL.lock, binds: try Binds("sluice migrations \(schema ?? "(default schema)")").bindings), logger: logger)
                // The catalog as the other process left it: this transaction began before that
                // process committed, and the lookups below (to_regclass, CREATE … IF NOT EXISTS)
                // take no lock, so nothing would refresh this connection's catalog cache; without
                // this, two processes on an empty database both created the tables, and one failed.
                try await connection.query(SQL.refreshCatalog, logger: logger)
                if let schema {
                    try await connection.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(PostgresStoreConfiguration.quoteIdentifier(schema))"), logger: logger)
                }
                if try await check(connection, place: place, logger: logger) >= migration.version {
                    try await connection.query("COMMIT", logger: logger)
                    continue
                }
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(PostgresQuery(unsafeSQL: SQL.record, binds: try Binds(
                    migration.version, migration.name, now.map(Timestamp.init), migration.checksum).bindings), logger: logger)
                try await connection.query("COMMIT", logger: logger)
                applied.append(migration.name)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                if let error = error as? SluiceError, error.code == .incompatibleDatabase { throw error }
                throw SluiceError(.storage, "applying migration \(migration.name) to \(place): \(PostgresErrors.describe(error))")
            }
        }
        return Report(from: start, to: try await currentVersion(connection, place: place, logger: logger), applied: applied)
    }

    enum SQL {
        static let tables: PostgresQuery = "SELECT to_regclass('sluice_migrations') IS NOT NULL, to_regclass('tasks') IS NOT NULL"
        static let version: PostgresQuery = "SELECT coalesce(max(version), 0)::bigint FROM sluice_migrations"
        static let checksums: PostgresQuery = "SELECT version::bigint, checksum FROM sluice_migrations ORDER BY version"
        static let lock = "SELECT pg_advisory_xact_lock(hashtext($1))"
        /// Taking a relation lock makes PostgreSQL apply the catalog changes others committed.
        static let refreshCatalog: PostgresQuery = "LOCK TABLE pg_catalog.pg_class IN ACCESS SHARE MODE"
        static let record = """
            INSERT INTO sluice_migrations (version, name, applied_at, checksum) VALUES ($1, $2, coalesce($3::timestamptz, now()), $4)
            """
    }
}
