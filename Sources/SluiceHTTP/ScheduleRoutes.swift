import Foundation
import Hummingbird
import SluiceCore
import SluiceStore

/// Schedules: periodic tasks, fired once per slot by the leader's scheduler. See docs/SCHEDULES.md.
extension SluiceAPI {
    /// The store's schedules, or 501 when it keeps none.
    func scheduleStore() throws -> any ScheduleStore {
        guard let schedules = store as? any ScheduleStore else {
            throw APIError(.notImplemented, "not_implemented", "this server's store keeps no schedules")
        }
        return schedules
    }

    /// `GET /v1/schedules`.
    func listSchedules() async throws -> Response {
        let now = clock.now()
        var shown: [JSONValue] = []
        for schedule in try await scheduleStore().schedules() { shown.append(.object(try await scheduleJSON(schedule, now: now))) }
        return jsonResponse(["schedules": .array(shown)])
    }

    /// `GET /v1/schedules/{name}`.
    func showSchedule(_ context: SluiceRequestContext) async throws -> Response {
        jsonResponse(.object(try await scheduleJSON(try await namedSchedule(context), now: clock.now())))
    }

    /// `POST /v1/schedules`: creates or replaces (201 created, 200 updated or unchanged).
    func saveSchedule(_ request: Request) async throws -> Response {
        let definition = try ScheduleJSON.parse(try await readJSON(request))
        let (schedule, change) = try await scheduleStore().saveSchedule(definition)
        var body = try await scheduleJSON(schedule, now: clock.now())
        body["change"] = .string(change.rawValue)
        return jsonResponse(.object(body), status: change == .created ? .created : .ok,
                            headers: [.location: "/v1/schedules/\(schedule.name)"])
    }

    /// `PATCH /v1/schedules/{name}`: the fields given change, the rest stay.
    func patchSchedule(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let patch = try await readJSON(request)
        let (schedule, change) = try await updateSchedule(try context.pathParameter("name")) { base in
            try ScheduleJSON.parse(patch, name: base.name, base: base)
        }
        var body = try await scheduleJSON(schedule, now: clock.now())
        body["change"] = .string(change.rawValue)
        return jsonResponse(.object(body))
    }

    /// Applies `change` to schedule `name` as stored, atomically: if another change lands between
    /// the read and the save, it reads again, so no change undoes another; a deleted one is a 404.
    func updateSchedule(_ name: String, _ change: (ScheduleDefinition) throws -> ScheduleDefinition) async throws -> (Schedule, ScheduleChange) {
        for _ in 0..<20 {
            let existing = try await namedSchedule(name)
            if let saved = try await scheduleStore().saveSchedule(try change(existing.definition), ifRevision: existing.revision) { return saved }
        }
        throw APIError(.conflict, "conflict", "schedule \(name.prefix(128)) changed 20 times while this change was applied; send it again")
    }

    /// `DELETE /v1/schedules/{name}`: 204; its tasks stay.
    func deleteSchedule(_ context: SluiceRequestContext) async throws -> Response {
        let name = try context.pathParameter("name")
        guard try await scheduleStore().deleteSchedule(name) else { throw APIError(.notFound, "not_found", "no schedule is called \(name.prefix(128))") }
        return Response(status: .noContent)
    }

    /// `POST /v1/schedules/{name}/run`: one task now, outside the slots (they fire as usual).
    func runSchedule(_ context: SluiceRequestContext) async throws -> Response {
        let task = try await runScheduleNow(try await namedSchedule(context))
        return jsonResponse(bytes: TaskJSON.bytes(task, durable: true), status: .accepted, headers: [.location: "/v1/tasks/\(task.id)"])
    }

    /// One task of `schedule`, now: no idempotency key, so it touches no slot (the API's and the console's run).
    func runScheduleNow(_ schedule: Schedule) async throws -> TaskRecord {
        var request = schedule.definition.enqueueRequest(slot: clock.now())
        request.idempotencyKey = nil
        return try await store.enqueue(request).task
    }

    /// Enables or disables schedule `name`: the console's equivalent of `PATCH {"enabled": …}`.
    func setScheduleEnabled(_ name: String, _ enabled: Bool) async throws -> Schedule {
        try await updateSchedule(name) { base in
            var definition = base
            definition.enabled = enabled
            return definition
        }.0
    }

    private func namedSchedule(_ context: SluiceRequestContext) async throws -> Schedule {
        try await namedSchedule(try context.pathParameter("name"))
    }

    /// The schedule called `name`, or 404.
    func namedSchedule(_ name: String) async throws -> Schedule {
        guard let schedule = try await scheduleStore().schedule(name) else {
            throw APIError(.notFound, "not_found", "no schedule is called \(name.prefix(128))")
        }
        return schedule
    }

    private func scheduleJSON(_ schedule: Schedule, now: Date) async throws -> [String: JSONValue] {
        ScheduleJSON.encode(schedule, now: now, lastTask: try await lastTask(of: schedule))
    }

    /// The task the schedule's newest slot fired, or `nil` (none yet, or pruned since).
    func lastTask(of schedule: Schedule) async throws -> TaskRecord? {
        try await schedule.lastTaskID.asyncMap { try await store.task($0) } ?? nil
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
