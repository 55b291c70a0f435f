import Foundation
import SluiceCore
@testable import SluicePool
import Synchronization
import Testing

/// `TaskContext.sleep(seconds:)`: a blocking handler's wait that a cancel, timeout or lost lease
/// ends at once, on real threads.
@Suite(.timeLimit(.minutes(1))) struct TaskContextTests {
    private func context(_ flag: CancellationFlag) -> TaskContext {
        TaskContext(id: TaskID.lowerBound(at: Date()), kind: "sleep", args: [:], attempt: 1, maxAttempts: 3,
                    deadline: Date().addingTimeInterval(60), cancellation: flag)
    }

    @Test func sleepsItsWholeTimeWhenNothingStopsIt() throws {
        let clock = ContinuousClock()
        let start = clock.now
        try context(CancellationFlag()).sleep(seconds: 0.05)
        #expect(clock.now - start >= .milliseconds(50))
    }

    @Test func aCancelFromAnotherThreadEndsTheSleepAtOnceWithItsReason() throws {
        let flag = CancellationFlag()
        let ended = Mutex<(TaskFailure?, Duration)?>(nil)
        let clock = ContinuousClock()
        let start = clock.now
        let sleeper = Thread {
            do {
                try context(flag).sleep(seconds: 60)
                ended.withLock { $0 = (nil, clock.now - start) }
            } catch {
                ended.withLock { $0 = (error as? TaskFailure, clock.now - start) }
            }
        }
        sleeper.start()
        Thread.sleep(forTimeInterval: 0.1)
        #expect(ended.withLock { $0 } == nil, "the sleep must still be running before the cancel")
        flag.set("cancelled by request")
        var outcome: (TaskFailure?, Duration)?
        while outcome == nil && clock.now - start < .seconds(30) {
            Thread.sleep(forTimeInterval: 0.01)
            outcome = ended.withLock { $0 }
        }
        let (failure, took) = try #require(outcome, "the sleep did not end after the cancel")
        #expect(failure?.message == "cancelled by request" && failure?.disposition == .cancel)
        // A sleep of a minute that ends within seconds ended because of the cancel, not its time.
        #expect(took < .seconds(30))
    }

    @Test func anyLengthIsAcceptedWithoutTrapping() throws {
        // Negative and NaN lengths return at once; infinity sleeps until the cancel, which is
        // already there here.
        try context(CancellationFlag()).sleep(seconds: -1)
        try context(CancellationFlag()).sleep(seconds: .nan)
        let flag = CancellationFlag()
        flag.set("cancelled by request")
        #expect(throws: TaskFailure.self) { try context(flag).sleep(seconds: .infinity) }
    }

    @Test func aFlagSetBeforeTheSleepThrowsWithoutWaiting() {
        let flag = CancellationFlag()
        flag.set("lease lost")
        #expect(throws: TaskFailure.self) { try context(flag).sleep(seconds: 60) }
    }
}
