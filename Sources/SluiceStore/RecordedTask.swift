import SluiceCore

/// What recording an outcome left its task as, and what a finish notice says: enough to report on
/// the task. `task` is the whole task where the store had it at hand. The SQLite and PostgreSQL
/// stores' batched completions leave it out (their statements return the queue and kind only):
/// copying every column of every finished task out of the statement was about a tenth of SQLite's
/// single writer thread's time in a drain, and the callers on that path (a worker's completer, a
/// remote worker's outcome answer, the throughput history) need only these fields. Whoever needs
/// the rest (a request waiting for the result) reads the task.
public struct RecordedTask: Sendable, Equatable {
    public var id: TaskID
    public var queue: String
    public var kind: String
    public var state: TaskState
    public var error: String?
    public var task: TaskRecord?

    public init(_ task: TaskRecord) {
        id = task.id
        queue = task.queue
        kind = task.kind
        state = task.state
        error = task.error
        self.task = task
    }

    public init(id: TaskID, queue: String, kind: String, state: TaskState, error: String? = nil) {
        self.id = id
        self.queue = queue
        self.kind = kind
        self.state = state
        self.error = error
        task = nil
    }
}
