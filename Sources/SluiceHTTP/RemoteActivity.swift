import Foundation
import SluiceCore
import Synchronization

/// The pool advisor's figures for remote workers' pools. A remote worker reports counts (busy,
/// finished) but not the advisor's activity, which `sluice worker` measures itself; without it the
/// advisor called a remote pool "unknown" for good, or read a pool it shares with `sluice worker` as
/// idle. So this server samples each remote pool at every heartbeat that reports it, and times each
/// task it hands out by claim (from when the task could run to the claim: a remote worker claims
/// only for free slots). Kept per worker and pool, forgotten when the worker deregisters or falls
/// silent.
final class RemoteActivity: Sendable {
    private struct State {
        var recorders: [String: PoolActivityRecorder] = [:]
        var lastSample: [String: Date] = [:]
        var lastSweep = Date.distantPast
        /// When each queue was last resumed (waits start there at the earliest).
        var resumes = QueueResumes()
    }
    private let state = Mutex(State())
    /// A pool not heard from for this long is forgotten (the workers list forgets after 15 s).
    static let forgetAfter: TimeInterval = 60

    private static func key(_ worker: String, _ pool: String) -> String { worker + "\u{0}" + pool }

    /// Records a heartbeat's figures of `pool` and returns the activity they imply so far.
    func sample(worker: String, pool: PoolCapacity, at now: Date) -> PoolActivity? {
        let key = Self.key(worker, pool.name)
        return state.withLock { state in
            if now.timeIntervalSince(state.lastSweep) > Self.forgetAfter {
                state.lastSweep = now
                for (stale, seen) in state.lastSample where now.timeIntervalSince(seen) > Self.forgetAfter {
                    state.recorders[stale] = nil
                    state.lastSample[stale] = nil
                }
            }
            let finished = pool.processed
            // Started = finished + running: the worker counts no starts, and these only grow.
            let sample = PoolActivityRecorder.Sample(at: now, busy: pool.busy + pool.stuck, target: pool.target, waiting: pool.waiting,
                                                     started: finished + pool.busy + pool.stuck, finished: finished)
            state.recorders[key, default: PoolActivityRecorder()].add(sample)
            state.lastSample[key] = now
            return state.recorders[key]?.activity(now: now)
        }
    }

    /// Times the tasks a claim handed to `worker`'s `pool`.
    func claimed(worker: String, pool: String, tasks: [TaskRecord], at now: Date) {
        guard !tasks.isEmpty else { return }
        let key = Self.key(worker, pool)
        state.withLock { state in
            for task in tasks {
                state.recorders[key, default: PoolActivityRecorder()].addWait(now.timeIntervalSince(state.resumes.readyAt(task)), at: now)
            }
        }
    }

    /// Notes the queues paused now; those no longer paused were resumed at `now`.
    func paused(_ queues: Set<String>, at now: Date) {
        state.withLock { $0.resumes.paused(queues, at: now) }
    }

    /// Forgets a worker that deregistered.
    func forget(worker: String) {
        let prefix = worker + "\u{0}"
        state.withLock { state in
            for key in state.recorders.keys where key.hasPrefix(prefix) {
                state.recorders[key] = nil
                state.lastSample[key] = nil
            }
        }
    }
}
