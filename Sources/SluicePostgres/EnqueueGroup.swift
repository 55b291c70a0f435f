import SluiceCore
import SluiceStore
import Synchronization

/// Group commit for single enqueues, as the SQLite store's writer does it.
///
/// Each enqueue over HTTP is one task, and on its own it costs a transaction of five round trips
/// and a commit. Here at most `transactions` run at once; an enqueue that arrives while they are
/// all busy waits, and the next transaction takes every enqueue waiting. An idle store starts a
/// transaction at once, so a lone enqueue waits for nothing. A request refused on its own (invalid,
/// or its idempotency key names another task) gets its own error; a failed transaction fails every
/// enqueue in it, none of which was acknowledged.
final class EnqueueGroup: Sendable {
    typealias Flush = @Sendable ([EnqueueRequest]) async throws -> [Result<EnqueueResult, SluiceError>]

    private struct Waiting {
        let request: EnqueueRequest
        let continuation: CheckedContinuation<EnqueueResult, any Error>
    }
    private struct State {
        var waiting: [Waiting] = []
        var running = 0
        var stats = Stats()
    }
    /// Transactions run and enqueues they carried, to show how much the group merges.
    struct Stats: Sendable, Equatable {
        var transactions = 0
        var enqueues = 0
    }
    private let state = Mutex(State())
    private let transactions: Int

    init(transactions: Int) { self.transactions = max(1, transactions) }

    var stats: Stats { state.withLock(\.stats) }

    func enqueue(_ request: EnqueueRequest, flush: @escaping Flush) async throws -> EnqueueResult {
        try await withCheckedThrowingContinuation { continuation in
            let lead = state.withLock { state -> [Waiting]? in
                state.waiting.append(Waiting(request: request, continuation: continuation))
                guard state.running < transactions else { return nil }
                state.running += 1
                defer { state.waiting = [] }
                return state.waiting
            }
            if let lead { Task { await self.run(lead, flush) } }
        }
    }

    /// Commits `group`, then every group that gathered meanwhile, until none waits.
    private func run(_ group: [Waiting], _ flush: Flush) async {
        var group = group
        while !group.isEmpty {
            do {
                let results = try await flush(group.map(\.request))
                for (waiting, result) in zip(group, results) { waiting.continuation.resume(with: result.mapError { $0 as any Error }) }
            } catch {
                for waiting in group { waiting.continuation.resume(throwing: error) }
            }
            group = state.withLock { [count = group.count] state in
                state.stats.transactions += 1
                state.stats.enqueues += count
                defer { state.waiting = [] }
                if state.waiting.isEmpty { state.running -= 1 }
                return state.waiting
            }
        }
    }
}
