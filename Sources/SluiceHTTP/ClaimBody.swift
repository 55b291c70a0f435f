import SluiceCore

/// A remote worker's claim: the free slots of each of its pools, and how long it will wait.
struct ClaimBody {
    struct Pool {
        var name: String
        var queues: [String]
        var free: Int
    }

    var pools: [Pool]
    var wait: Duration

    /// Parses a claim; `prefix` names its place (`claim.` in an outcomes body).
    static func parse(_ value: JSONValue, at prefix: String = "", maxWait: Double, maxTasks: Int) throws(APIError) -> ClaimBody {
        let fields = try JSONFields(value, at: prefix, known: ["pools", "wait"])
        let items = try fields.required("pools") { (n) throws(APIError) in try fields.array(n, limit: 100) }
        var pools: [Pool] = []
        for (index, item) in items.enumerated() {
            let pool = try JSONFields(item, at: fields.path("pools[\(index)]."), known: ["name", "queues", "free"])
            pools.append(Pool(name: try pool.required("name", pool.name), queues: try queues(pool),
                              free: try pool.required("free") { (n) throws(APIError) in try pool.integer(n, in: 0...maxTasks) }))
        }
        guard pools.reduce(0, { $0 + $1.free }) <= maxTasks else { throw .badRequest(fields.path("pools"), "may ask for at most \(maxTasks) tasks in all") }
        let seconds = try fields.number("wait", in: 0...maxWait) ?? 0
        return ClaimBody(pools: pools, wait: .milliseconds(Int64(seconds * 1000)))
    }

    /// The `queues` member: 1 to 100 queue names, earlier first.
    static func queues(_ fields: JSONFields) throws(APIError) -> [String] {
        let items = try fields.required("queues") { (n) throws(APIError) in try fields.array(n, limit: 100) }
        guard !items.isEmpty else { throw .badRequest(fields.path("queues"), "must name at least one queue") }
        var queues: [String] = []
        for (index, item) in items.enumerated() {
            guard let name = item.stringValue else { throw .badRequest(fields.path("queues[\(index)]"), "must be a string") }
            try JSONFields.checkName(name, at: fields.path("queues[\(index)]"))
            queues.append(name)
        }
        return queues
    }
}
