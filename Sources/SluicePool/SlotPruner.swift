import Foundation
import Logging
import SluiceCore
import SluiceStore

/// Deletes fired-slot records older than a week, 10,000 per hourly pass. Slots before a schedule's
/// cursor are refused by the cursor itself; the records only guard the slots after it.
struct SlotPruner: Chore {
    let store: any ScheduleStore
    let clock: any WallClock
    let logger: Logger
    var interval: Duration { .seconds(3600) }
    /// How long slot records are kept.
    static let retention: TimeInterval = 7 * 86_400

    func tick() async {
        do {
            _ = try await store.pruneScheduleSlots(before: clock.now().addingTimeInterval(-Self.retention), limit: 10_000)
        } catch {
            logger.warning("pruning schedule slots failed: \(error)")
        }
    }
}
