import OrderedCollections
import SluiceCore

/// The memory store's tasks in id order (creation order), with the number in each queue and state
/// kept as tasks come, change and go: `counts()` reads a few entries instead of walking every task
/// under the store's lock, which `/v1/queues`, `/metrics` and the admission of fire-and-forget tasks
/// ask for often.
struct TaskTable {
    private(set) var byID: OrderedDictionary<TaskID, TaskRecord> = [:]
    /// Tasks per queue and state, as the durable stores sum their counter changes.
    private var tally = CountDeltas()

    subscript(id: TaskID) -> TaskRecord? {
        get { byID[id] }
        set {
            let old = byID[id]
            byID[id] = newValue
            // Most writes (a lease renewed, a field set) leave the queue and state as they were.
            guard old?.state != newValue?.state || old?.queue != newValue?.queue else { return }
            if let old { tally.add(old.queue, old.state, -1) }
            if let newValue { tally.add(newValue.queue, newValue.state, 1) }
        }
    }

    var values: OrderedDictionary<TaskID, TaskRecord>.Values { byID.values }

    /// Queue → state → tasks, without zeros.
    var counts: [String: [TaskState: Int]] {
        tally.changes.reduce(into: [:]) { counts, change in counts[change.queue, default: [:]][change.state] = change.delta }
    }

    /// Removes the tasks whose ids `shouldRemove` names, in one pass.
    mutating func removeAll(where shouldRemove: (TaskID) -> Bool) {
        for (id, task) in byID where shouldRemove(id) { tally.add(task.queue, task.state, -1) }
        byID.removeAll { shouldRemove($0.key) }
    }
}
