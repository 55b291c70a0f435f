import Logging
import SluiceStore

/// Refreshes the planner's statistics now and then (SQLite's `PRAGMA optimize`), so plans chosen
/// for a small table stay right as it grows to millions of rows. Cheap when little changed.
struct Optimizer: Chore {
    let store: any TaskStore
    let interval: Duration
    let logger: Logger

    func tick() async {
        do { try await store.optimize() } catch { logger.warning("refreshing the planner's statistics failed: \(error)") }
    }
}
