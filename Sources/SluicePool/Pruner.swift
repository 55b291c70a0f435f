import Logging
import SluiceCore
import SluiceStore

/// Deletes finished tasks older than the retention, at most `limit` per pass (in small
/// transactions), so a large backlog is cleared over several passes without holding the store.
struct Pruner: Chore {
    let store: any TaskStore
    let retention: Duration
    let interval: Duration
    let limit: Int
    let logger: Logger

    func tick() async {
        do {
            let pruned = try await store.prune(finishedBefore: retention, limit: limit)
            if pruned > 0 { logger.info("pruned \(pruned) finished tasks\(pruned == limit ? " (the most per pass; more next pass)" : "")") }
        } catch { logger.warning("prune failed: \(error)") }
    }
}
