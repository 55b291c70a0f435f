import Foundation
import SluiceCore

/// A `POST /v1/tasks` body, read strictly: unknown fields and wrong types are refused, naming the field.
struct EnqueueBody {
    var request: EnqueueRequest
    var durable: Bool

    static let fields: Set<String> = ["kind", "args", "queue", "durable", "priority", "delay", "run_at", "max_attempts",
                                      "timeout", "idempotency_key"]

    /// Parses one task; `prefix` names its place in a batch (`[3].`).
    static func parse(_ value: JSONValue, prefix: String = "", now: Date, idempotencyHeader: String? = nil) throws(APIError) -> EnqueueBody {
        guard let object = value.objectValue else { throw .badRequest(prefix.isEmpty ? "body" : String(prefix.dropLast()), "must be a JSON object") }
        if let unknown = object.keys.sorted().first(where: { !fields.contains($0) }) {
            throw .badRequest(prefix + unknown, "is not a known field; known fields: \(fields.sorted().joined(separator: ", "))")
        }
        func string(_ name: String) throws(APIError) -> String? {
            guard let value = object[name], value != .null else { return nil }
            guard let text = value.stringValue else { throw .badRequest(prefix + name, "must be a string") }
            return text
        }
        func integer(_ name: String) throws(APIError) -> Int? {
            guard let value = object[name], value != .null else { return nil }
            guard let number = value.intValue, let int = Int(exactly: number) else { throw .badRequest(prefix + name, "must be a whole number") }
            return int
        }
        func number(_ name: String) throws(APIError) -> Double? {
            guard let value = object[name], value != .null else { return nil }
            guard let number = value.doubleValue, number.isFinite else { throw .badRequest(prefix + name, "must be a number") }
            return number
        }
        guard let kind = try string("kind") else { throw .badRequest(prefix + "kind", "is required") }
        var request = EnqueueRequest(kind: kind)
        if let args = object["args"], args != .null {
            guard args.objectValue != nil else { throw .badRequest(prefix + "args", "must be a JSON object") }
            request.args = args
        }
        if let queue = try string("queue") { request.queue = queue }
        var durable = true
        if let flag = object["durable"], flag != .null {
            guard case .bool(let value) = flag else { throw .badRequest(prefix + "durable", "must be true or false") }
            durable = value
        }
        if let priority = try integer("priority") { request.priority = priority }
        if let attempts = try integer("max_attempts") { request.maxAttempts = attempts }
        if let timeout = try number("timeout") {
            guard timeout > 0, timeout <= 86_400 else { throw .badRequest(prefix + "timeout", "must be more than 0 and at most 86400 seconds") }
            request.timeout = .milliseconds(Int64((timeout * 1000).rounded(.up)))
        }
        let delay = try number("delay")
        let runAt = try string("run_at")
        switch (delay, runAt) {
        case (.some, .some): throw .badRequest(prefix + "delay", "give delay or run_at, not both")
        case (let delay?, nil):
            guard delay >= 0, delay <= EnqueueRequest.Limits.maxDelaySeconds else {
                throw .badRequest(prefix + "delay", "must be from 0 to \(Int(EnqueueRequest.Limits.maxDelaySeconds)) seconds")
            }
            request.runAt = now.addingTimeInterval(delay)
        case (nil, let text?):
            guard let date = TaskJSON.parseTime(text) else { throw .badRequest(prefix + "run_at", "must be an RFC 3339 time such as 2030-01-02T03:04:05Z") }
            request.runAt = date
        case (nil, nil): break
        }
        request.idempotencyKey = try string("idempotency_key") ?? idempotencyHeader
        do {
            try request.validate(now: now)
        } catch {
            throw .badRequest(prefix + (error.field ?? "body"), String(error.message.drop(while: { $0 != ":" }).dropFirst(2)))
        }
        return EnqueueBody(request: request, durable: durable)
    }
}
