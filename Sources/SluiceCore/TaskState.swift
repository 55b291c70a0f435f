/// Where a task is in its life. The allowed moves between states are defined here and nowhere
/// else (docs/STATES.md shows the same table); stores call `checkTransition(to:)` before every move.
public enum TaskState: String, Sendable, CaseIterable, Codable, Comparable {
    /// Waiting for its `run_at` in the future.
    case scheduled
    /// Ready to be claimed.
    case queued
    /// Claimed by a worker that holds its lease.
    case running
    /// An attempt failed; the next waits for its backoff.
    case retrying
    /// Finished with a result.
    case succeeded
    /// Attempts exhausted or not retryable.
    case failed
    /// Cancelled before it finished.
    case cancelled

    /// The single table of allowed moves.
    ///
    /// - `scheduled/retrying → queued`: the run time came (staging).
    /// - `queued → running`: a worker claimed it.
    /// - `running → queued`: its lease expired or its worker handed it back unstarted.
    /// - `failed/cancelled → queued`: retried by hand.
    public static let allowedTransitions: [TaskState: Set<TaskState>] = [
        .scheduled: [.queued, .cancelled],
        .queued: [.running, .cancelled],
        .running: [.succeeded, .failed, .retrying, .queued, .cancelled],
        .retrying: [.queued, .cancelled],
        .succeeded: [],
        .failed: [.queued],
        .cancelled: [.queued],
    ]

    /// Whether the task is done for good (until someone retries it by hand).
    public var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }

    /// Whether moving from this state to `next` is allowed.
    public func canTransition(to next: TaskState) -> Bool {
        TaskState.allowedTransitions[self, default: []].contains(next)
    }

    /// Throws `invalidTransition` unless the move is allowed.
    public func checkTransition(to next: TaskState, task: TaskID? = nil) throws(SluiceError) {
        guard canTransition(to: next) else {
            let subject = task.map { "task \($0)" } ?? "a task"
            throw SluiceError(.invalidTransition, "\(subject) is \(rawValue) and cannot become \(next.rawValue)")
        }
    }

    public static func < (a: TaskState, b: TaskState) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}
