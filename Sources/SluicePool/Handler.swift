import Foundation
import SluiceCore

/// What a handler knows about the task it runs, and how it learns it should stop.
public struct TaskContext: Sendable {
    public let id: TaskID
    public let kind: String
    /// The task's arguments: a JSON object.
    public let args: JSONValue
    /// This attempt's number, from 1.
    public let attempt: Int
    public let maxAttempts: Int
    /// When this attempt times out.
    public let deadline: Date
    let cancellation: CancellationFlag

    /// Whether the task was cancelled, timed out or lost its lease: a handler should stop soon.
    public var isCancelled: Bool { cancellation.isSet }

    /// Throws a cancelling failure when `isCancelled`; call it between units of work.
    public func checkCancellation() throws {
        if isCancelled { throw TaskFailure(cancellation.reason ?? "cancelled", disposition: .cancel) }
    }

    /// Sleeps for `seconds`, or less when the task is cancelled, times out or loses its lease
    /// meanwhile: then it throws the same cancelling failure as `checkCancellation()`, at once.
    /// A blocking handler's way to wait without holding its slot past a cancel.
    public func sleep(seconds: Double) throws {
        if cancellation.wait(seconds: seconds) { try checkCancellation() }
    }

    public init(id: TaskID, kind: String, args: JSONValue, attempt: Int, maxAttempts: Int, deadline: Date) {
        self.init(id: id, kind: kind, args: args, attempt: attempt, maxAttempts: maxAttempts, deadline: deadline,
                  cancellation: CancellationFlag())
    }

    init(id: TaskID, kind: String, args: JSONValue, attempt: Int, maxAttempts: Int, deadline: Date, cancellation: CancellationFlag) {
        self.id = id; self.kind = kind; self.args = args; self.attempt = attempt; self.maxAttempts = maxAttempts
        self.deadline = deadline; self.cancellation = cancellation
    }
}

/// A thread-safe, set-once stop request that a blocking handler can wait on.
final class CancellationFlag: @unchecked Sendable {
    /// Guards `stored`; broadcast when it is set.
    private let condition = NSCondition()
    private var stored: String?

    var isSet: Bool { reason != nil }
    var reason: String? {
        condition.lock()
        defer { condition.unlock() }
        return stored
    }

    func set(_ reason: String) {
        condition.lock()
        if stored == nil { stored = reason }
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks until the flag is set or `seconds` have passed (on the monotonic clock); true when set.
    /// A negative or NaN time waits not at all; a longer one than about 31 years (infinity too) is
    /// waited as 31 years, so that no value traps in the conversion.
    func wait(seconds: Double) -> Bool {
        let clock = ContinuousClock()
        let bounded = seconds > 0 ? min(seconds, 1e9) : 0
        let end = clock.now.advanced(by: .nanoseconds(Int64(bounded * 1e9)))
        condition.lock()
        defer { condition.unlock() }
        while stored == nil {
            let left = clock.now.duration(to: end)
            if left <= .zero { return false }
            // The timed wait runs on the wall clock: slices of at most a second bound what a clock
            // step can do to it, and the monotonic end above decides when it is over.
            _ = condition.wait(until: Date().addingTimeInterval(min(left.seconds, 1)))
        }
        return true
    }
}

/// Runs tasks of one kind. Throw a `TaskFailure` to choose what follows (retry after backoff,
/// retry after a given delay, fail now, cancel); any other error is retried after backoff.
public struct Handler: Sendable {
    enum Body: Sendable {
        case blocking(@Sendable (TaskContext) throws -> JSONValue)
        case async(@Sendable (TaskContext) async throws -> JSONValue)
    }
    let body: Body

    /// A plain synchronous function: it may sleep, block on I/O or burn CPU. It runs on one of its
    /// pool's own threads, never on Swift's cooperative pool or an event loop.
    public static func blocking(_ body: @escaping @Sendable (TaskContext) throws -> JSONValue) -> Handler {
        Handler(body: .blocking(body))
    }

    /// An async function, cancelled (as a Swift task) at its deadline or on a cancel request.
    public static func async(_ body: @escaping @Sendable (TaskContext) async throws -> JSONValue) -> Handler {
        Handler(body: .async(body))
    }
}

/// Handlers by kind name.
public struct HandlerRegistry: Sendable {
    private var handlers: [String: Handler] = [:]

    public init() {}

    /// Registers `handler` for `kind`, replacing any earlier one.
    public mutating func register(_ kind: String, _ handler: Handler) {
        handlers[kind] = handler
    }

    public subscript(kind: String) -> Handler? { handlers[kind] }

    /// The registered kinds, sorted.
    public var kinds: [String] { handlers.keys.sorted() }
}
