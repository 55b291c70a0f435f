import Foundation
import Hummingbird
import SluiceCore
import SluiceStore

/// `/ui/tasks/{id}`: one task, its args and result as collapsible JSON, its attempts, and the
/// cancel, retry and delete buttons.
extension SluiceAPI {
    func taskPage(_ text: String, _ request: ConsoleRequest) async throws -> ConsoleView {
        guard let id = TaskID(text) else { throw APIError(.notFound, "not_found", "no task has id \(text.prefix(64))") }
        let found: (task: TaskRecord, durable: Bool)
        if let memory, let task = try await memory.task(id) { found = (task, false) }
        else if let task = try await store.task(id) { found = (task, true) }
        else { throw APIError(.notFound, "not_found", "no task has id \(id)") }
        let task = found.task
        var buttons = ""
        if !task.state.isFinal {
            buttons += HTML.button("Cancel", action: "/ui/tasks/\(id)/cancel", csrf: request.csrf, classes: "danger")
        }
        if task.state == .failed || task.state == .cancelled {
            buttons += HTML.button("Retry", action: "/ui/tasks/\(id)/retry", csrf: request.csrf, classes: "primary")
        }
        if task.state.isFinal { buttons += " " + HTML.button("Delete", action: "/ui/tasks/\(id)/delete", csrf: request.csrf, classes: "danger") }
        let errors = Dictionary(task.attemptErrors.map { ($0.attempt, $0) }, uniquingKeysWith: { $1 })
        let attempts = (0..<task.attempt).reversed().map { index -> String in
            let n = index + 1
            let latest = n == task.attempt
            return """
                <tr><td class="num">\(n)</td><td class="mono">\(latest ? HTML.escape(task.worker ?? "–") : "–")</td>\
                <td>\(latest ? HTML.time(task.startedAt) : "–")</td><td>\(latest ? HTML.time(task.finishedAt) : HTML.time(errors[n]?.at))</td>\
                <td>\(errors[n].map { HTML.escape($0.message) } ?? (latest && task.state == .succeeded ? "succeeded" : latest ? HTML.escape(task.state.rawValue) : "–"))</td></tr>
                """
        }.joined()
        let live = """
            <section class="card"><p>\(HTML.badge(task.state.rawValue, task.state.rawValue)) <span class="task-state">\(task.state.rawValue)</span>\
            \(task.cancelRequested && task.state == .running ? " (cancel requested)" : "") \(buttons)</p>
            <table><tbody>
            <tr><th>id</th><td class="mono">\(id)</td><th>kind</th><td>\(HTML.escape(task.kind))</td></tr>
            <tr><th>queue</th><td><a href="/ui/tasks?queue=\(TaskQuery.escape(task.queue))">\(HTML.escape(task.queue))</a></td><th>priority</th><td>\(task.priority)</td></tr>
            <tr><th>attempt</th><td>\(task.attempt) of \(task.maxAttempts)</td><th>durable</th><td>\(found.durable ? "yes" : "no (memory)")</td></tr>
            <tr><th>created</th><td>\(HTML.time(task.createdAt))</td><th>runs at</th><td>\(HTML.time(task.runAt))</td></tr>
            <tr><th>started</th><td>\(HTML.time(task.startedAt))</td><th>finished</th><td>\(HTML.time(task.finishedAt))</td></tr>
            <tr><th>timeout</th><td>\(HTML.number(task.timeout.seconds)) s</td><th>idempotency key</th><td>\(HTML.escape(task.idempotencyKey ?? "–"))</td></tr>
            </tbody></table>
            \(task.error.map { "<div class=\"error\">\(HTML.escape($0))</div>" } ?? "")
            \(HTML.json(task.args, summary: "args"))\(HTML.json(task.result, summary: "result"))
            <h2>Attempts</h2>\(task.attempt == 0 ? "<p class=\"muted\">Not started yet.</p>" : "<table><thead><tr><th class=\"num\">#</th><th>worker</th><th>started</th><th>ended</th><th>outcome</th></tr></thead><tbody>\(attempts)</tbody></table>")
            </section>
            """
        return ConsoleView(title: "Task \(id)", section: "tasks", live: live)
    }

    /// The cancel, retry and delete buttons of a task.
    func taskActionFromConsole(_ text: String, _ action: String, _ request: ConsoleRequest) async throws -> Response {
        guard let id = TaskID(text) else { throw APIError(.notFound, "not_found", "no task has id \(text.prefix(64))") }
        guard let move = BulkAction(rawValue: action) else { throw APIError(.notFound, "not_found", "no console action \(action.prefix(32))") }
        let source: any TaskStore = try await memory?.task(id) != nil ? memory! : store
        try await move.apply(source, id)
        if move == .delete { return redirect("/ui/tasks", notice: "Task \(id) deleted.") }
        return redirect("/ui/tasks/\(id)", notice: "Task \(id): \(action) done.")
    }
}
