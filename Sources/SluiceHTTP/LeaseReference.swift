import Foundation
import SluiceCore

/// A lease as a remote worker names it: the task and the token its claim drew. The owner is the
/// worker of the path, so one worker cannot write with another's lease.
struct LeaseReference {
    var taskID: TaskID
    var token: Int64
    var attempt: Int

    static let fields: Set<String> = ["id", "token", "attempt"]

    static func parse(_ fields: JSONFields) throws(APIError) -> LeaseReference {
        let text = try fields.required("id", fields.string)
        guard let id = TaskID(text) else { throw .badRequest(fields.path("id"), "is not a task id this server gave out") }
        // A string, as claims answer it; a number is accepted from parsers that keep 64-bit integers.
        let token: Int64? = switch fields["token"] {
        case .string(let digits)?: Int64(digits)
        case .int(let number)?: number
        default: nil
        }
        guard fields["token"] != nil else { throw .badRequest(fields.path("token"), "is required: the token string the claim answered") }
        guard let token, token > 0 else {
            throw .badRequest(fields.path("token"), "must be the token string the claim answered: digits, from 1 to \(Int64.max)")
        }
        return LeaseReference(taskID: id, token: token, attempt: try fields.integer("attempt", in: 0...1_000_000) ?? 0)
    }

    /// The `leases` member of `fields`: an array of leases.
    static func parseList(_ fields: JSONFields, maxBatch: Int) throws(APIError) -> [LeaseReference] {
        var leases: [LeaseReference] = []
        var seen = Set<TaskID>()
        for (index, item) in (try fields.array("leases", limit: maxBatch) ?? []).enumerated() {
            let lease = try parse(try JSONFields(item, at: "leases[\(index)].", known: Self.fields))
            // Statuses are answered per task: a second lease on one task would hide the first's.
            guard seen.insert(lease.taskID).inserted else { throw .badRequest("leases[\(index)].id", "names task \(lease.taskID) a second time") }
            leases.append(lease)
        }
        return leases
    }

    /// The store's lease, owned by `owner`. Stores fence by owner and token; the expiry is theirs.
    func lease(owner: String, now: Date) -> TaskLease {
        TaskLease(taskID: taskID, owner: owner, attempt: attempt, token: token, expiresAt: now)
    }
}
