import Foundation
import Hummingbird
import SluiceCore
import SluiceStore

/// `/ui/tasks`: the search of `GET /v1/tasks` with its filters in the URL (a link is the search),
/// cursor pagination, and bulk retry, cancel and delete after a confirmation.
extension SluiceAPI {
    func tasksPage(_ request: ConsoleRequest) async throws -> ConsoleView {
        let query = try TaskQuery.parse(Self.consoleSearch(request.parameters))
        let page = try await search(query)
        let value = { (name: String) in HTML.escape(query.parameters.last { $0.0 == name }?.1 ?? "") }
        // A search the form cannot spell (several states, a page size, fire-and-forget only, from a
        // link or the API's own parameters) is kept as it is, so searching again does not drop it.
        let known = [""] + TaskState.allCases.map(\.rawValue)
        let states = (known + (known.contains(value("state")) ? [] : [value("state")])).map { state in
            "<option value=\"\(state)\"\(value("state") == state ? " selected" : "")>\(state.isEmpty ? "any" : state)</option>"
        }.joined()
        let kept = ["limit", "durable"].filter { name in query.parameters.contains { $0.0 == name } }
            .map { "<input type=\"hidden\" name=\"\($0)\" value=\"\(value($0))\">" }.joined()
        let match = query.parameters.filter { $0.0.hasPrefix("args.") }.map { "\($0.0.dropFirst(5))=\($0.1)" }.joined(separator: " ")
        let top = """
            <section class="card"><form class="filters" method="get" action="/ui/tasks" id="search">\(kept)
            <label>state <select name="state">\(states)</select></label>
            <label>queue <input name="queue" value="\(value("queue"))" size="10"></label>
            <label>kind <input name="kind" value="\(value("kind"))" size="10"></label>
            <label>id starts with <input name="id" value="\(value("id"))" size="12"></label>
            <label>args contain <input name="args" value="\(value("args"))" size="12"></label>
            <label>args field <input name="match" value="\(HTML.escape(match))" placeholder="customer=42" size="12"></label>
            <label>created after <input name="created_after" value="\(value("created_after"))" placeholder="2026-11-27T18:00:00Z" size="20"></label>
            <label>created before <input name="created_before" value="\(value("created_before"))" size="20"></label>
            <button type="submit" class="primary">Search</button> <a href="/ui/tasks">clear</a></form></section>
            """
        let rows = page.tasks.map { task in
            """
            <tr data-task="\(task.id)"><td><input type="checkbox" name="id" value="\(task.id)" form="bulk" aria-label="select \(task.id)"></td>\
            <td class="mono"><a href="/ui/tasks/\(task.id)">\(task.id)</a></td><td>\(HTML.escape(task.kind))</td><td>\(HTML.escape(task.queue))</td>\
            <td>\(HTML.badge(task.state.rawValue, task.state.rawValue))</td><td class="num">\(task.attempt)/\(task.maxAttempts)</td>\
            <td class="wide">\(HTML.time(task.createdAt))</td><td class="wide mono">\(HTML.escape(String(task.args.jsonText().prefix(80))))</td></tr>
            """
        }.joined()
        var pager = ""
        if query.cursor != nil { pager += "<a href=\"/ui/tasks?\(HTML.escape(query.link(["cursor": nil])))\">first page</a>" }
        if let next = page.nextCursor { pager += "<a rel=\"next\" href=\"/ui/tasks?\(HTML.escape(query.link(["cursor": next.rawValue])))\">next page →</a>" }
        let partial = page.partial
            ? "<p class=\"muted\">This page examined \(query.filter.scanLimit) tasks without filling up (searches are bounded); the next page continues.</p>" : ""
        let search = query.link(["cursor": nil])
        let live = """
            <section class="card">
            <form id="bulk" class="settings" method="post" action="/ui/tasks/bulk">\(HTML.csrfField(request.csrf))
            <input type="hidden" name="search" value="\(HTML.escape(search))">
            <label>apply to <select name="scope"><option value="selected">the selected tasks</option><option value="all">every task matching this search</option></select></label>
            <button type="submit" name="action" value="retry">Retry</button><button type="submit" name="action" value="cancel">Cancel</button>\
            <button type="submit" name="action" value="delete" class="danger">Delete</button></form>
            \(page.tasks.isEmpty ? "<p class=\"muted\">No task matches.</p>" : "")
            <table class="tasks"><thead><tr><th></th><th>id</th><th>kind</th><th>queue</th><th>state</th><th class="num">attempt</th>\
            <th class="wide">created</th><th class="wide">args</th></tr></thead><tbody>\(rows)</tbody></table>
            \(partial)<div class="pager">\(pager)</div></section>
            """
        return ConsoleView(title: "Tasks", section: "tasks", top: top, live: live)
    }

