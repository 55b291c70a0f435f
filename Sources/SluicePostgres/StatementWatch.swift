import Logging
import PostgresNIO
import SluiceCore
import Synchronization

/// Runs statements and stops waiting for one when its connection closes or it outlasts a limit.
///
/// postgres-nio 1.33 can lose a statement written to a connection that is closing: its result never
/// comes and the caller waits forever (seen after a server restart: an enqueue that never answered, a
/// worker whose heartbeats stopped and which could not shut down; vapor/postgres-nio#487 fixed this
/// and was reverted). So each statement runs in a task of its own, and the caller gets a `storage`
/// error, which every caller retries, when the connection is found closed or the limit passes. A
/// statement abandoned that way is left to finish, or not, on its own; past the limit its
/// connection is closed, so the pool replaces it.
///
/// One watcher looks at every statement in flight every `checkEvery`, for as long as any is: a
/// timer per statement (the first design) cost a draining worker about a tenth of its CPU in
/// dispatch's timer thread, arming and cancelling thousands a second.
///
/// Cancelling the caller does not abandon the statement: the connection would go back to the pool
/// with a statement or a transaction still open on it. The caller waits for the answer, as a plain
/// `query` makes it do.
final class StatementWatch: Sendable {
    /// How often the watcher checks the statements in flight.
    let checkEvery: Duration
    private struct Watched {
        let waiter: Waiter
        let connection: PostgresConnection
        let deadline: ContinuousClock.Instant
        let limit: Duration
        /// Set once the statement's task exists (it is registered before, so that it cannot end unseen).
        var statement: Task<Void, Never>?
        let sql: Substring
        let place: String
        let logger: Logger
    }
    private struct State {
        var watched: [Int: Watched] = [:]
        var nextID = 0
        var watching = false
        var watchersStarted = 0
    }
    private let state = Mutex(State())

    init(checkEvery: Duration = .milliseconds(250)) {
        self.checkEvery = checkEvery
    }

    /// Watchers started so far (for tests: statements in a burst share one).
    var watchersStarted: Int { state.withLock { $0.watchersStarted } }

    func rows(_ query: PostgresQuery, on connection: PostgresConnection, limit: Duration, place: String,
              logger: Logger) async throws -> [PostgresRow] {
        try await rows(sql: query.sql, on: connection, limit: limit, place: place, logger: logger) {
            try await connection.query(query, logger: logger).collect()
        }
    }

    /// A prepared statement, watched the same way.
    func rows<Key: PreparedSQL>(_ statement: PreparedStatement<Key>, on connection: PostgresConnection, limit: Duration,
                                place: String, logger: Logger) async throws -> [PostgresRow] {
        try await rows(sql: Key.sql, on: connection, limit: limit, place: place, logger: logger) {
            try await connection.execute(statement, logger: logger).reduce(into: []) { $0.append($1) }
        }
    }

    private func rows(sql: String, on connection: PostgresConnection, limit: Duration, place: String, logger: Logger,
                      _ run: @escaping @Sendable () async throws -> [PostgresRow]) async throws -> [PostgresRow] {
        if connection.isClosed { throw Self.closed(place) }
        return try await withCheckedThrowingContinuation { continuation in
            let waiter = Waiter(continuation)
            let (id, startWatcher) = state.withLock { state in
                state.nextID += 1
                state.watched[state.nextID] = Watched(waiter: waiter, connection: connection, deadline: .now + limit, limit: limit,
                                                      statement: nil, sql: sql.prefix(80), place: place, logger: logger)
                let start = !state.watching
                if start {
                    state.watching = true
                    state.watchersStarted += 1
                }
                return (state.nextID, start)
            }
            let statement = Task {
                let result: Result<[PostgresRow], any Error>
                do { result = .success(try await run()) } catch { result = .failure(error) }
                state.withLock { _ = $0.watched.removeValue(forKey: id) }
                waiter.finish(result)
            }
            state.withLock { $0.watched[id]?.statement = statement }
            if startWatcher { Task { await watch() } }
        }
    }

    /// Checks the statements in flight every `checkEvery`; stops when none is left.
    private func watch() async {
        while true {
            guard (try? await Task.sleep(for: checkEvery)) != nil else {
                // Cancelled (nothing does so now): the next statement starts another watcher.
                state.withLock { $0.watching = false }
                return
            }
            let now = ContinuousClock.now
            let due: [Watched]? = state.withLock { state in
                if state.watched.isEmpty {
                    state.watching = false
                    return nil
                }
                let due = state.watched.filter { $0.value.connection.isClosed || now >= $0.value.deadline }
                for id in due.keys { state.watched[id] = nil }
                return Array(due.values)
            }
            guard let due else { return }
            for watched in due {
                if watched.connection.isClosed {
                    watched.waiter.finish(.failure(Self.closed(watched.place)))
                } else if watched.waiter.finish(.failure(SluiceError(.storage, "\(watched.place): no answer from PostgreSQL within \(watched.limit); the connection was closed, try again (a change whose answer was lost may have been made: repeat an enqueue with an idempotency_key to be safe)"))) {
                    watched.logger.warning("a statement got no answer within \(watched.limit); closing its connection", metadata: ["sql": "\(watched.sql)"])
                    watched.connection.close().whenComplete { _ in }
                }
                watched.statement?.cancel()
            }
        }
    }

    static func closed(_ place: String) -> SluiceError {
        SluiceError(.storage, "\(place): the connection to PostgreSQL closed (the server restarted or the network failed); try again")
    }

    /// The caller's continuation, resumed once by whichever comes first.
    final class Waiter: Sendable {
        private let continuation: Mutex<CheckedContinuation<[PostgresRow], any Error>?>

        init(_ continuation: CheckedContinuation<[PostgresRow], any Error>) { self.continuation = Mutex(continuation) }

        /// Resumes the caller with `result` unless something else did; whether this call did.
        @discardableResult
        func finish(_ result: Result<[PostgresRow], any Error>) -> Bool {
            guard let continuation = continuation.withLock({ state in
                defer { state = nil }
                return state
            }) else { return false }
            continuation.resume(with: result)
            return true
        }
    }
}
