import Foundation
import Logging
import PostgresNIO
import SluiceCore
@testable import SluicePostgres
import SluiceSQLite
import SluiceStore
import SluiceTestSupport
import Synchronization
import Testing

/// The stores every conformance test runs against.
enum StoreKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case memory, sqlite, postgres
    var description: String { rawValue }

    /// Every store the run can reach: without SLUICE_TEST_DATABASE_URL, PostgreSQL is left out
    /// (so no case claims to have passed on it) and `PostgresStoreTests.conformanceSuiteOnPostgreSQL`
    /// reports the skip.
    static var allCases: [StoreKind] { TestPostgres.url == nil ? [.memory, .sqlite] : [.memory, .sqlite, .postgres] }
}

/// A store of `kind` on a manual clock; `unit` fixes the backoff jitter draw. Memory and SQLite
/// only: a PostgreSQL store needs its pool running and a schema of its own (`withStore`).
func makeStore(_ kind: StoreKind, clock: ManualClock, unit: Double = 1.0, dir: TempDir) throws -> any TaskStore {
    switch kind {
    case .memory:
        return MemoryTaskStore(clock: clock, unitRandom: { unit })
    case .sqlite:
        var configuration = SQLiteStoreConfiguration(path: dir.path("tasks.db"))
        configuration.clock = clock
        configuration.unitRandom = { unit }
        return try SQLiteTaskStore(configuration)
    case .postgres:
        preconditionFailure("a PostgreSQL store is made by withStore, which runs its pool and drops its schema")
    }
}

/// Runs `body` with a fresh store of `kind` on `clock`, and cleans up after it: a temporary
/// directory for SQLite, a schema of its own (dropped afterwards) for PostgreSQL. Without
/// SLUICE_TEST_DATABASE_URL a PostgreSQL case is cancelled, saying why.
func withStore(_ kind: StoreKind, clock: ManualClock, unit: Double = 1.0, _ body: (any TaskStore) async throws -> Void) async throws {
    switch kind {
    case .memory, .sqlite:
        let dir = try TempDir()
        defer { dir.remove() }
        try await body(try makeStore(kind, clock: clock, unit: unit, dir: dir))
    case .postgres:
        try await TestPostgres.withSchema { base in
            var configuration = base
            configuration.clock = clock
            configuration.unitRandom = { unit }
            try await PostgresTaskStore.withStore(configuration) { store in try await body(store) }
        }
    }
}

/// The PostgreSQL server the tests use, named by SLUICE_TEST_DATABASE_URL.
enum TestPostgres {
    static let url: String? = ProcessInfo.processInfo.environment["SLUICE_TEST_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    static let skipMessage = "SKIPPED: PostgreSQL tests need SLUICE_TEST_DATABASE_URL (tools/dev/postgres start prints one)"
    private static let warned = Atomic<Bool>(false)

    /// Cancels the current test case (shown as skipped, with the reason); says so on standard
    /// error once per run, so that a run without PostgreSQL cannot pass for a full one.
    static func skip() throws -> Never {
        if !warned.exchange(true, ordering: .relaxed) {
            FileHandle.standardError.write(Data(("\n*** " + skipMessage + " ***\n\n").utf8))
        }
        try Test.cancel(Comment(rawValue: skipMessage))
    }

    /// The server's configuration from the URL, or a skip.
    static func configuration() throws -> PostgresStoreConfiguration {
        guard let url else { try skip() }
        var configuration = try PostgresStoreConfiguration(url: url)
        configuration.maximumConnections = 4
        return configuration
    }

    /// Runs `body` with a configuration whose schema was just created, and drops it afterwards.
    static func withSchema<T: Sendable>(_ body: (PostgresStoreConfiguration) async throws -> T) async throws -> T {
        let base = try configuration()
        let schema = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        try await execute(base, "CREATE SCHEMA \(schema)")
        var configuration = base
        configuration.schema = schema
        do {
            let result = try await body(configuration)
            try await execute(base, "DROP SCHEMA \(schema) CASCADE")
            return result
        } catch {
            try? await execute(base, "DROP SCHEMA \(schema) CASCADE")
            throw error
        }
    }

    /// Runs one statement on a connection of its own.
    static func execute(_ configuration: PostgresStoreConfiguration, _ sql: String) async throws {
        try await withConnection(configuration) { connection, logger in
            _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect()
        }
    }

    /// Runs `body` on a connection of its own (another client of the server: an application, a
    /// transaction holding locks), closed afterwards whatever happens.
    static func withConnection<T>(_ configuration: PostgresStoreConfiguration, id: Int = 1,
                                  _ body: (PostgresConnection, Logger) async throws -> T) async throws -> T {
        let logger = Logger(label: "sluice.test")
        let connection = try await PostgresConnection.connect(configuration: try configuration.connectionConfiguration(), id: id, logger: logger)
        do {
            let result = try await body(connection, logger)
            try await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }
}
