import Foundation
import SluicePool
import Testing

/// The signal fetchers and the completer wait on: woken at once when signalled, otherwise when the
/// timeout passes, with few timers however many waits are signalled first.
@Suite(.timeLimit(.minutes(1))) struct WakeSignalTests {
    @Test func aSignalBeforeTheWaitIsKeptForIt() async {
        let signal = WakeSignal()
        signal.signal()
        let started = ContinuousClock.now
        #expect(await signal.wait(timeout: .seconds(30)), "signalled")
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(signal.timersArmed == 0)
    }

    @Test func anUnsignalledWaitEndsWhenItsTimeoutPasses() async {
        let signal = WakeSignal()
        let started = ContinuousClock.now
        #expect(await signal.wait(timeout: .milliseconds(50)) == false, "timed out")
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(50) && waited < .seconds(10), "\(waited)")
    }

    /// Waits signalled in time share the first one's timer instead of arming one each; and a short
    /// wait after them still ends on time, not when that long timer fires.
    @Test func signalledWaitsArmFewTimersAndAShortWaitStillEndsOnTime() async {
        let signal = WakeSignal()
        async let first: Bool = signal.wait(timeout: .seconds(30))
        while signal.timersArmed == 0 { await Task.yield() }  // it waits, with its timer armed
        signal.signal()
        _ = await first
        // Each of these is signalled while waiting or just before: with or without the wait begun,
        // none needs a timer of its own.
        for _ in 0..<1000 {
            async let waited: Bool = signal.wait(timeout: .seconds(30))
            signal.signal()
            _ = await waited
        }
        #expect(signal.timersArmed == 1, "one 30 s timer serves every later 30 s wait")
        let started = ContinuousClock.now
        await signal.wait(timeout: .milliseconds(50))
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(50) && waited < .seconds(10), "the 30 s timer does not hold up a 50 ms wait: \(waited)")
        #expect(signal.timersArmed == 2)
    }

    /// A waiter that began after the armed timer is woken at its own deadline: the timer, firing
    /// early for it, arms one for it. (The first wait is long enough to be signalled before its
    /// timer fires even on a loaded machine, where the test's task may wait seconds for a thread;
    /// a 100 ms one was not, on CI.)
    /// On a machine so loaded that the first wait's 5 s pass before the test signals it, the
    /// scenario did not happen: it is tried again, three times at most.
    @Test func aLaterWaiterIsWokenAtItsOwnDeadline() async {
        for _ in 1...3 {
            let signal = WakeSignal()
            let began = ContinuousClock.now
            async let first: Bool = signal.wait(timeout: .seconds(5))
            while signal.timersArmed == 0 { await Task.yield() }  // it waits, with its 5 s timer armed
            signal.signal()
            _ = await first
            guard ContinuousClock.now - began < .seconds(5) else { continue }  // timed out, not signalled
            let started = ContinuousClock.now
            await signal.wait(timeout: .milliseconds(5500))
            let waited = ContinuousClock.now - started
            #expect(waited >= .milliseconds(5500) && waited < .seconds(30), "\(waited)")
            #expect(signal.timersArmed == 2, "the first timer fired early for this wait and armed one for its deadline")
            return
        }
        Issue.record("three times the first wait timed out before the test could signal it")
    }
}
