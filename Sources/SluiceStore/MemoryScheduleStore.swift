import Foundation
import SluiceCore

/// Schedules in the memory store, under the same lock as its tasks: a fire's task and slot record
/// are stored together or not at all, as in the durable stores' transactions.
extension MemoryTaskStore: ScheduleStore {
    public func saveSchedule(_ definition: ScheduleDefinition, ifRevision: Int64?) async throws -> (Schedule, ScheduleChange)? {
        try definition.validate()
        let now = clock.now()
        return state.withLock { state in
            let existing = state.schedules[definition.name]
            guard ifRevision == nil || existing?.revision == ifRevision else { return nil }
            guard let existing else {
                let schedule = Schedule(new: definition, now: now)
                state.schedules[definition.name] = schedule
                return (schedule, .created)
            }
            guard let updated = existing.updated(to: definition, now: now) else { return (existing, .unchanged) }
            state.schedules[definition.name] = updated
            return (updated, .updated)
        }
    }

    public func schedule(_ name: String) async throws -> Schedule? {
        state.withLock { $0.schedules[name] }
    }

    public func schedules() async throws -> [Schedule] {
        state.withLock { $0.schedules.values.sorted { $0.name < $1.name } }
    }

    public func dueSchedules(at date: Date, limit: Int) async throws -> [Schedule] {
        let all = state.withLock { Array($0.schedules.values) }
        let due = all.compactMap { schedule in schedule.nextFire.flatMap { $0 <= date ? (schedule, $0) : nil } }
        return due.sorted { $0.1 < $1.1 }.prefix(max(0, limit)).map(\.0)
    }

    public func deleteSchedule(_ name: String) async throws -> Bool {
        state.withLock { $0.schedules.removeValue(forKey: name) != nil }
    }

    public func fire(_ fire: ScheduleFire) async throws -> FireOutcome {
        let now = clock.now()
        try fire.request.validate(now: now)
        let ids = self.ids
        let outcome: FireOutcome = try state.withLock { state in
            let stored = state.schedules[fire.schedule]
            let last = stored?.lastTaskID.flatMap { state.tasks[$0]?.state }
            if let refusal = Schedule.refusal(of: fire, stored: stored, lastTaskState: last) {
                if case .overlapping = refusal { state.schedules[fire.schedule] = stored!.settled(slot: fire.slot, task: nil) }
                return refusal
            }
            guard state.slots[fire.schedule]?[fire.slot] == nil else { return .alreadyFired }
            let result = try Self.insert([fire.request], ids: ids, now: now, in: &state)[0]
            state.slots[fire.schedule, default: [:]][fire.slot] = now
            state.schedules[fire.schedule] = stored!.settled(slot: fire.slot, task: result.task.id)
            return .fired(result.task)
        }
        if case .fired(let task) = outcome { _ = announce(enqueued: [EnqueueResult(task: task, created: true)]) }
        return outcome
    }

    public func advanceSchedule(_ name: String, revision: Int64, to cursor: Date) async throws -> Bool {
        state.withLock { state in
            guard let stored = state.schedules[name], stored.revision == revision else { return false }
            state.schedules[name] = stored.settled(slot: cursor, task: nil)
            return true
        }
    }

    public func pruneScheduleSlots(before date: Date, limit: Int) async throws -> Int {
        state.withLock { state in
            var removed = 0
            for name in state.slots.keys {
                for slot in state.slots[name]!.keys where slot < date && removed < limit {
                    state.slots[name]![slot] = nil
                    removed += 1
                }
            }
            return removed
        }
    }
}
