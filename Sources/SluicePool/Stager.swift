import Logging
import SluiceCore
import SluiceStore

/// Makes scheduled and retrying tasks whose time has come claimable, at most 1000 per pass. Claims
/// stage the tasks they can take themselves; this keeps the counts true for queues nobody drains.
struct Stager: Chore {
    let store: any TaskStore
    let interval: Duration
    let logger: Logger

    func tick() async {
        do { _ = try await store.stageDue(limit: 1000) } catch { logger.warning("staging due tasks failed: \(error)") }
    }
}
