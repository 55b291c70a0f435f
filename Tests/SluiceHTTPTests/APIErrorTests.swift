import Hummingbird
import SluiceCore
import SluiceHTTP
import Testing

/// How the store's and the model's errors are answered.
@Suite(.timeLimit(.minutes(4))) struct APIErrorTests {
    @Test func idempotencyConflictIs409NamingTheKey() {
        let error = APIError(SluiceError(.idempotencyConflict, "idempotency key order-1 belongs to a task of another kind or args"))
        #expect(error.status == .conflict && error.code == "idempotency_conflict" && error.field == "idempotency_key")
    }

    @Test func overloadedIs503WithRetryAfter() {
        let error = APIError(SluiceError(.overloaded, "too many tasks in memory"))
        #expect(error.status == .serviceUnavailable && error.code == "overloaded" && error.headers[.retryAfter] == "1")
    }
}
