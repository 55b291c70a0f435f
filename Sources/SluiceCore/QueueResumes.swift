import Foundation

/// When each queue was last resumed after a pause, for the pool advisor's wait for a slot: a task
/// waits from when it could run, that is when it was due and its queue not paused; time spent
/// paused, which no size of pool would have shortened, is not a wait. A plain value: its owner
/// guards it (a pool with its lock, the server with its mutex).
public struct QueueResumes: Sendable {
    private var resumedAt: [String: Date] = [:]
    /// The latest resume: a task due after it needs no lookup. On a pool's hot path, under its
    /// lock, a lookup per task cost a draining worker a tenth of its rate.
    private var latest = Date.distantPast
    /// The queues paused as last told (`paused(_:at:)`).
    private var paused: Set<String> = []

    public init() {}

    /// Notes that `queues` could run tasks again from `now`.
    public mutating func resumed(_ queues: some Sequence<String>, at now: Date) {
        for queue in queues {
            resumedAt[queue] = now
            latest = max(latest, now)
        }
    }

    /// Notes the queues paused now: those paused before and not now were resumed at `now`.
    public mutating func paused(_ queues: Set<String>, at now: Date) {
        resumed(paused.subtracting(queues), at: now)
        paused = queues
    }

    /// When `task` could first run: its due time, or its queue's resume if that came later.
    public func readyAt(_ task: TaskRecord) -> Date {
        task.runAt >= latest ? task.runAt : max(task.runAt, resumedAt[task.queue] ?? task.runAt)
    }
}
