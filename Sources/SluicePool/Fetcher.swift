import SluiceCore
import SluiceStore

/// Claims tasks for one pool: never more than its free slots, memory first, then the durable
/// store. Woken at once by enqueues its stores hear of, by other processes' writes (SQLite) and by
/// freed slots; otherwise it polls with a backoff capped at `maxPollInterval`, for tasks other
/// processes enqueued, or at `backstopPollInterval` while its stores hear every enqueue
/// (PostgreSQL's LISTEN), waking early when a delayed task or a retry falls due.
struct Fetcher {
    let pool: Pool
    let worker: Worker

    func run(stopping: @Sendable () -> Bool) async {
        var pause = Duration.milliseconds(2)
        let logger = worker.logger
        while !stopping() {
            let free = pool.reserveSlots()
            if free == 0 {
                await pool.wake.wait(timeout: .seconds(1))
                continue
            }
            var claimedCount = 0
            let queues = worker.claimableQueues(pool)
            do {
                for (source, store) in worker.sources where claimedCount < free && !queues.isEmpty {
                    let claimed = try await store.claim(queues: queues, limit: free - claimedCount, owner: worker.id,
                                                        leaseDuration: worker.options.leaseDuration)
                    claimedCount += claimed.count
                    let refused = pool.submit(claimed, from: source, reserved: claimed.count)
                    if !refused.isEmpty { try await store.release(refused.compactMap(\.lease)) }
                }
                pool.unreserve(free - claimedCount, wakingFetcher: false)
                if claimedCount == free { pause = .milliseconds(2); continue }
                if claimedCount > 0 { pause = .milliseconds(2) }
                // Signalled, it looks again soon even if this look finds nothing: enqueue notices
                // are throttled (PostgreSQL sends one per queue per 5 ms from a process), so more
                // tasks may follow the one that woke it unannounced.
                // A failed look only costs the early wake (the claim itself went through).
                let signalled = await pool.wake.wait(timeout: (try? await untilDue(queues, within: pause)) ?? pause)
                let hearsAll = worker.sources.allSatisfy { $0.1.hearsEveryEnqueue }
                pause = signalled ? .milliseconds(1) : min(pause * 2, hearsAll ? worker.options.backstopPollInterval : worker.options.maxPollInterval)
            } catch {
                pool.unreserve(free - claimedCount, wakingFetcher: false)
                logger.warning("claiming for pool \(pool.name) failed: \(error)", metadata: ["worker": "\(worker.id)"])
                await pool.wake.wait(timeout: .seconds(1))
            }
        }
    }

    /// `pause`, or less when a delayed task or a retry of `queues` falls due sooner: no enqueue
    /// announces those, and a fetcher that sleeps up to a second between polls (while LISTEN
    /// hears every enqueue) would start them late. Polls of 50 ms or less do not ask.
    private func untilDue(_ queues: [String], within pause: Duration) async throws -> Duration {
        guard pause > worker.options.maxPollInterval, !queues.isEmpty else { return pause }
        var wait = pause
        for (_, store) in worker.sources {
            if let due = try await store.nextDue(in: queues, within: wait) { wait = min(wait, NextDue.wake(forDue: due)) }
        }
        return wait
    }
}
