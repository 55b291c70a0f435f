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
        let fields = try JSONFields(value, at: prefix, known: fields)
        var request = EnqueueRequest(kind: try fields.required("kind", fields.string))
        if let args = fields["args"] {
            guard args.objectValue != nil else { throw .badRequest(prefix + "args", "must be a JSON object") }
            request.args = args
        }
        if let queue = try fields.string("queue") { request.queue = queue }
        let durable = try fields.bool("durable") ?? true
        if let priority = try fields.integer("priority") { request.priority = priority }
        if let attempts = try fields.integer("max_attempts") { request.maxAttempts = attempts }
        if let timeout = try fields.number("timeout") {
            guard timeout > 0, timeout <= 86_400 else { throw .badRequest(prefix + "timeout", "must be more than 0 and at most 86400 seconds") }
            // Up to the millisecond, but not for binary noise: 2.007 s is 2007.0000000000002 ms.
            request.timeout = .milliseconds(Int64(((timeout * 1000 * 1000).rounded() / 1000).rounded(.up)))
        }
        let delay = try fields.number("delay")
        let runAt = try fields.string("run_at")
        switch (delay, runAt) {
        case (.some, .some): throw .badRequest(prefix + "delay", "give delay or run_at, not both")
        case (let delay?, nil):
            guard delay >= 0, delay <= EnqueueRequest.Limits.maxDelaySeconds else {
                throw .badRequest(prefix + "delay", "must be from 0 to \(Int(EnqueueRequest.Limits.maxDelaySeconds)) seconds")
            }
            // Counted from when the store takes it, by the store's clock, not this host's.
            request.delay = .microseconds(Int64((delay * 1_000_000).rounded()))
        case (nil, let text?):
            guard let date = TaskJSON.parseTime(text) else { throw .badRequest(prefix + "run_at", "must be an RFC 3339 time such as 2030-01-02T03:04:05Z") }
            request.runAt = date
        case (nil, nil): break
        }
        request.idempotencyKey = try fields.string("idempotency_key") ?? idempotencyHeader
        do {
            try request.validate(now: now)
        } catch {
            throw .badRequest(prefix + (error.field ?? "body"), String(error.message.drop(while: { $0 != ":" }).dropFirst(2)))
        }
        // Schedules key their tasks `schedule:NAME@SLOT`; a client's task holding one would block that slot.
        if let key = request.idempotencyKey, key.hasPrefix(Schedule.idempotencyKeyPrefix) {
            throw .badRequest(prefix + "idempotency_key", "keys starting with \"\(Schedule.idempotencyKeyPrefix)\" are kept for the tasks schedules fire")
        }
        return EnqueueBody(request: request, durable: durable)
    }
}
