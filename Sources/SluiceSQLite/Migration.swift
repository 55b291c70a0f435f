import CSQLite
import Foundation
import SluiceCore
import SluiceStore

/// Applies migrations in order, each in its own transaction together with its version row, and
/// refuses databases it does not understand.
public struct Migrator: Sendable {
    /// Identifies a Sluice database (the `application_id` that migration 0001 sets: "SLIC").
    public static let applicationID: Int64 = 1_397_508_419

    public let migrations: [Migration]

    /// Checks the list: versions must run 1, 2, 3… with no gap or duplicate.
    public init(migrations: [Migration] = Migration.sqlite) throws {
        for (index, migration) in migrations.enumerated() where migration.version != index + 1 {
            throw SluiceError(.incompatibleDatabase,
                "migration \(migration.name) should be version \(index + 1): migrations must be numbered 0001, 0002… without gaps or duplicates")
        }
        self.migrations = migrations
    }

    /// The newest version this binary knows.
    public var latestVersion: Int { migrations.count }

    /// The schema version of the database (0 when empty), refusing files that are not Sluice's.
    public func currentVersion(_ connection: SQLiteConnection) throws -> Int {
        do {
            // One statement, one snapshot: read apart, another process's first migration could
            // commit between the two and make a fresh Sluice file look like another program's.
            var appID: Int64 = 0, tables: Int64 = 0
            try connection.query("SELECT (SELECT application_id FROM pragma_application_id()), (SELECT count(*) FROM sqlite_master)") { row in
                appID = row.int(0)
                tables = row.int(1)
            }
            if appID != Self.applicationID {
                if appID == 0 && tables == 0 { return 0 }
                throw SluiceError(.incompatibleDatabase,
                    "\(connection.path) is a SQLite database of another program (application_id \(appID), \(tables) schema objects); Sluice will not modify it")
            }
            return Int(try connection.scalar("SELECT max(version) FROM sluice_migrations") ?? 0)
        } catch let error as SluiceError {
            throw error
        } catch let error as SQLiteError {
            // A WAL database on a read-only disk cannot even be opened for reading: say so, not "foreign file".
            if error.code == SQLITE_CANTOPEN || error.code == SQLITE_READONLY, !Self.writable(connection.path) {
                throw SluiceError(.storage, "\(connection.path) is read-only (the file, its directory or its disk): \(error.message); make it writable by this user or mount the disk read-write")
            }
            throw SluiceError(.incompatibleDatabase, "\(connection.path) cannot be read as a SQLite database: \(error.message); Sluice will not modify it")
        }
    }

    /// Whether this process may write the file (when it exists) and create files beside it.
    static func writable(_ path: String) -> Bool {
        let directory = (path as NSString).deletingLastPathComponent
        return access(directory.isEmpty ? "." : directory, W_OK) == 0 && (access(path, F_OK) != 0 || access(path, W_OK) == 0)
    }

    /// What `migrate` did.
    public struct Report: Sendable, Hashable {
        public var from: Int
        public var to: Int
        public var applied: [String]
    }

    /// Brings the database up to `latestVersion`. Running it again changes nothing; a database newer
    /// than this binary is refused untouched.
    @discardableResult
    public func migrate(_ connection: SQLiteConnection, now: Date) throws -> Report {
        let start = try check(connection)
        var applied: [String] = []
        for migration in migrations where migration.version > start {
            do {
                try connection.execute("BEGIN IMMEDIATE")
                // Another process may have applied it while we waited for the lock.
                if try currentVersion(connection) >= migration.version {
                    try connection.execute("COMMIT")
                    continue
                }
                try connection.execute(migration.sql)
                try connection.run("INSERT INTO sluice_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                                   [.integer(Int64(migration.version)), .text(migration.name), .integer(now.microsecondsSince1970)])
                if migration.version >= Self.checksumVersion {
                    // Record (or backfill, for versions applied before checksums existed) every checksum.
                    for applied in migrations.prefix(migration.version) {
                        try connection.run("UPDATE sluice_migrations SET checksum = ? WHERE version = ? AND checksum IS NULL",
                                           [.text(applied.checksum), .integer(Int64(applied.version))])
                    }
                }
                try connection.execute("COMMIT")
                applied.append(migration.name)
            } catch {
                try? connection.execute("ROLLBACK")
                let message = (error as? SluiceError)?.message ?? "\(error)"
                throw SluiceError(.storage, "applying migration \(migration.name) to \(connection.path): \(message)")
            }
        }
        return Report(from: start, to: try currentVersion(connection), applied: applied)
    }

    /// The schema version from which applied migrations carry a checksum.
    static let checksumVersion = 3

    /// The current version, after refusing a schema newer than this binary knows or built from
    /// migrations whose text differs from this binary's.
    public func check(_ connection: SQLiteConnection) throws -> Int {
        let version = try currentVersion(connection)
        guard version <= latestVersion else {
            throw SluiceError(.incompatibleDatabase,
                "\(connection.path) has schema version \(version) but this sluice knows only up to \(latestVersion); upgrade sluice (the database was left untouched)")
        }
        if version >= Self.checksumVersion {
            var stored: [(Int, String)] = []
            try connection.query("SELECT version, checksum FROM sluice_migrations WHERE checksum IS NOT NULL ORDER BY version") { row in
                stored.append((Int(row.int(0)), row.text(1)))
            }
            for (applied, checksum) in stored where applied >= 1 && applied <= migrations.count {
                let known = migrations[applied - 1]
                guard known.checksum == checksum else {
                    throw SluiceError(.incompatibleDatabase,
                        "\(connection.path): migration \(known.name) was applied with other text (checksum \(checksum), this sluice's is \(known.checksum)); a migration must never be edited once released. The database was left untouched")
                }
            }
        }
        return version
    }
}
