import Foundation
import SluiceCore
import SluiceStore

/// One outcome in a remote worker's batch: an attempt's lease and either its `result`
/// (any JSON, `null` included) or its `error` with what should follow.
struct RemoteOutcome {
    var lease: LeaseReference
    var result: JSONValue?
    var failure: TaskFailure?

    static let fields = LeaseReference.fields.union(["result", "error", "retry", "retry_after", "cancel"])

    /// The `outcomes` member of an outcomes body.
    static func parse(_ body: JSONFields, maxBatch: Int) throws(APIError) -> [RemoteOutcome] {
        let items = try body.required("outcomes") { (n) throws(APIError) in try body.array(n, limit: maxBatch) }
        var outcomes: [RemoteOutcome] = []
        for (index, item) in items.enumerated() {
            let fields = try JSONFields(item, at: "outcomes[\(index)].", known: fields)
            let lease = try LeaseReference.parse(fields)
            let error = try fields.string("error")
            // `result` may be null (a function that returns nothing), so its presence is what counts.
            switch (fields.object["result"], error) {
            case (let result?, nil):
                for name in ["retry", "retry_after", "cancel"] where fields[name] != nil {
                    throw .badRequest(fields.path(name), "belongs to a failure (with error), not a result")
                }
                outcomes.append(RemoteOutcome(lease: lease, result: result, failure: nil))
            case (nil, let message?):
                outcomes.append(RemoteOutcome(lease: lease, result: nil, failure: TaskFailure(String(message.prefix(65_536)), disposition: try disposition(fields))))
            case (.some, .some): throw .badRequest(fields.path("error"), "give result or error, not both")
            case (nil, nil): throw .badRequest(fields.path("result"), "give result (the task's JSON result) or error (a message)")
            }
        }
        return outcomes
    }

    /// What follows a failure: `cancel`, no retry (`"retry": false`), a retry after `retry_after`
    /// seconds, or the task's own backoff.
    private static func disposition(_ fields: JSONFields) throws(APIError) -> TaskFailure.Disposition {
        let retry = try fields.bool("retry")
        let after = try fields.number("retry_after", in: 0...EnqueueRequest.Limits.maxDelaySeconds)
        if try fields.bool("cancel") == true {
            guard retry == nil, after == nil else { throw .badRequest(fields.path("cancel"), "a cancelled task is not retried: leave out retry and retry_after") }
            return .cancel
        }
        switch (retry, after) {
        case (false?, .some): throw .badRequest(fields.path("retry_after"), "contradicts \"retry\": false")
        case (false?, nil): return .discard
        case (_, let seconds?): return .retryAfter(.milliseconds(Int64(seconds * 1000)))
        default: return .retry
        }
    }

    /// The store's outcome, under a lease owned by `owner`.
    func outcome(owner: String, now: Date) -> TaskOutcome {
        let lease = self.lease.lease(owner: owner, now: now)
        if let failure { return .fail(lease, failure) }
        return .completed(lease, result ?? .null)
    }
}
