import Dispatch
import SluiceCore
import Synchronization

/// Wakes a waiting fetcher: at once when signalled (a local enqueue, a freed slot), otherwise when
/// its timeout passes. A signal that arrives while nobody waits is kept for the next wait.
///
/// Most waits are signalled long before their timeout (a draining completer waits up to a second
/// thousands of times a second), so a wait does not arm a timer of its own when one already armed
/// fires by its deadline: that timer, when it fires, wakes the waiter whose time has come or arms
/// one for the waiter now waiting. A timer per wait left thousands pending in dispatch's timer heap,
/// about a tenth of a draining worker's CPU.
public final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Bool, Never>?
        /// When the current waiter's timeout passes.
        var deadline = DispatchTime.distantFuture
        /// Fire times of the timers armed and not yet fired.
        var armed: [DispatchTime] = []
        var timersArmed = 0

        /// Whether a timer must be armed for `deadline` (none armed fires by then); records it if so.
        mutating func arm(for deadline: DispatchTime) -> Bool {
            if armed.contains(where: { $0 <= deadline }) { return false }
            armed.append(deadline)
            timersArmed += 1
            return true
        }
    }
    private let state = Mutex(State())

    public init() {}

    /// Timers armed so far (for tests: waits that are signalled in time should arm few).
    public var timersArmed: Int { state.withLock { $0.timersArmed } }

    /// Wakes the waiter, or the next one to wait.
    public func signal() {
        let waiter: CheckedContinuation<Bool, Never>? = state.withLock { state in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: true)
    }

    /// Returns when signalled (`true`) or after `timeout` (`false`).
    @discardableResult
    public func wait(timeout: Duration) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let deadline = DispatchTime.now() + timeout.seconds
            let outcome: (resume: Bool, arm: Bool) = state.withLock { state in
                if state.pending {
                    state.pending = false
                    return (true, false)
                }
                state.waiter = continuation
                state.deadline = deadline
                return (false, state.arm(for: deadline))
            }
            if outcome.resume { return continuation.resume(returning: true) }
            if outcome.arm { schedule(at: deadline) }
        }
    }

    private func schedule(at time: DispatchTime) {
        DispatchQueue.global().asyncAfter(deadline: time) { [self] in fire(armedFor: time) }
    }

    /// A timer fired: wake the waiter if its time has come, else make sure a timer covers it.
    private func fire(armedFor time: DispatchTime) {
        let now = DispatchTime.now()
        let (waiter, rearm): (CheckedContinuation<Bool, Never>?, DispatchTime?) = state.withLock { state in
            if let index = state.armed.firstIndex(of: time) { state.armed.remove(at: index) }
            guard let waiter = state.waiter else { return (nil, nil) }
            if state.deadline <= now {
                state.waiter = nil
                return (waiter, nil)
            }
            return (nil, state.arm(for: state.deadline) ? state.deadline : nil)
        }
        waiter?.resume(returning: false)
        if let rearm { schedule(at: rearm) }
    }
}
