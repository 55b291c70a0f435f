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
            let leases = worker.pools.flatMap { $0.leases(from: source) }
            guard !leases.isEmpty else { continue }
            do {
                let statuses = try await store.heartbeat(leases, leaseDuration: worker.options.leaseDuration)
                for pool in worker.pools { pool.apply(statuses, from: source) }
            } catch {
                worker.logger.warning("heartbeat failed: \(error)", metadata: ["worker": "\(worker.id)"])
            }
        }
    }
}
