import Foundation
import SluiceCore
import Synchronization

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

    public init(id: TaskID, kind: String, args: JSONValue, attempt: Int, maxAttempts: Int, deadline: Date) {
        self.init(id: id, kind: kind, args: args, attempt: attempt, maxAttempts: maxAttempts, deadline: deadline,
                  cancellation: CancellationFlag())
    }

    init(id: TaskID, kind: String, args: JSONValue, attempt: Int, maxAttempts: Int, deadline: Date, cancellation: CancellationFlag) {
        self.id = id; self.kind = kind; self.args = args; self.attempt = attempt; self.maxAttempts = maxAttempts
        self.deadline = deadline; self.cancellation = cancellation
    }
}

/// A thread-safe, set-once stop request.
final class CancellationFlag: Sendable {
    private let state = Mutex<String?>(nil)
    var isSet: Bool { state.withLock { $0 != nil } }
    var reason: String? { state.withLock { $0 } }
    func set(_ reason: String) { state.withLock { if $0 == nil { $0 = reason } } }
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
