import Foundation
import SluiceCore
import Testing

@Suite(.timeLimit(.minutes(4))) struct EnqueueRequestTests {
    static let now = Date(timeIntervalSince1970: 1_750_000_000)

    @Test(arguments: [
        (EnqueueRequest(kind: ""), "kind"),
        (EnqueueRequest(kind: "a b"), "kind"),
        (EnqueueRequest(kind: "echo", queue: String(repeating: "q", count: 129)), "queue"),
        (EnqueueRequest(kind: "echo", args: [1, 2]), "args"),
        (EnqueueRequest(kind: "echo", priority: 1001), "priority"),
        (EnqueueRequest(kind: "echo", maxAttempts: 0), "max_attempts"),
        (EnqueueRequest(kind: "echo", timeout: .zero), "timeout"),
        (EnqueueRequest(kind: "echo", timeout: .seconds(86_401)), "timeout"),
        (EnqueueRequest(kind: "echo", runAt: now.addingTimeInterval(400 * 86_400)), "run_at"),
        (EnqueueRequest(kind: "echo", idempotencyKey: ""), "idempotency_key"),
        (EnqueueRequest(kind: "echo", retryPolicy: RetryPolicy(base: .seconds(5), cap: .seconds(1))), "retry"),
    ])
    func badFieldsAreNamed(request: EnqueueRequest, field: String) {
        let error = #expect(throws: SluiceError.self) { try request.validate(now: Self.now) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.field == field)
    }

    /// Args nested deeper than the stores' JSON readers go could be stored but never read back
    /// (a row that strands every claim and rescue that meets it): refused, naming args.
    @Test func argsNestedTooDeeplyAreRefused() throws {
        func nested(_ levels: Int) -> JSONValue {
            var value: JSONValue = 1
            for _ in 0..<levels { value = .array([value]) }
            return ["x": value]
        }
        try EnqueueRequest(kind: "echo", args: nested(JSONValue.maxNesting - 1)).validate(now: Self.now)
        let error = #expect(throws: SluiceError.self) { try EnqueueRequest(kind: "echo", args: nested(JSONValue.maxNesting)).validate(now: Self.now) }
        #expect(error?.field == "args" && error?.message.contains("at most 100 levels") == true, "\(String(describing: error))")
        #expect(nested(1000).unstorable(nesting: JSONValue.maxNesting) == .tooDeep)
        #expect(JSONValue.object(["a": .string("x\u{0}")]).unstorable(nesting: JSONValue.maxNesting) == .nul)
    }

    @Test func aPlainRequestIsValid() throws {
        try EnqueueRequest(kind: "sleep", args: ["seconds": 3]).validate(now: Self.now)
    }
}
