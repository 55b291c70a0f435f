import Foundation
import SluiceCore

/// Small helpers for writing HTML in Swift: escaping, and the few widgets pages share.
enum HTML {
    /// Text safe inside elements and quoted attributes.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// A hidden CSRF field for a form.
    static func csrfField(_ token: String) -> String {
        "<input type=\"hidden\" name=\"\(ConsoleSessions.csrfField)\" value=\"\(escape(token))\">"
    }

    /// A form posting to `action` with one button, and hidden `fields`.
    static func button(_ label: String, action: String, csrf: String, fields: [(String, String)] = [], classes: String = "") -> String {
        let hidden = fields.map { "<input type=\"hidden\" name=\"\(escape($0.0))\" value=\"\(escape($0.1))\">" }.joined()
        return "<form class=\"inline\" method=\"post\" action=\"\(escape(action))\">\(csrfField(csrf))\(hidden)<button type=\"submit\" class=\"\(classes)\">\(escape(label))</button></form>"
    }

    /// A state's name in a colored badge.
    static func badge(_ text: String, _ kind: String) -> String {
        "<span class=\"badge \(escape(kind))\">\(escape(text))</span>"
    }

    /// A number as the advisor writes it, or a dash.
    static func number(_ value: Double?) -> String { value.map(PoolAdvisor.format) ?? "–" }

    /// A time as RFC 3339, or a dash; without `milliseconds`, shown to the second (a schedule's slots).
    static func time(_ date: Date?, milliseconds: Bool = true) -> String {
        date.map {
            let text = TaskJSON.time($0).replacingOccurrences(of: "T", with: " ")
            return "<time datetime=\"\(TaskJSON.time($0))\">\(milliseconds ? text : text.replacingOccurrences(of: ".000Z", with: "Z"))</time>"
        } ?? "–"
    }

    /// JSON pretty-printed with sorted keys, escaped, in a collapsible block.
    static func json(_ value: JSONValue?, summary: String, open: Bool = true) -> String {
        guard let value else { return "<p class=\"muted\">\(escape(summary)): none</p>" }
        let data = Data(value.jsonBytes())
        let pretty = (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]))
            .flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]) }
            .map { String(decoding: $0, as: UTF8.self) } ?? value.jsonText()
        return "<details\(open ? " open" : "")><summary>\(escape(summary))</summary><pre class=\"json\">\(escape(pretty))</pre></details>"
    }

    /// A pool's slots as one bar: busy, stuck and free parts of the target, actual threads marked.
    static func capacityBar(target: Int, actual: Int, busy: Int, stuck: Int, free: Int) -> String {
        let total = max(1, max(target, busy + stuck + free, actual))
        func width(_ n: Int) -> Double { (Double(n) / Double(total) * 300).rounded() }
        var x = 0.0
        var parts = ""
        for (n, kind) in [(busy, "busy"), (stuck, "stuck"), (free, "free")] where n > 0 {
            parts += "<rect class=\"\(kind)\" x=\"\(x)\" y=\"0\" width=\"\(width(n))\" height=\"14\"><title>\(n) \(kind)</title></rect>"
            x += width(n)
        }
        let marker = width(actual)
        return """
            <svg class="bar" viewBox="0 0 300 18" width="300" height="18" role="img" aria-label="\(busy) busy, \(stuck) stuck, \(free) free of \(target); \(actual) threads">\
            <rect class="track" x="0" y="0" width="300" height="14"></rect>\(parts)\
            <line class="actual" x1="\(marker)" x2="\(marker)" y1="0" y2="18"><title>\(actual) threads alive</title></line></svg>
            """
    }

    /// A line chart of per-second counts, summed into buckets of `step` seconds.
    static func throughputChart(_ series: (start: Int64, counts: [ThroughputHistory.Event: [Int]]), step: Int) -> String {
        let events = ThroughputHistory.Event.allCases
        let length = series.counts.values.first?.count ?? 0
        let buckets = max(1, length / step)
        var sums: [ThroughputHistory.Event: [Double]] = [:]
        for event in events {
            let values = series.counts[event] ?? []
            sums[event] = (0..<buckets).map { b in Double(values[(b * step)..<min(values.count, (b + 1) * step)].reduce(0, +)) / Double(step) }
        }
        let peak = max(1, sums.values.flatMap { $0 }.max() ?? 1)
        let (width, height) = (600.0, 160.0)
        var lines = ""
        for event in events {
            let points = sums[event]!.enumerated().map { index, value in
                let x = buckets == 1 ? 0 : Double(index) / Double(buckets - 1) * width
                return "\(String(format: "%.1f", x)),\(String(format: "%.1f", height - value / peak * (height - 10)))"
            }.joined(separator: " ")
            lines += "<polyline class=\"series \(event.rawValue)\" points=\"\(points)\"><title>\(event.rawValue)</title></polyline>"
        }
        let legend = events.map { event in
            let total = series.counts[event]?.reduce(0, +) ?? 0
            return "<span class=\"legend \(event.rawValue)\">\(event.rawValue) <b>\(total)</b></span>"
        }.joined(separator: " ")
        let minutes = length / 60
        return """
            <figure class="chart"><svg viewBox="0 0 \(Int(width)) \(Int(height))" preserveAspectRatio="none" role="img" aria-label="tasks per second, last \(minutes) minutes">\
            <line class="axis" x1="0" x2="\(Int(width))" y1="\(Int(height))" y2="\(Int(height))"></line>\(lines)</svg>\
            <figcaption>tasks per second over the last \(minutes) min (peak \(PoolAdvisor.format(peak))/s, \(step) s steps) · totals: \(legend)</figcaption></figure>
            """
    }
}

