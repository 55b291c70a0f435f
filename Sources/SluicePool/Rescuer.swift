import Logging
import SluiceCore
import SluiceStore

/// Requeues (or fails, when out of attempts) running tasks whose lease expired: their worker
/// crashed or was killed. At most 1000 per pass.
struct Rescuer: Chore {
    let store: any TaskStore
    let interval: Duration
    let logger: Logger

    func tick() async {
        do {
            let report = try await store.rescueExpiredLeases(limit: 1000)
            if report.total > 0 {
                logger.warning("rescued \(report.total) tasks whose worker stopped heartbeating (requeued \(report.requeued.count), failed \(report.failed.count), cancelled \(report.cancelled.count))")
            }
        } catch { logger.warning("rescue failed: \(error)") }
    }
}
