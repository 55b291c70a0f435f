import Foundation

/// The error of one failed attempt, kept in order on the task.
public struct AttemptError: Sendable, Hashable, Codable {
    public var attempt: Int
    public var message: String
    public var at: Date

    public init(attempt: Int, message: String, at: Date) {
        self.attempt = attempt
        self.message = message
        self.at = at
    }
}

/// The lease a worker holds on a running task. Writes about the task are fenced by owner and a
/// token drawn afresh for every claim, so a worker that lost its lease cannot overwrite what
/// happened after, even when a release handed the same attempt number out again.
public struct TaskLease: Sendable, Hashable, Codable {
    public var taskID: TaskID
    public var owner: String
    public var attempt: Int
    /// Drawn at random for each claim: the fence.
    public var token: Int64
    public var expiresAt: Date

    public init(taskID: TaskID, owner: String, attempt: Int, token: Int64, expiresAt: Date) {
        self.taskID = taskID
        self.owner = owner
        self.attempt = attempt
        self.token = token
        self.expiresAt = expiresAt
    }

    /// A new lease token: positive, so that it reads the same in every store and in JSON.
    public static func newToken() -> Int64 { .random(in: 1 ... .max) }
}

/// A task as stored: what to run, where it is in its life, and what came of it.
public struct TaskRecord: Sendable, Hashable {
    public var id: TaskID
    public var queue: String
    /// The handler's name.
    public var kind: String
    /// A JSON object.
    public var args: JSONValue
    /// Higher runs first.
    public var priority: Int
    public var state: TaskState
    /// When it may run (the ETA for scheduled tasks, the backoff's end for retrying ones).
    public var runAt: Date
    /// Attempts started so far.
    public var attempt: Int
    public var maxAttempts: Int
    /// How long one attempt may run.
    public var timeout: Duration
    public var retryPolicy: RetryPolicy
    public var idempotencyKey: String?
    public var result: JSONValue?
    /// The final error, when the task failed or was cancelled while running.
    public var error: String?
    /// The error of every failed attempt, oldest first.
    public var attemptErrors: [AttemptError]
    /// Someone asked to cancel it while it was running; its worker sees this at its next heartbeat.
    public var cancelRequested: Bool
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// The worker that ran (or runs) the latest attempt.
    public var worker: String?
    /// The current lease, while running.
    public var lease: TaskLease?

    public init(
        id: TaskID, queue: String, kind: String, args: JSONValue, priority: Int, state: TaskState,
        runAt: Date, attempt: Int, maxAttempts: Int, timeout: Duration, retryPolicy: RetryPolicy,
        idempotencyKey: String?, result: JSONValue?, error: String?, attemptErrors: [AttemptError],
        cancelRequested: Bool, createdAt: Date, startedAt: Date?, finishedAt: Date?, worker: String?,
        lease: TaskLease?
    ) {
        self.id = id; self.queue = queue; self.kind = kind; self.args = args; self.priority = priority
        self.state = state; self.runAt = runAt; self.attempt = attempt; self.maxAttempts = maxAttempts
        self.timeout = timeout; self.retryPolicy = retryPolicy; self.idempotencyKey = idempotencyKey
        self.result = result; self.error = error; self.attemptErrors = attemptErrors
        self.cancelRequested = cancelRequested; self.createdAt = createdAt; self.startedAt = startedAt
        self.finishedAt = finishedAt; self.worker = worker; self.lease = lease
    }

    /// A new task from a validated request.
    public init(id: TaskID, request: EnqueueRequest, now: Date) {
        let now = now.storedPrecision
        let runAt = (request.delay.map { now.addingTimeInterval($0.seconds) } ?? request.runAt ?? now).storedPrecision
        self.init(
            id: id, queue: request.queue, kind: request.kind, args: request.args, priority: request.priority,
            state: runAt > now ? .scheduled : .queued, runAt: max(runAt, now), attempt: 0,
            maxAttempts: request.maxAttempts, timeout: request.timeout, retryPolicy: request.retryPolicy,
            idempotencyKey: request.idempotencyKey, result: nil, error: nil, attemptErrors: [],
            cancelRequested: false, createdAt: now, startedAt: nil, finishedAt: nil, worker: nil, lease: nil)
    }
}
