import Logging
import SluiceCore
import SluiceStore

/// Renews every lease this process holds, every `heartbeatInterval`, in a task of its own: it
/// never waits behind maintenance or registration. What the store answers stops cancelled tasks
/// and tasks whose lease was lost.
struct Heartbeater {
    let worker: Worker

    func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: worker.options.heartbeatInterval)
            if Task.isCancelled { return }
            await beat()
        }
    }

    func beat() async {
        for (source, store) in worker.sources {
            // Finished tasks whose outcome is not yet written keep their leases too. Statuses are
            // per task, so only those of the pools' own leases go back to the pools: a timed-out
            // run's late outcome is "lost" while a newer attempt of the same task runs here (or is
            // about to), and that run must not read it as its own.
            let running = worker.pools.flatMap { $0.leases(from: source) }
            let tokens = Dictionary(running.map { ($0.taskID, $0.token) }, uniquingKeysWith: { first, _ in first })
            let leases = running + worker.outcomes.leases(from: source).filter { tokens[$0.taskID] == nil }
            guard !leases.isEmpty else { continue }
            do {
                let sent = worker.monotonic.now()
                let statuses = try await store.heartbeat(leases, leaseDuration: worker.options.leaseDuration)
                var answers: [TaskID: LeaseAnswer] = [:]
                for (id, status) in statuses { if let token = tokens[id] { answers[id] = LeaseAnswer(token: token, status: status) } }
                for pool in worker.pools { pool.apply(answers, from: source, sent: sent) }
            } catch {
                worker.logger.warning("heartbeat failed: \(error)", metadata: ["worker": "\(worker.id)"])
            }
        }
    }
}

/// What a heartbeat learned about one lease it sent: the lease's token and its status.
struct LeaseAnswer: Sendable {
    var token: Int64
    var status: LeaseStatus
}
