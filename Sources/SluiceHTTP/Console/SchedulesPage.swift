import Foundation
import Hummingbird
import SluiceCore

/// `/ui/schedules`: every schedule with its next fires and last task, and the run-now and
/// enable/disable buttons (the same changes as `POST /v1/schedules/{name}/run` and `PATCH`).
extension SluiceAPI {
    /// How many upcoming fire times a row shows.
    static let consoleUpcomingFires = 3

    func schedulesPage(_ request: ConsoleRequest) async throws -> ConsoleView {
        let now = clock.now()
        var rows = ""
        for schedule in try await scheduleStore().schedules() {
            rows += scheduleRow(schedule, lastTask: try await lastTask(of: schedule), now: now, request: request)
        }
        let live = rows.isEmpty
            ? "<p class=\"muted\">No schedule yet: create one with <code>POST /v1/schedules</code>, <code>sluice schedules add</code> or <code>serve --schedules FILE</code>.</p>"
            : """
            <table class="schedules"><thead><tr><th>schedule</th><th>cron · time zone</th><th>state</th><th>misfire · overlap</th>\
            <th>next fires (UTC)</th><th>last fire · task</th><th></th></tr></thead><tbody>\(rows)</tbody></table>
            """
        return ConsoleView(title: "Schedules", section: "schedules", live: "<section class=\"card\">\(live)</section>")
    }

    /// One schedule as a table row.
    func scheduleRow(_ schedule: Schedule, lastTask: TaskRecord?, now: Date, request: ConsoleRequest) -> String {
        let definition = schedule.definition
        let upcoming = schedule.upcomingFires(now: now, count: Self.consoleUpcomingFires)
        let next = upcoming.isEmpty
            ? "<span class=\"muted\">\(definition.enabled ? "never again" : "none while disabled")</span>"
            : "<ul class=\"fires\">\(upcoming.map { "<li>\(HTML.time($0, milliseconds: false))</li>" }.joined())</ul>"
        // A pruned task keeps its id on the schedule: say so rather than link to a 404.
        let last = schedule.lastTaskID.map { id in
            lastTask.map { "<a class=\"mono\" href=\"/ui/tasks/\(id)\">\(id)</a> \(HTML.badge($0.state.rawValue, $0.state.rawValue))" }
                ?? "<span class=\"mono\">\(id)</span> <span class=\"muted\">pruned</span>"
        } ?? "<span class=\"muted\">none yet</span>"
        let name = [("schedule", definition.name)]
        let buttons = HTML.button("Run now", action: "/ui/schedules/run", csrf: request.csrf, fields: name, classes: "primary")
            + " " + HTML.button(definition.enabled ? "Disable" : "Enable", action: "/ui/schedules/enable", csrf: request.csrf,
                                fields: name + [("enabled", definition.enabled ? "false" : "true")])
        return """
            <tr data-schedule="\(HTML.escape(definition.name))"><td><b>\(HTML.escape(definition.name))</b><div class="muted">\
            \(HTML.escape(definition.kind)) → \(HTML.escape(definition.queue))</div></td>\
            <td><div class="mono cron">\(HTML.escape(definition.cron.source))</div><div class="muted zone">\(HTML.escape(definition.timeZone))</div></td>\
            <td class="enabled">\(definition.enabled ? HTML.badge("enabled", "ok") : HTML.badge("disabled", "paused"))</td>\
            <td class="policies"><div>misfire <span class="misfire">\(definition.misfire.rawValue)</span></div>\
            <div>overlap <span class="overlap">\(definition.overlap ? "yes" : "no")</span></div></td>\
            <td class="next">\(next)</td>\
            <td><div class="last-fire">\(HTML.time(schedule.lastSlot, milliseconds: false))</div><div class="last-task">\(last)</div></td>\
            <td class="actions">\(buttons)</td></tr>
            """
    }

    /// The run-now button: one task now, outside the slots; shows that task.
    func runScheduleFromConsole(_ request: ConsoleRequest) async throws -> Response {
        let name = request.get("schedule") ?? ""
        let task = try await runScheduleNow(try await namedSchedule(name))
        return redirect("/ui/tasks/\(task.id)", notice: "Schedule \(name): task \(task.id) enqueued now, outside its slots (they fire as usual).")
    }

    /// The enable and disable buttons.
    func enableScheduleFromConsole(_ request: ConsoleRequest) async throws -> Response {
        let name = request.get("schedule") ?? ""
        guard let enabled = request.get("enabled").flatMap({ Bool($0) }) else { throw APIError.badRequest("enabled", "must be true or false") }
        _ = try await setScheduleEnabled(name, enabled)
        // Enabling starts the slots from now (docs/SCHEDULES.md, Edits): say so, since none missed meanwhile will fire.
        return redirect("/ui/schedules", notice: enabled
            ? "Schedule \(name) enabled: it fires from its next slot; slots passed while it was disabled are not owed."
            : "Schedule \(name) disabled: its slots pass unfired until it is enabled again.")
    }
}
