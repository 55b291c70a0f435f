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

    /// Whether another connection held the lock past the busy timeout.
    public var isBusy: Bool { code == SQLITE_BUSY || code == SQLITE_LOCKED }
}
