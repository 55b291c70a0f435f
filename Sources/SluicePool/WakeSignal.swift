import Dispatch
import SluiceCore
import Synchronization

/// Wakes a waiting fetcher: at once when signalled (a local enqueue, a freed slot), otherwise when
/// its timeout passes. A signal that arrives while nobody waits is kept for the next wait.
public final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
        var generation = 0
    }
    private let state = Mutex(State())

    public init() {}

    /// Wakes the waiter, or the next one to wait.
    public func signal() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns when signalled or after `timeout`.
    public func wait(timeout: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let generation: Int? = state.withLock { state in
                if state.pending {
                    state.pending = false
                    return nil
                }
                state.generation += 1
                state.waiter = continuation
                return state.generation
            }
            guard let generation else { return continuation.resume() }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout.seconds) { [self] in
                let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
                    guard state.generation == generation, let waiter = state.waiter else { return nil }
                    state.waiter = nil
                    return waiter
                }
                waiter?.resume()
            }
        }
    }
}
