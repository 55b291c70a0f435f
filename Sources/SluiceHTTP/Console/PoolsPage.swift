import Foundation
import Hummingbird
import SluiceCore

/// `/ui/pools`: each pool across processes, the advisor's numbers, and the resize and autoscale forms.
extension SluiceAPI {
    func poolsPage(_ request: ConsoleRequest) async throws -> ConsoleView {
        let pools = try await poolSummaries()
        let live = pools.map { pool in
            let rows = pool.processes.map { process, figures in
                """
                <tr><td class="mono">\(HTML.escape(process.id))</td><td class="num">\(figures.target)</td><td class="num">\(figures.threads)</td>\
                <td class="num">\(figures.busy)</td><td class="num">\(figures.free)</td><td class="num">\(figures.stuck)</td>\
                <td class="num">\(HTML.number(figures.activity.map { $0.utilisation * 100 }))</td>\
                <td>\(figures.autoscale.map { "\($0.min)…\($0.max)" } ?? "–")</td></tr>
                """
            }.joined()
            let activity = pool.activity
            let suggested = pool.advice.recommendedConcurrency.map { " value=\"\($0)\"" } ?? ""
            // The form sets each process's size: hint with that, not the pool's total.
            let sizes = Set(pool.processes.map(\.pool.target))
            let placeholder = sizes.count == 1 ? " placeholder=\"\(sizes.first!)\"" : ""
            return """
                <section class="card" id="pool-\(HTML.escape(pool.name))" data-pool="\(HTML.escape(pool.name))">\(poolBlock(pool))
                <table class="advisor"><tbody>
                <tr><th>utilisation, last minute</th><td>\(HTML.number(activity.map { $0.utilisation * 100 })) %</td>\
                <th>wait p50 / p99</th><td>\(HTML.number(activity?.waitP50)) s / \(HTML.number(activity?.waitP99)) s</td></tr>
                <tr><th>arrivals</th><td>\(HTML.number(pool.advice.arrivalRate)) /s</td><th>completions</th><td>\(HTML.number(activity?.completionRate)) /s</td></tr>
                <tr><th>run time p50 / p99</th><td>\(HTML.number(pool.runTimeP50)) s / \(HTML.number(pool.runTimeP99)) s</td>\
                <th>slots needed (λ·S)</th><td>\(HTML.number(pool.advice.offeredLoad))</td></tr>
                </tbody></table>
                <form class="settings" method="post" action="/ui/pools/resize">\(HTML.csrfField(request.csrf))
                <input type="hidden" name="pool" value="\(HTML.escape(pool.name))">
                <label>concurrency of each process <input type="number" name="concurrency" min="1" max="\(PoolSetting.concurrencyRange.upperBound)" required\(placeholder)\(suggested)></label>
                <button type="submit" class="primary">Resize</button></form>
                <form class="settings" method="post" action="/ui/pools/resize">\(HTML.csrfField(request.csrf))
                <input type="hidden" name="pool" value="\(HTML.escape(pool.name))">
                <label>autoscale min <input type="number" name="min" min="1" max="\(PoolSetting.concurrencyRange.upperBound)" required></label>
                <label>max <input type="number" name="max" min="1" max="\(PoolSetting.concurrencyRange.upperBound)" required></label>
                <button type="submit">Set autoscale</button></form>
                <table><thead><tr><th>process</th><th class="num">target</th><th class="num">actual</th><th class="num">busy</th><th class="num">free</th>\
                <th class="num">stuck</th><th class="num">util. %</th><th>autoscale</th></tr></thead><tbody>\(rows)</tbody></table></section>
                """
        }.joined()
        return ConsoleView(title: "Pools", section: "pools",
                           live: live.isEmpty ? "<section class=\"card\"><p class=\"muted\">No live process runs a pool.</p></section>" : live)
    }

    /// The resize and autoscale forms: the same change as `PATCH /v1/pools/{name}`.
    func resizeFromConsole(_ request: ConsoleRequest) async throws -> Response {
        let name = request.get("pool") ?? ""
        func number(_ field: String) throws -> Int? {
            guard let text = request.get(field), !text.isEmpty else { return nil }
            guard let n = Int(text), PoolSetting.concurrencyRange.contains(n) else {
                throw APIError.badRequest(field, "must be a whole number from 1 to \(PoolSetting.concurrencyRange.upperBound)")
            }
            return n
        }
        let concurrency = try number("concurrency")
        var autoscale: AutoscaleRange?
        if let low = try number("min"), let high = try number("max") {
            guard high >= low else { throw APIError.badRequest("max", "must be at least min") }
            autoscale = AutoscaleRange(min: low, max: high)
        }
        guard concurrency != nil || autoscale != nil else { throw APIError.badRequest("concurrency", "give a concurrency, or autoscale min and max") }
        let targets = try await resizePool(name, concurrency: concurrency, autoscale: autoscale, only: nil)
        let what = concurrency.map { "concurrency \($0)" } ?? autoscale.map { "autoscale \($0.min)…\($0.max)" } ?? ""
        return redirect("/ui/pools", notice: "Pool \(name): \(what), for each of its \(targets.count) process(es); each applies it within a second.")
    }
}
