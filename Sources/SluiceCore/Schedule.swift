import Foundation

/// What to do with slots that passed while no scheduler ran (downtime, a long leader change).
public enum MisfirePolicy: String, Sendable, Hashable, CaseIterable {
    /// Fire nothing for missed slots.
    case skip
    /// Fire one task, for the newest missed slot.
    case latest
    /// Fire every missed slot, the newest `Schedule.Limits.catchUp` at most (the rest are reported).
    case all
}

/// What a schedule asks for: everything but its firing state. Validated once, with messages naming the field.
public struct ScheduleDefinition: Sendable, Hashable {
    public var name: String
    public var cron: CronExpression
    /// An IANA zone identifier.
    public var timeZone: String
    public var kind: String
    public var queue: String
    public var args: JSONValue
    public var priority: Int
    public var maxAttempts: Int
    public var timeout: Duration
    public var misfire: MisfirePolicy
    /// `false`: a slot is skipped while the previous task of this schedule is still live.
    public var overlap: Bool
    public var enabled: Bool

    public init(
        name: String, cron: CronExpression, timeZone: String = "UTC", kind: String, queue: String = EnqueueRequest.Defaults.queue,
        args: JSONValue = [:], priority: Int = 0, maxAttempts: Int = EnqueueRequest.Defaults.maxAttempts,
        timeout: Duration = EnqueueRequest.Defaults.timeout, misfire: MisfirePolicy = .skip, overlap: Bool = true, enabled: Bool = true
    ) {
        self.name = name; self.cron = cron; self.timeZone = timeZone; self.kind = kind; self.queue = queue
        self.args = args; self.priority = priority; self.maxAttempts = maxAttempts; self.timeout = timeout
        self.misfire = misfire; self.overlap = overlap; self.enabled = enabled
    }

    /// The zone, checked.
    public func zone() throws(SluiceError) -> TimeZone { try CronExpression.zone(named: timeZone) }

    /// Checks every field; the error names the first at fault.
    public func validate() throws(SluiceError) {
        try EnqueueRequest.checkName(name, field: "name")
        _ = try zone()
        try enqueueRequest(slot: Date(timeIntervalSince1970: 0)).validate(now: Date(timeIntervalSince1970: 0))
    }

    /// The task a slot fires: it carries the schedule and slot in its idempotency key,
    /// `schedule:NAME@SLOT` (slot in UTC, ISO 8601), so a task says where it came from.
    public func enqueueRequest(slot: Date) -> EnqueueRequest {
        EnqueueRequest(kind: kind, queue: queue, args: args, priority: priority, maxAttempts: maxAttempts, timeout: timeout,
                       idempotencyKey: Self.idempotencyKey(schedule: name, slot: slot))
    }

    /// `schedule:NAME@2026-11-27T02:30:00Z`.
    public static func idempotencyKey(schedule: String, slot: Date) -> String {
        "\(Schedule.idempotencyKeyPrefix)\(schedule)@\(Schedule.format(slot))"
    }

    /// Whether changing `self` to `other` changes which slots exist (the cursor then restarts at the change).
    public func changesSlots(_ other: ScheduleDefinition) -> Bool {
        cron != other.cron || timeZone != other.timeZone || (!enabled && other.enabled)
    }
}

/// A stored schedule: its definition and where its firing stands.
public struct Schedule: Sendable, Hashable {
    public enum Limits {
        /// `all` fires at most this many missed slots in one pass; older ones are skipped and reported.
        public static let catchUp = 100
    }

    public var definition: ScheduleDefinition
    /// Bumped by every change; a fire computed from an older revision is refused.
    public var revision: Int64
    /// Every slot at or before this time is settled: fired, skipped, or from before the last change.
    public var cursor: Date
    /// The newest slot fired, and its task.
    public var lastSlot: Date?
    public var lastTaskID: TaskID?
    public var createdAt: Date
    public var updatedAt: Date

    public init(definition: ScheduleDefinition, revision: Int64, cursor: Date, lastSlot: Date?, lastTaskID: TaskID?,
                createdAt: Date, updatedAt: Date) {
        self.definition = definition; self.revision = revision; self.cursor = cursor; self.lastSlot = lastSlot
        self.lastTaskID = lastTaskID; self.createdAt = createdAt; self.updatedAt = updatedAt
    }

