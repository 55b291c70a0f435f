import OrderedCollections
import SluiceCore

/// The memory store's tasks in id order (creation order), with the number in each queue and state
/// kept as tasks come, change and go: `counts()` reads a few entries instead of walking every task
/// under the store's lock, which `/v1/queues`, `/metrics` and the admission of fire-and-forget tasks
/// ask for often.
struct TaskTable {
    private(set) var byID: OrderedDictionary<TaskID, TaskRecord> = [:]
    /// Queue → state → tasks; no zero entries.
    private(set) var counts: [String: [TaskState: Int]] = [:]

    subscript(id: TaskID) -> TaskRecord? {
        get { byID[id] }
        set {
            if let old = byID[id] { count(old, -1) }
            if let newValue { count(newValue, 1) }
            byID[id] = newValue
        }
    }

    var values: OrderedDictionary<TaskID, TaskRecord>.Values { byID.values }

    /// Removes the tasks whose ids `shouldRemove` names, in one pass.
    mutating func removeAll(where shouldRemove: (TaskID) -> Bool) {
        for (id, task) in byID where shouldRemove(id) { count(task, -1) }
        byID.removeAll { shouldRemove($0.key) }
    }

    private mutating func count(_ task: TaskRecord, _ n: Int) {
        let total = counts[task.queue]?[task.state, default: 0] ?? 0
        if total + n == 0 {
            counts[task.queue]?[task.state] = nil
            if counts[task.queue]?.isEmpty == true { counts[task.queue] = nil }
        } else {
            counts[task.queue, default: [:]][task.state] = total + n
        }
    }
}
