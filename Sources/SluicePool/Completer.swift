import Logging
import Synchronization
import SluiceCore
import SluiceStore

/// Writes outcomes back in batches, and refills the slots they freed in the same transaction:
/// one commit per wave of tasks instead of one for the outcomes and one for the next claims.
/// A write the store refuses for storage reasons is retried, so a task is never marked failed
/// because the disk was; an outcome whose lease was lost is dropped (someone else owns the task).
/// Once the worker has drained, writes are retried for at most one more grace period, all together,
/// so a store that stays unreachable cannot keep the process from exiting: those tasks run again.
struct Completer {
    let worker: Worker
    /// The most outcomes one transaction carries.
    static let batchLimit = 1024
    func run() async {
        // Batches written at once: while one commits, the next is already on its way to the store,
        // as many as the durable store says pay (`TaskStore.outcomeBatchesInFlight`).
        let slots = FlushSlots(max(1, worker.store.outcomeBatchesInFlight))
        await withDiscardingTaskGroup { group in
            while let batch = await worker.outcomes.next(limit: Self.batchLimit) {
                await slots.acquire()
                group.addTask {
                    for source in [TaskSource.memory, .durable] {
                        let mine = batch.outcomes.filter { $0.source == source }
                        if !mine.isEmpty { await record(mine, source: source) }
                    }
                    worker.outcomes.settle(batch)
                    slots.release()
                }
            }
        }
    }

    /// Records one source's outcomes; for the durable store, claims for the pools they came from.
    private func record(_ outcomes: [Outcome], source: TaskSource) async {
        let store = worker.store(for: source)
        let logger = worker.logger
        var pause = Duration.milliseconds(100)
        var failures = 0
        var failingSince: Duration?
        while true {
            // Slots are reserved per attempt: a failed write must give them back.
            let refills: [(Pool, Int)] = source == .durable && !worker.isStopping
                ? Set(outcomes.map(\.pool)).compactMap { name in worker.pool(name).map { ($0, $0.reserveSlots()) } }.filter { $0.1 > 0 }
                : []
            let claims = refills.map { ClaimRequest(queues: worker.claimableQueues($0.0), limit: $0.1, owner: worker.id, leaseDuration: worker.options.leaseDuration) }
            do {
                let result = try await store.record(outcomes.map(\.result), thenClaim: claims)
                for (outcome, recorded) in zip(outcomes, result.recorded) {
                    switch recorded {
                    case .success(let task) where source == .memory && task.state.isFinal && task.state != .succeeded:
                        // Nothing durable records it: the log is where a fire-and-forget failure shows.
                        logger.warning("fire-and-forget task \(task.id) (\(task.kind)) \(task.state.rawValue): \(task.error ?? "")")
                    case .success: break
                    case .failure(let error):
                        logger.info("dropped a stale outcome of task \(outcome.result.lease.taskID): \(error.message)", metadata: ["worker": "\(worker.id)"])
                    }
                }
                for ((pool, reserved), claimed) in zip(refills, result.claimed) {
                    let refused = pool.submit(claimed, from: .durable, reserved: reserved)
                    if !refused.isEmpty { try? await store.release(refused.compactMap(\.lease)) }
                }
                // The fetchers look again: a pool whose refill came up short may have work elsewhere.
                for name in Set(outcomes.map(\.pool)) { worker.pool(name)?.wake.signal() }
                return
            } catch let error as SluiceError where error.code == .storage {
                for (pool, reserved) in refills { pool.unreserve(reserved) }
                // Shutting down, a refused write is retried for one more grace period after the
                // drain (for every batch together), so that the process still exits.
                if let deadline = worker.outcomesDeadline, worker.monotonic.now() >= deadline {
                    logger.error("recording \(outcomes.count) outcomes failed through the grace period of shutdown; giving up (their leases will expire and the tasks run again): \(error)",
                                 metadata: ["worker": "\(worker.id)"])
                    return
                }
                // One outcome the store keeps refusing (a row it cannot write) must not hold back
                // the others of its batch for good: after a few tries, each half is written alone.
                // The halves are written side by side, so that a half the store goes on refusing
                // does not hold up the other; one outcome refused for a whole lease is given up (its
                // lease, no longer renewed, expires and the task runs again), so that it cannot
                // hold up the batches behind it either. A store that refuses everything (a full
                // disk) gets there too: by then the leases have expired anyway.
                failures += 1
                if outcomes.count > 1 && failures >= 3 {
                    logger.error("recording \(outcomes.count) outcomes failed \(failures) times; writing them in halves: \(error)", metadata: ["worker": "\(worker.id)"])
                    let half = outcomes.count / 2
                    async let first: Void = record(Array(outcomes[..<half]), source: source)
                    await record(Array(outcomes[half...]), source: source)
                    await first
                    return
                }
                let now = worker.monotonic.now()
                let since = failingSince ?? now
                failingSince = since
                if outcomes.count == 1 && now - since >= worker.options.leaseDuration {
                    logger.error("recording the outcome of task \(outcomes[0].result.lease.taskID) failed for \(worker.options.leaseDuration); giving it up (its lease will expire and the task run again): \(error)",
                                 metadata: ["worker": "\(worker.id)"])
                    return
                }
                logger.error("recording \(outcomes.count) outcomes failed, retrying in \(pause): \(error)", metadata: ["worker": "\(worker.id)"])
                try? await Task.sleep(for: pause)
                if Task.isCancelled { return }
                pause = min(pause * 2, .seconds(5))
            } catch {
                // Not a storage failure: retrying would fail the same way. The leases expire and
                // the tasks run again elsewhere; say so loudly.
                for (pool, reserved) in refills { pool.unreserve(reserved) }
                logger.error("recording \(outcomes.count) outcomes failed and will not be retried (their leases will expire and the tasks run again): \(error)",
                             metadata: ["worker": "\(worker.id)"])
                return
            }
        }
    }
}

/// Bounds the batches in flight: `acquire` waits while all are taken.
final class FlushSlots: Sendable {
    private struct State {
        var free: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state: Mutex<State>

    init(_ count: Int) { state = Mutex(State(free: count)) }

    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { state in
                if state.free > 0 {
                    state.free -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
    }

    func release() {
        let next: CheckedContinuation<Void, Never>? = state.withLock { state in
            if state.waiters.isEmpty {
                state.free += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
