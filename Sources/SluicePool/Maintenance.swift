import Logging
import SluiceCore
import SluiceStore

/// The chores one process does for all, only while it is the elected leader: the `Rescuer`, the
/// `Stager`, the `Pruner` and the `Optimizer`, each on its own interval and capped per pass, so that no pass holds
/// the store for long. The in-memory store of fire-and-forget tasks belongs to this process alone,
/// so its expired leases are rescued here whether or not this process leads.
struct Maintenance {
    let worker: Worker

    func run() async {
        let options = worker.options
        let chores: [any Chore] = [
            Rescuer(store: worker.store, interval: options.rescueInterval, logger: worker.logger),
            Stager(store: worker.store, interval: options.stageInterval, logger: worker.logger),
            Optimizer(store: worker.store, interval: .seconds(3600), logger: worker.logger),
        ] + ((worker.store as? any ScheduleStore).map {
            [Scheduler(store: $0, clock: worker.clock, interval: options.scheduleInterval, grace: options.misfireGrace, logger: worker.logger),
             SlotPruner(store: $0, clock: worker.clock, logger: worker.logger)]
        } ?? []) + (options.retention.map { [Pruner(store: worker.store, retention: $0, interval: options.pruneInterval, limit: options.pruneLimit, logger: worker.logger)] } ?? [])
        let local = worker.ephemeral.map { Rescuer(store: $0, interval: options.rescueInterval, logger: worker.logger) }
        var last: [ContinuousClock.Instant?] = Array(repeating: nil, count: chores.count)
        var lastLocal: ContinuousClock.Instant?
        while !Task.isCancelled {
            let now = ContinuousClock.now
            if let local, lastLocal.map({ now - $0 >= local.interval }) ?? true {
                lastLocal = now
                await local.tick()
            }
            if worker.isLeader {
                for (index, chore) in chores.enumerated() where last[index].map({ now - $0 >= chore.interval }) ?? true {
                    // A chore may take long enough for the lease to end meanwhile.
                    guard worker.isLeader else { break }
                    last[index] = now
                    await chore.tick()
                }
            } else {
                // A new leader starts every chore at once.
                last = Array(repeating: nil, count: chores.count)
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }
}

/// One periodic maintenance job.
protocol Chore: Sendable {
    var interval: Duration { get }
    func tick() async
}