    /// The console's search parameters as the API's: the form's `match` field (`NAME=VALUE …`)
    /// becomes `args.NAME=VALUE`, so that links stay the API's own parameters.
    static func consoleSearch(_ parameters: [(String, String)]) -> [(String, String)] {
        parameters.flatMap { name, value -> [(String, String)] in
            guard name == "match" else { return [(name, value)] }
            return value.split(separator: " ").compactMap { part in
                let pair = part.split(separator: "=", maxSplits: 1)
                return pair.count == 2 ? ("args." + pair[0], String(pair[1])) : nil
            }
        }
    }

    /// Bulk actions: a confirmation page first, then the change, then back to the search.
    func bulkFromConsole(_ request: ConsoleRequest) async throws -> Response {
        guard let action = request.get("action").flatMap(BulkAction.init(rawValue:)) else {
            throw APIError.badRequest("action", "must be one of \(BulkAction.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let search = request.get("search") ?? ""
        let all = request.get("scope") == "all"
        let ids = request.all("id").compactMap(TaskID.init)
        let searchPairs = Self.withoutNotice(Self.formPairs(search)).filter { $0.0 != "cursor" }
        if !all && ids.isEmpty { return redirect("/ui/tasks", query: search, notice: "Select some tasks first, or choose every task matching the search.") }
        // As in POST /v1/tasks/bulk: judged on the parsed search, where an empty value, `limit` or
        // `durable` is no condition.
        let query = all ? try TaskQuery.parse(searchPairs) : nil
        if let query, query.filter.matchesEverything {
            return redirect("/ui/tasks", query: search, notice: "Narrow the search first (a state, queue or kind): a bulk action on every task needs a filter.")
        }
        guard request.get("confirmed") == "yes" else {
            let what = all ? "every task matching this search (at most \(Self.bulkLimit) per confirmation)" : "\(ids.count) selected task\(ids.count == 1 ? "" : "s")"
            let hidden = request.parameters.filter { $0.0 != ConsoleSessions.csrfField }
                .map { "<input type=\"hidden\" name=\"\(HTML.escape($0.0))\" value=\"\(HTML.escape($0.1))\">" }.joined()
            let page = layout(ConsoleView(title: "Confirm", section: "tasks", live: """
                <section class="card"><p>\(HTML.escape(action.rawValue.capitalized)) \(HTML.escape(what))?</p>
                <form method="post" action="/ui/tasks/bulk">\(HTML.csrfField(request.csrf))\(hidden)<input type="hidden" name="confirmed" value="yes">
                <button type="submit" class="primary" id="confirm">Yes, \(HTML.escape(action.rawValue))</button> <a href="/ui/tasks?\(HTML.escape(search))">No, go back</a></form></section>
                """, refreshes: false), request)
            return Self.html(page)
        }
        let result = try await bulk(action, ids: all ? nil : ids, query: query)
        var notice = "\(action.rawValue): \(result.changed) of \(result.matched) changed"
        if !result.refused.isEmpty { notice += "; \(result.refused.count) refused (\(result.refused[0].1))" }
        if result.more { notice += "; more tasks match: repeat to continue" }
        return redirect("/ui/tasks", query: search, notice: notice)
    }
}
