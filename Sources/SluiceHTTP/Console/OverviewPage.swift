import Foundation
import SluiceCore

/// The overview: throughput of the last 15 minutes, queues, pools with the advisor's verdict, workers.
extension SluiceAPI {
    func overviewPage(_ request: ConsoleRequest) async throws -> ConsoleView {
        let chart = HTML.throughputChart(history.series(queue: nil, seconds: 900), step: 15)
        let queues = try await queueSummaries()
        let pools = try await poolSummaries()
        let processes = try await store.workers(seenWithin: .seconds(15))
        let live = """
            <section class="card"><h2>Throughput</h2>\(chart)</section>
            <div class="grid"><section class="card"><h2>Queues</h2>\(queueTable(queues, request: request, actions: false))</section>
            <section class="card"><h2>Pools</h2>\(pools.map { poolBlock($0) }.joined())\(pools.isEmpty ? "<p class=\"muted\">No live process runs a pool.</p>" : "")</section></div>
            <section class="card"><h2>Workers</h2>\(workerTable(processes))</section>
            """
        return ConsoleView(title: "Overview", section: "overview", live: live)
    }

    /// One pool's bar, figures and verdict.
    func poolBlock(_ pool: PoolSummary) -> String {
        """
        <div class="pool" data-pool="\(HTML.escape(pool.name))"><h3><a href="/ui/pools#pool-\(HTML.escape(pool.name))">\(HTML.escape(pool.name))</a> \
        <span class="muted">queues \(HTML.escape(pool.queues.joined(separator: ", ")))</span></h3>
        \(HTML.capacityBar(target: pool.target, actual: pool.actual, busy: pool.busy, stuck: pool.stuck, free: pool.free))
        <p class="figures">target <b class="target">\(pool.target)</b> · actual \(pool.actual) · busy \(pool.busy) · free \(pool.free) · stuck \(pool.stuck) · waiting <b>\(pool.waiting)</b></p>
        <p class="verdict">\(HTML.badge(pool.advice.verdict.rawValue, pool.advice.verdict.rawValue)) <span class="advice">\(HTML.escape(pool.advice.message))</span></p></div>
        """
    }

    /// Processes as a table.
    func workerTable(_ processes: [WorkerInfo]) -> String {
        guard !processes.isEmpty else { return "<p class=\"muted\">No process has registered in the last 15 s.</p>" }
        let rows = processes.map { process in
            """
            <tr><td class="mono">\(HTML.escape(process.id))\(process.id == worker?.id ? " " + HTML.badge("this server", "ok") : "")</td>\
            <td>\(HTML.escape(process.host))</td><td class="num">\(process.pid)</td><td class="wide">\(HTML.time(process.startedAt))</td>\
            <td>\(HTML.time(process.heartbeatAt))</td>\
            <td>\(process.pools.map { "\(HTML.escape($0.name)) (\($0.busy)/\($0.target))" }.joined(separator: ", "))</td></tr>
            """
        }.joined()
        return "<table><thead><tr><th>id</th><th>host</th><th class=\"num\">pid</th><th class=\"wide\">started</th><th>last heartbeat</th><th>pools (busy/target)</th></tr></thead><tbody>\(rows)</tbody></table>"
    }

    /// `/ui/workers`.
    func workersPage(_ request: ConsoleRequest) async throws -> ConsoleView {
        let processes = try await store.workers(seenWithin: .seconds(15))
        return ConsoleView(title: "Workers", section: "workers", live: "<section class=\"card\">\(workerTable(processes))</section>")
    }
}
