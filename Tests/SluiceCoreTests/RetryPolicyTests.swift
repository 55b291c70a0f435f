import SluiceCore
import Testing

@Suite(.timeLimit(.minutes(4))) struct RetryPolicyTests {
    @Test func ceilingDoublesUpToTheCap() {
        let policy = RetryPolicy(base: .seconds(2), cap: .seconds(30))
        #expect((1...6).map { policy.ceiling(afterAttempt: $0) } ==
                [.seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(30), .seconds(30)])
        #expect(policy.ceiling(afterAttempt: 500) == .seconds(30))
    }

    @Test func fullJitterSpansZeroToTheCeiling() {
        let policy = RetryPolicy(base: .seconds(1), cap: .seconds(60))
        #expect(policy.delay(afterAttempt: 3, unit: 0) == .zero)
        #expect(policy.delay(afterAttempt: 3, unit: 0.5) == .seconds(2))
        #expect(policy.delay(afterAttempt: 3, unit: 1) == .seconds(4))
    }
}
