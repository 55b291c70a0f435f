import CSQLite
import Foundation

/// A value bound to or read from a statement.
public enum SQLiteValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
}

/// One connection to a database file: a thin wrapper that caches prepared statements, binds values
/// (never interpolates them) and turns every failing result code into an `SQLiteError`.
///
/// Not thread-safe: a connection is owned by one thread at a time (an `SQLiteExecutor`'s).
public final class SQLiteConnection: @unchecked Sendable {
    let handle: OpaquePointer

    /// Whether a transaction is open (SQLite ends one by itself on some errors: a full disk, I/O).
    var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }
    private var statements: [String: OpaquePointer] = [:]
    /// The file path, for messages.
    public let path: String
    /// The write-ahead log's path, as SQLite names it.
    var walPath: String { String(cString: sqlite3_filename_wal(sqlite3_db_filename(handle, "main"))) }

    /// Set once per process, before its first connection opens: SQLite's own heap accounting,
    /// which takes a process-wide mutex on every allocation, is off (Sluice reads none of it); and
    /// page caches allocate page by page, so that the temporary table of each `RETURNING` costs
    /// no bulk allocation (see shim.h).
    private static let configured: Bool =
        sluice_sqlite3_disable_memstatus() == SQLITE_OK && sluice_sqlite3_no_bulk_page_cache() == SQLITE_OK

    /// Opens (and creates, when `create`) the database at `path`.
    public init(path: String, create: Bool = true, readOnly: Bool = false) throws(SQLiteError) {
        _ = Self.configured
        var db: OpaquePointer?
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        flags |= readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE
        if create && !readOnly { flags |= SQLITE_OPEN_CREATE }
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: rc & 0xff, extendedCode: rc, message: message, context: "opening \(path)")
        }
        handle = db
        self.path = path
    }

    deinit { close() }

    private var isOpen = true

    /// Finalizes the cached statements and closes the database; later calls do nothing. The last
    /// connection of a file to close checkpoints it and removes its log, holding the file's lock
    /// meanwhile, so an owner that must be done with the file when it returns closes here rather
    /// than leave it to whichever thread drops the last reference.
    func close() {
        guard isOpen else { return }
        isOpen = false
        for statement in statements.values { sqlite3_finalize(statement) }
        statements = [:]
        sqlite3_close_v2(handle)
    }

    /// Runs one or more statements without parameters (pragmas, migrations, BEGIN/COMMIT).
    public func execute(_ sql: String) throws(SQLiteError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(errorMessage)
            throw SQLiteError(code: rc & 0xff, extendedCode: rc, message: message, context: "running \(sql.prefix(60))")
        }
    }

    /// Runs a statement with bound parameters; returns the number of rows it changed.
    @discardableResult
    public func run(_ sql: String, _ parameters: [SQLiteValue] = []) throws(SQLiteError) -> Int {
        try query(sql, parameters) { _ in }
        return Int(sqlite3_changes(handle))
    }

    /// Runs a statement with bound parameters and hands each result row to `row`.
    public func query(_ sql: String, _ parameters: [SQLiteValue] = [], _ row: (SQLiteRow) throws -> Void) throws(SQLiteError) {
        let statement = try prepare(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (index, value) in parameters.enumerated() {
            let position = Int32(index + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(statement, position)
            case .integer(let i): rc = sqlite3_bind_int64(statement, position, i)
            case .real(let d): rc = sqlite3_bind_double(statement, position, d)
            case .text(let s): rc = sqlite3_bind_text(statement, position, s, -1, SQLiteConnection.transient)
            }
            try check(rc, "binding parameter \(position) of \(sql.prefix(60))")
        }
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { return }
            guard rc == SQLITE_ROW else { try check(rc, "running \(sql.prefix(60))"); return }
            do { try row(SQLiteRow(statement: statement)) } catch let error as SQLiteError { throw error } catch {
                throw SQLiteError(code: SQLITE_ERROR, extendedCode: SQLITE_ERROR, message: "\(error)", context: "reading a row of \(sql.prefix(60))")
            }
        }
    }

    /// The first column of the first row, as an integer (`nil` when no row or NULL).
    public func scalar(_ sql: String, _ parameters: [SQLiteValue] = []) throws(SQLiteError) -> Int64? {
        var value: Int64?
        try query(sql, parameters) { row in value = row.isNull(0) ? nil : row.int(0) }
        return value
    }

    /// The prepared statement for `sql`, compiled once and reused.
    private func prepare(_ sql: String) throws(SQLiteError) -> OpaquePointer {
        if let cached = statements[sql] { return cached }
        var statement: OpaquePointer?
        try check(sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil), "preparing \(sql.prefix(80))")
        guard let statement else {
            throw SQLiteError(code: SQLITE_MISUSE, extendedCode: SQLITE_MISUSE, message: "empty statement", context: "preparing \(sql.prefix(80))")
        }
        statements[sql] = statement
        return statement
    }

    private func check(_ rc: Int32, _ context: @autoclosure () -> String) throws(SQLiteError) {
        guard rc != SQLITE_OK, rc != SQLITE_ROW, rc != SQLITE_DONE else { return }
        throw SQLiteError(code: rc & 0xff, extendedCode: rc, message: String(cString: sqlite3_errmsg(handle)), context: context())
    }

    /// Tells SQLite to copy bound text (the Swift string's buffer does not outlive the call).
    static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}

/// The current row of a statement; valid only inside the `query` callback.
public struct SQLiteRow {
    let statement: OpaquePointer

    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(statement, column) == SQLITE_NULL }
    public func int(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }
    public func double(_ column: Int32) -> Double { sqlite3_column_double(statement, column) }
    public func text(_ column: Int32) -> String {
        guard let bytes = sqlite3_column_text(statement, column) else { return "" }
        let count = Int(sqlite3_column_bytes(statement, column))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }
    public func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }
    public func optionalInt(_ column: Int32) -> Int64? { isNull(column) ? nil : int(column) }
}
