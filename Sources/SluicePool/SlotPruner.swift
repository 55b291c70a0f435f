import Foundation
import Logging
import SluiceCore
import SluiceStore

/// Deletes fired-slot records older than a week, each hour, in batches of 10,000 (each its own
/// transaction) until none is left, at most 100 batches a pass. Slots before a schedule's cursor
/// are refused by the cursor itself; the records only guard the slots after it.
struct SlotPruner: Chore {
    let store: any ScheduleStore
    let clock: any WallClock
    let logger: Logger
    var interval: Duration { .seconds(3600) }
    /// How long slot records are kept.
    static let retention: TimeInterval = 7 * 86_400

    static let batch = 10_000
    /// A pass's bound: a million records an hour outpaces 10,000 schedules firing every minute.
    static let batchesPerPass = 100

    func tick() async {
        do {
            _ = try await prune()
        } catch {
            logger.warning("pruning schedule slots failed: \(error)")
        }
    }

    /// One pass; returns how many records went.
    func prune() async throws -> Int {
        let before = clock.now().addingTimeInterval(-Self.retention)
        var total = 0
        for _ in 0..<Self.batchesPerPass {
            let deleted = try await store.pruneScheduleSlots(before: before, limit: Self.batch)
            total += deleted
            if deleted < Self.batch { break }
        }
        return total
    }
}
