import Foundation
import Hummingbird
import SluiceCore

/// `/ui/queues`: counts by state, the wait of the pools that drain each queue, pause and resume.
extension SluiceAPI {
    func queuesPage(_ request: ConsoleRequest) async throws -> ConsoleView {
        let queues = try await queueSummaries()
        let pools = try await poolSummaries()
        return ConsoleView(title: "Queues", section: "queues",
                           live: "<section class=\"card\">\(queueTable(queues, request: request, actions: true, pools: pools))</section>")
    }

    /// Queues as a table; with `actions`, a pause or resume button per queue.
    func queueTable(_ queues: [QueueSummary], request: ConsoleRequest, actions: Bool, pools: [PoolSummary] = []) -> String {
        guard !queues.isEmpty else { return "<p class=\"muted\">No queue has tasks yet.</p>" }
        let rows = queues.map { queue in
            let link = "/ui/tasks?queue=\(TaskQuery.escape(queue.name))"
            let draining = pools.filter { $0.queues.contains(queue.name) }
            let wait = draining.compactMap(\.activity?.waitP50).max()
            let age = queue.headReadySince.map { max(0, clock.now().timeIntervalSince($0)) }
            var row = """
                <tr data-queue="\(HTML.escape(queue.name))"><td><a href="\(link)">\(HTML.escape(queue.name))</a>\(queue.paused ? " " + HTML.badge("paused", "paused") : "")</td>\
                <td class="num queued">\(queue.count(.queued))</td><td class="num head-age">\(HTML.number(age))</td><td class="num">\(queue.count(.scheduled) + queue.count(.retrying))</td>\
                <td class="num running">\(queue.count(.running))</td><td class="num succeeded">\(queue.count(.succeeded))</td>\
                <td class="num failed"><a href="\(link)&amp;state=failed">\(queue.count(.failed))</a></td><td class="num wide">\(queue.count(.cancelled))</td>
                """
            if actions {
                row += "<td class=\"num\">\(HTML.number(wait))</td><td>"
                row += HTML.button(queue.paused ? "Resume" : "Pause", action: "/ui/queues/pause", csrf: request.csrf,
                                   fields: [("queue", queue.name), ("paused", queue.paused ? "false" : "true")],
                                   classes: queue.paused ? "primary" : "")
                row += "</td>"
            }
            return row + "</tr>"
        }.joined()
        let extra = actions ? "<th class=\"num\" title=\"median wait for a slot, last minute\">wait p50 (s)</th><th></th>" : ""
        return """
            <table class="queues"><thead><tr><th>queue</th><th class="num">ready</th><th class="num" title="how long the next task to be claimed has waited">head waits (s)</th><th class="num">scheduled</th><th class="num">running</th>\
            <th class="num">succeeded</th><th class="num">failed</th><th class="num wide">cancelled</th>\(extra)</tr></thead><tbody>\(rows)</tbody></table>
            """
    }

    /// The pause and resume buttons.
    func pauseFromConsole(_ request: ConsoleRequest) async throws -> Response {
        let queue = request.get("queue") ?? ""
        let paused = request.get("paused") == "true"
        try await setPaused(queue, paused)
        return redirect("/ui/queues", notice: paused ? "Queue \(queue) paused: no process claims from it; enqueues are still accepted."
                                                    : "Queue \(queue) resumed.")
    }
}
