import Foundation
import Logging
import SluiceCore
import SluiceStore
import Synchronization

/// Records this process and its pools' capacity in the directory, applies operators' pool
/// changes, and takes autoscale steps, every `registrationInterval`.
final class Registrar: Sendable {
    let worker: Worker
    private let applied = Mutex<[String: Date]>([:])

    init(worker: Worker) { self.worker = worker }

    func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: worker.options.registrationInterval)
            if Task.isCancelled { return }
            await register()
        }
    }

    func register() async {
        do {
            let now = worker.clock.now()
            var capacity = try await worker.capacity()
            for (index, (pool, figures)) in zip(worker.pools, capacity).enumerated() {
                pool.autoscaleStep(waiting: figures.waiting, quietPeriod: worker.options.quietPeriod)
                // One advisor sample per second, taken here so that every process samples alike.
                capacity[index] = pool.sample(waiting: figures.waiting, scheduled: figures.scheduled, now: now)
            }
            try await worker.store.recordWorker(WorkerInfo(id: worker.id, host: worker.host, pid: Int(getpid()), startedAt: worker.startedAt,
                                                           heartbeatAt: worker.clock.now(), pools: capacity, kinds: worker.kinds))
            apply(try await worker.store.poolSettings())
            // Pauses reach every process within a second: its fetchers skip paused queues.
            worker.setPausedQueues(try await worker.store.pausedQueues())
        } catch {
            worker.logger.warning("registration failed: \(error)", metadata: ["worker": "\(worker.id)"])
        }
    }

    /// Applies the newest stored change for each pool, including one made before this process
    /// started: an operator's resize outlives restarts, as it does in Oban and Sidekiq.
    func apply(_ settings: [PoolSetting]) {
        for pool in worker.pools {
            let mine = settings.filter { $0.pool == pool.name && ($0.worker == nil || $0.worker == worker.id) }
            guard let newest = mine.max(by: { $0.updatedAt < $1.updatedAt }) else { continue }
            let isNew = applied.withLock { applied in
                guard applied[pool.name].map({ newest.updatedAt > $0 }) ?? true else { return false }
                applied[pool.name] = newest.updatedAt
                return true
            }
            guard isNew else { continue }
            let current = pool.capacity()
            pool.setConcurrency(newest.concurrency ?? current.target, autoscale: newest.autoscale)
            worker.logger.info("pool \(pool.name): concurrency set to \(pool.capacity().target)\(newest.autoscale.map { " (autoscale \($0.min)…\($0.max))" } ?? "") by an operator's change of \(newest.updatedAt)",
                               metadata: ["worker": "\(worker.id)"])
        }
    }
}