    public var name: String { definition.name }

    /// A new schedule: it fires slots after `now`.
    public init(new definition: ScheduleDefinition, now: Date) {
        let now = now.storedPrecision
        self.init(definition: definition, revision: 1, cursor: now, lastSlot: nil, lastTaskID: nil, createdAt: now, updatedAt: now)
    }

    /// This schedule changed to `definition` at `now`; `nil` when nothing changed.
    public func updated(to definition: ScheduleDefinition, now: Date) -> Schedule? {
        guard definition != self.definition else { return nil }
        var next = self
        next.definition = definition
        next.revision += 1
        next.updatedAt = now.storedPrecision
        // A new expression or zone, or a schedule enabled again, starts from now: slots of the old
        // expression, or of the time it was off, are not owed.
        if self.definition.changesSlots(definition) { next.cursor = max(cursor, now.storedPrecision) }
        return next
    }

    /// The first slot after the cursor, which the scheduler fires next; `nil` when disabled or
    /// when the expression never fires again. Stores keep it to find due schedules by index.
    public var nextFire: Date? {
        guard definition.enabled, let zone = try? definition.zone() else { return nil }
        return definition.cron.next(after: cursor, in: zone)
    }

    /// The next `count` fire times after `date`.
    public func nextFires(after date: Date, count: Int) -> [Date] {
        guard let zone = try? definition.zone() else { return [] }
        return definition.cron.next(count, after: date, in: zone)
    }

    /// The next `count` times this schedule will fire, as of `now`: none when disabled; never a
    /// slot at or before the cursor, which is settled.
    public func upcomingFires(now: Date, count: Int) -> [Date] {
        definition.enabled ? nextFires(after: max(now, cursor), count: count) : []
    }

    /// What every schedule's task key starts with; clients may not use it (`EnqueueBody`).
    public static let idempotencyKeyPrefix = "schedule:"

    /// ISO 8601 in UTC, to the second.
    public static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}

/// What a scheduler asks a store to do for one slot, in one transaction.
public struct ScheduleFire: Sendable, Hashable {
    public var schedule: String
    /// The revision the slot was computed from: refused if the schedule changed since.
    public var revision: Int64
    public var slot: Date
    public var request: EnqueueRequest
    /// Skip the slot while the schedule's previous task is live.
    public var skipIfLive: Bool

    public init(schedule: Schedule, slot: Date) {
        self.schedule = schedule.name
        revision = schedule.revision
        self.slot = slot.storedPrecision
        request = schedule.definition.enqueueRequest(slot: slot)
        skipIfLive = !schedule.definition.overlap
    }
}

/// What a store did with a `ScheduleFire`.
public enum FireOutcome: Sendable, Hashable {
    /// The task was stored with the slot's record.
    case fired(TaskRecord)
    /// The slot was fired before (by this or another process): nothing stored.
    case alreadyFired
    /// The previous task is still live and the schedule does not overlap: the slot is settled unfired.
    case overlapping(TaskID)
    /// The schedule changed, was disabled or deleted since the slot was computed: nothing stored.
    case stale
}

extension Schedule {
    /// Why `fire` must not store a task, judged from the stored schedule (`nil`: deleted) and the
    /// state of its previous task; `nil` when the slot may fire. Every store applies this in the
    /// fire's transaction, after locking the schedule's row.
    public static func refusal(of fire: ScheduleFire, stored: Schedule?, lastTaskState: TaskState?) -> FireOutcome? {
        guard let stored, stored.revision == fire.revision, stored.definition.enabled else { return .stale }
        // Settled already (fired, skipped or before the last change): the slot rows are the proof
        // for slots after the cursor, this for the ones before it, whose rows may be pruned.
        if fire.slot <= stored.cursor { return .alreadyFired }
        if fire.skipIfLive, let lastTaskState, !lastTaskState.isFinal, let last = stored.lastTaskID { return .overlapping(last) }
        return nil
    }

    /// The schedule after `slot` was settled: fired as `task`, or skipped (`task` nil).
    public func settled(slot: Date, task: TaskID?) -> Schedule {
        var next = self
        next.cursor = max(cursor, slot.storedPrecision)
        if let task {
            next.lastSlot = max(lastSlot ?? slot.storedPrecision, slot.storedPrecision)
            next.lastTaskID = task
        }
        return next
    }
}
