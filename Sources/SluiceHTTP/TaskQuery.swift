import Foundation
import SluiceCore
import SluiceStore

/// A task search as the URL spells it, shared by `GET /v1/tasks`, `POST /v1/tasks/bulk` and the
/// console's tasks page (so a console link is a shareable search): `state`, `queue`, `kind`, `id`
/// (a prefix), `args` (a substring), `args.NAME=VALUE`, `created_after`, `created_before`, `limit`,
/// `cursor`, `durable`.
struct TaskQuery: Sendable {
    var filter = TaskFilter()
    var limit = 50
    var cursor: TaskID?
    var durable = true
    /// The parameters as given (known ones only), to rebuild links.
    var parameters: [(String, String)] = []

    /// The parameter names besides `args.NAME`.
    static let names = ["state", "queue", "kind", "id", "args", "created_after", "created_before", "limit", "cursor", "durable"]

    /// Parses `pairs` (query or form parameters); unknown names are ignored, bad values refused
    /// with the parameter named. `prefix` names the place in a body (`filter.`).
    static func parse(_ pairs: [(String, String)], prefix: String = "") throws -> TaskQuery {
        var query = TaskQuery()
        var after: Date?, before: Date?
        var idRange: ClosedRange<TaskID>?
        for (name, value) in pairs where !value.isEmpty {
            func bad(_ message: String) -> APIError { APIError.badRequest(prefix + name, message) }
            switch name {
            case "state":
                var set = Set<TaskState>()
                for part in value.split(separator: ",") {
                    guard let state = TaskState(rawValue: String(part)) else {
                        throw bad("\(part.prefix(32)) is not a state; states: \(TaskState.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    set.insert(state)
                }
                // Only commas (`state=,`) name no state: any, as an empty value does.
                if !set.isEmpty { query.filter.states = set }
            case "queue": query.filter.queue = value
            case "kind": query.filter.kind = value
            case "id":
                guard let range = TaskID.range(prefix: value) else { throw bad("must be the start of a task id (Crockford base32, at most 26 characters)") }
                idRange = range
            case "args": query.filter.argsContains = value
            case "created_after", "created_before":
                // A time holds no space: one here is the `+` of an offset written unencoded in a URL
                // (`+02:00`), which form decoding read as a space.
                guard let date = TaskJSON.parseTime(value.replacingOccurrences(of: " ", with: "+")) else { throw bad("must be an RFC 3339 time such as 2026-11-27T18:00:00Z") }
                if name == "created_after" { after = date } else { before = date }
            case "limit":
                guard let n = Int(value), (1...1000).contains(n) else { throw bad("must be a whole number from 1 to 1000") }
                query.limit = n
            case "cursor":
                guard let id = TaskID(value) else { throw bad("is not a cursor this API gave out") }
                query.cursor = id
            case "durable":
                guard value == "true" || value == "false" else { throw bad("must be true or false, not \(value.prefix(32))") }
                query.durable = value == "true"
            case _ where name.hasPrefix("args."):
                let field = String(name.dropFirst(5))
                guard TaskFilter.ArgsField.isValidName(field) else { throw bad("must name a top-level args field: letters, digits, _ and -") }
                query.filter.argsFields.append(.init(name: field, value: value))
            default: continue
            }
            query.parameters.append((name, value))
        }
        // A creation-time range is an id range: ids sort by creation.
        if after != nil || before != nil {
            let low = after.map { TaskID.lowerBound(at: $0) } ?? TaskID.range(prefix: "")!.lowerBound
            let high = before.map { TaskID.lowerBound(at: $0) } ?? TaskID.range(prefix: "")!.upperBound
            guard low <= high else { throw APIError.badRequest(prefix + "created_after", "must be before created_before") }
            let time = low...high
            if let prefixRange = idRange {
                let lower = max(time.lowerBound, prefixRange.lowerBound), upper = min(time.upperBound, prefixRange.upperBound)
                idRange = lower <= upper ? lower...upper : time.lowerBound...time.lowerBound
            } else {
                idRange = time
            }
        }
        query.filter.ids = idRange
        return query
    }

    /// The query string of this search with `changes` applied (`nil` removes a parameter).
    func link(_ changes: [String: String?] = [:]) -> String {
        var pairs = parameters.filter { changes[$0.0] == nil }
        for (name, value) in changes.sorted(by: { $0.key < $1.key }) { if let value { pairs.append((name, value)) } }
        return pairs.map { "\(Self.escape($0.0))=\(Self.escape($0.1))" }.joined(separator: "&")
    }

    static func escape(_ text: String) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+?#")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
