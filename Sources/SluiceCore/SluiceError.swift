/// Every error Sluice reports: a stable code to switch on (new codes do not break callers), a
/// message a user can act on, and, for bad input, the field at fault.
public struct SluiceError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable, machine-readable error code.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// No task has this id.
        public static let notFound = Code(rawValue: "not_found")
        /// The task's state does not allow the requested move.
        public static let invalidTransition = Code(rawValue: "invalid_transition")
        /// The caller's lease was expired, taken over or never held: its write is refused.
        public static let leaseLost = Code(rawValue: "lease_lost")
        /// A request field is missing, out of range or of the wrong type.
        public static let invalidArgument = Code(rawValue: "invalid_argument")
        /// The storage failed (disk full, read-only, locked past the timeout…).
        public static let storage = Code(rawValue: "storage")
        /// The database was made by a newer Sluice or another program; it is left untouched.
        public static let incompatibleDatabase = Code(rawValue: "incompatible_database")
        /// The store was closed.
        public static let closed = Code(rawValue: "closed")
        /// An idempotency key was reused with a different kind or args: the stored task is not it.
        public static let idempotencyConflict = Code(rawValue: "idempotency_conflict")
        /// The process cannot take more work of this kind now (a bound was reached); retry later.
        public static let overloaded = Code(rawValue: "overloaded")
    }

    public var code: Code
    public var message: String
    public var field: String?

    public init(_ code: Code, _ message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
    }

    public var description: String { message }

    /// The same error with context in front of its message ("applying migration 0002_x: …").
    public func context(_ prefix: String) -> SluiceError {
        SluiceError(code, "\(prefix): \(message)", field: field)
    }

    static func invalid(_ field: String, _ message: String) -> SluiceError {
        SluiceError(.invalidArgument, "\(field): \(message)", field: field)
    }
}
