import CSQLite

/// A failed SQLite call: its result code, SQLite's own message, and what we were doing.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    /// The primary result code (`SQLITE_BUSY`, `SQLITE_FULL`…).
    public var code: Int32
    /// The extended result code.
    public var extendedCode: Int32
    /// SQLite's message.
    public var message: String
    /// What we were doing ("preparing …", "opening …").
    public var context: String

    public var description: String { "\(context): \(message) (SQLite error \(extendedCode))" }

    /// What a user can do about it, when the code says; nil when SQLite's message is all there is.
    public var advice: String? {
        switch code {
        case SQLITE_BUSY, SQLITE_LOCKED: "the database is locked by another process past the busy timeout"
        case SQLITE_FULL: "the disk holding the database is full; free space and retry (nothing was written)"
        case SQLITE_READONLY: "the database file or its directory is read-only; make both writable by this user"
        case SQLITE_IOERR: "the disk reported an I/O error writing the database"
        default: nil
        }
    }
}
