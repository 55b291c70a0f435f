import OrderedCollections
import SluiceCore

/// The memory store's tasks in id order (creation order), with the number in each queue and state
/// kept as tasks come, change and go: `counts()` reads a few entries instead of walking every task
/// under the store's lock, which `/v1/queues`, `/metrics` and the admission of fire-and-forget tasks
/// ask for often.
struct TaskTable {
    private struct Key: Hashable {
        var queue: String
        var state: TaskState
    }

    private(set) var byID: OrderedDictionary<TaskID, TaskRecord> = [:]
    /// No zero entries.
    private var tally: [Key: Int] = [:]

    subscript(id: TaskID) -> TaskRecord? {
        get { byID[id] }
        set {
            let old = byID[id]
            byID[id] = newValue
            // Most writes (a lease renewed, a field set) leave the queue and state as they were.
            guard old?.state != newValue?.state || old?.queue != newValue?.queue else { return }
            if let old { count(old, -1) }
            if let newValue { count(newValue, 1) }
        }
    }

    var values: OrderedDictionary<TaskID, TaskRecord>.Values { byID.values }

    /// Queue → state → tasks, without zeros.
    var counts: [String: [TaskState: Int]] {
        tally.reduce(into: [:]) { counts, entry in counts[entry.key.queue, default: [:]][entry.key.state] = entry.value }
    }

    /// Removes the tasks whose ids `shouldRemove` names, in one pass.
    mutating func removeAll(where shouldRemove: (TaskID) -> Bool) {
        for (id, task) in byID where shouldRemove(id) { count(task, -1) }
        byID.removeAll { shouldRemove($0.key) }
    }

    private mutating func count(_ task: TaskRecord, _ n: Int) {
        let key = Key(queue: task.queue, state: task.state)
        let total = tally[key, default: 0] + n
        tally[key] = total == 0 ? nil : total
    }
}
