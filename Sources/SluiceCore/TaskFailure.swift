/// How an attempt ended badly, and what the handler asks to happen next.
public struct TaskFailure: Sendable, Hashable, Error {
    /// What to do after this failure.
    public enum Disposition: Sendable, Hashable {
        /// Retry after the task's backoff while attempts remain; then fail.
        case retry
        /// Retry after exactly this delay while attempts remain ("retry later").
        case retryAfter(Duration)
        /// Fail now, whatever attempts remain.
        case discard
        /// Stop and mark the task cancelled.
        case cancel
    }

    public var message: String
    public var disposition: Disposition

    public init(_ message: String, disposition: Disposition = .retry) {
        // A NUL (a program's raw output, say) would be refused by PostgreSQL with the whole batch.
        self.message = message.withoutNUL
        self.disposition = disposition
    }
}

extension String {
    /// The text with each NUL character (which PostgreSQL's `text` and `jsonb` refuse) shown as U+FFFD.
    public var withoutNUL: String {
        utf8.contains(0) ? replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : self
    }
}
