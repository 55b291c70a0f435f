import Foundation

/// What a caller asks to run. `validate()` checks every field once, with messages naming the field.
public struct EnqueueRequest: Sendable, Hashable {
    /// The defaults a request gets for what it leaves out.
    public enum Defaults {
        public static let queue = "default"
        public static let maxAttempts = 3
        public static let timeout = Duration.seconds(300)
    }

    /// Limits on fields, so that a typo cannot park a task for a century.
    public enum Limits {
        public static let priority = -1000...1000
        public static let maxAttempts = 1...1000
        public static let timeoutSeconds = 0.001...86_400.0
        public static let nameLength = 1...128
        public static let idempotencyKeyLength = 1...256
        /// A run_at more than this far ahead is refused.
        public static let maxDelaySeconds = 366.0 * 86_400
    }

    public var kind: String
    public var queue: String
    public var args: JSONValue
    public var priority: Int
    /// When to run; `nil` or a past time means now.
    public var runAt: Date?
    /// Or how long after the store takes it, by the store's clock (PostgreSQL's `now()`, so that a
    /// host whose clock is off does not move it); wins over `runAt`.
    public var delay: Duration?
    public var maxAttempts: Int
    public var timeout: Duration
    public var retryPolicy: RetryPolicy
    public var idempotencyKey: String?

    public init(
        kind: String, queue: String = Defaults.queue, args: JSONValue = [:], priority: Int = 0, runAt: Date? = nil,
        maxAttempts: Int = Defaults.maxAttempts, timeout: Duration = Defaults.timeout,
        retryPolicy: RetryPolicy = RetryPolicy(), idempotencyKey: String? = nil
    ) {
        self.kind = kind; self.queue = queue; self.args = args; self.priority = priority; self.runAt = runAt
        self.maxAttempts = maxAttempts; self.timeout = timeout; self.retryPolicy = retryPolicy
        self.idempotencyKey = idempotencyKey
    }

    /// Checks every field; the error names the first field at fault.
    public func validate(now: Date) throws(SluiceError) {
        try Self.checkName(kind, field: "kind")
        try Self.checkName(queue, field: "queue")
        guard args.objectValue != nil else { throw .invalid("args", "must be a JSON object") }
        switch args.unstorable(nesting: JSONValue.maxNesting) {
        case .nul?: throw .invalid("args", "may not hold the NUL character (\\u0000); send binary data as base64")
        case .tooDeep?: throw .invalid("args", "may nest arrays and objects at most \(JSONValue.maxNesting) levels deep")
        case nil: break
        }
        guard Limits.priority.contains(priority) else {
            throw .invalid("priority", "must be between \(Limits.priority.lowerBound) and \(Limits.priority.upperBound)")
        }
        guard Limits.maxAttempts.contains(maxAttempts) else {
            throw .invalid("max_attempts", "must be between 1 and \(Limits.maxAttempts.upperBound)")
        }
        guard Limits.timeoutSeconds.contains(timeout.seconds) else {
            throw .invalid("timeout", "must be more than 0 and at most 86400 seconds")
        }
        if let runAt, runAt.timeIntervalSince(now) > Limits.maxDelaySeconds {
            throw .invalid("run_at", "is more than a year ahead")
        }
        if let delay, delay < .zero || delay.seconds > Limits.maxDelaySeconds {
            throw .invalid("delay", "must be from 0 to \(Int(Limits.maxDelaySeconds)) seconds")
        }
        if let key = idempotencyKey, !Limits.idempotencyKeyLength.contains(key.utf8.count) {
            throw .invalid("idempotency_key", "must be 1 to 256 bytes")
        }
        if let key = idempotencyKey, key.utf8.contains(0) { throw .invalid("idempotency_key", "may not hold the NUL character") }
        guard retryPolicy.base > .zero, retryPolicy.cap >= retryPolicy.base else {
            throw .invalid("retry", "backoff base must be positive and not above the cap")
        }
    }

    /// Checks a queue, kind or pool name: 1 to 128 of letters, digits and `_ - . :`.
    public static func checkName(_ name: String, field: String) throws(SluiceError) {
        guard Limits.nameLength.contains(name.utf8.count) else {
            throw .invalid(field, "must be 1 to 128 characters")
        }
        let allowed = name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "_-.:".unicodeScalars.contains($0)
        }
        guard allowed else { throw .invalid(field, "may hold only letters, digits and _ - . :") }
    }
}

/// What an enqueue did: a new task, or the existing one its idempotency key names.
public struct EnqueueResult: Sendable, Hashable {
    public var task: TaskRecord
    /// `false` when an idempotency key matched an existing task and nothing was created.
    public var created: Bool

    public init(task: TaskRecord, created: Bool) {
        self.task = task
        self.created = created
    }
}
