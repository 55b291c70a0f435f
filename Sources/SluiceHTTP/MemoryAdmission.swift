import Synchronization

/// Admission of fire-and-forget tasks under a bound on the unfinished ones in memory: they live
/// only in this process, and nothing else stops a burst from filling it. Counting costs a pass over
/// the memory store, so a count is reused for up to `refresh`; tasks admitted since that count are
/// added to it, so that a burst cannot slip past the bound between two counts. Tasks finished since
/// are not subtracted: between counts the bound errs towards refusing, never towards admitting.
final class MemoryAdmission: Sendable {
    private struct Count {
        var at: ContinuousClock.Instant
        var live: Int
        var admitted: Int
    }
    private let state = Mutex<Count?>(nil)

    /// Whether `tasks` more fit under `limit`; if so they are counted as admitted. `count` reads the
    /// unfinished tasks in memory when the last count is older than `refresh`.
    func admit(_ tasks: Int, limit: Int, refresh: Duration, count: () async throws -> Int) async throws -> Bool {
        let stale = state.withLock { current in current.map { ContinuousClock.now - $0.at >= refresh } ?? true }
        if stale {
            let live = try await count()
            state.withLock { $0 = Count(at: .now, live: live, admitted: 0) }
        }
        return state.withLock { current in
            guard var count = current, count.live + count.admitted + tasks <= limit else { return false }
            count.admitted += tasks
            current = count
            return true
        }
    }
}
