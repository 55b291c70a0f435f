import SluiceCore
import Testing

/// The transition table, written out independently of the code: every pair not listed is refused.
private let expected: Set<String> = [
    "scheduled→queued", "scheduled→cancelled",
    "queued→running", "queued→cancelled",
    "running→succeeded", "running→failed", "running→retrying", "running→queued", "running→cancelled",
    "retrying→queued", "retrying→cancelled",
    "failed→queued", "cancelled→queued",
]

private let allPairs = TaskState.allCases.flatMap { from in TaskState.allCases.map { (from, $0) } }

@Suite(.timeLimit(.minutes(4))) struct TaskStateTests {
    @Test(arguments: allPairs)
    func everyPairIsAllowedOrRefused(from: TaskState, to: TaskState) throws {
        let allowed = expected.contains("\(from.rawValue)→\(to.rawValue)")
        #expect(from.canTransition(to: to) == allowed)
        if allowed {
            try from.checkTransition(to: to)
        } else {
            let error = #expect(throws: SluiceError.self) { try from.checkTransition(to: to) }
            #expect(error?.code == .invalidTransition)
            #expect(error?.message.contains("\(from.rawValue) and cannot become \(to.rawValue)") == true)
        }
    }

    /// A final state is one that only a manual retry (back to `queued`) leaves: `isFinal` must agree
    /// with the table above, state by state.
    @Test(arguments: TaskState.allCases)
    func finalMeansOnlyAManualRetryLeaves(state: TaskState) {
        let exits = TaskState.allCases.filter { expected.contains("\(state.rawValue)→\($0.rawValue)") }
        #expect(state.isFinal == exits.allSatisfy { $0 == .queued }, "\(state) leaves to \(exits)")
    }
}
