import Logging
import PostgresNIO
import SluiceCore
import Synchronization

/// Runs one statement and stops waiting for it when its connection closes or it outlasts a limit.
///
/// postgres-nio 1.33 can lose a statement written to a connection that is closing: its result never
/// comes and the caller waits forever (seen after a server restart: an enqueue that never answered, a
/// worker whose heartbeats stopped and which could not shut down; vapor/postgres-nio#487 fixed this
/// and was reverted). So the statement runs in a task of its own, and the caller gets a `storage`
/// error, which every caller retries, when the connection is found closed or the limit passes. A
/// statement abandoned that way is left to finish, or not, on its own; past the limit its
/// connection is closed, so the pool replaces it.
///
/// Cancelling the caller does not abandon the statement: the connection would go back to the pool
/// with a statement or a transaction still open on it. The caller waits for the answer, as a plain
/// `query` makes it do.
enum StatementWatch {
    /// How often a waiting statement checks its connection.
    static let checkEvery: Duration = .milliseconds(250)

    static func rows(_ query: PostgresQuery, on connection: PostgresConnection, limit: Duration, place: String,
                     logger: Logger) async throws -> [PostgresRow] {
        try await rows(sql: query.sql, on: connection, limit: limit, place: place, logger: logger) {
            try await connection.query(query, logger: logger).collect()
        }
    }

    /// A prepared statement, watched the same way.
    static func rows<Key: PreparedSQL>(_ statement: PreparedStatement<Key>, on connection: PostgresConnection, limit: Duration,
                                       place: String, logger: Logger) async throws -> [PostgresRow] {
        try await rows(sql: Key.sql, on: connection, limit: limit, place: place, logger: logger) {
            try await connection.execute(statement, logger: logger).reduce(into: []) { $0.append($1) }
        }
    }

    private static func rows(sql: String, on connection: PostgresConnection, limit: Duration, place: String, logger: Logger,
                             _ run: @escaping @Sendable () async throws -> [PostgresRow]) async throws -> [PostgresRow] {
        if connection.isClosed { throw closed(place) }
        return try await withCheckedThrowingContinuation { continuation in
            let waiter = Waiter(continuation)
            let statement = Task {
                do {
                    waiter.finish(.success(try await run()))
                } catch {
                    waiter.finish(.failure(error))
                }
            }
            waiter.watch(Task {
                let deadline = ContinuousClock.now + limit
                while (try? await Task.sleep(for: checkEvery)) != nil {
                    if connection.isClosed {
                        waiter.finish(.failure(closed(place)))
                        statement.cancel()
                        return
                    }
                    if ContinuousClock.now >= deadline {
                        if waiter.finish(.failure(SluiceError(.storage, "\(place): no answer from PostgreSQL within \(limit); the connection was closed, try again"))) {
                            logger.warning("a statement got no answer within \(limit); closing its connection", metadata: ["sql": "\(sql.prefix(80))"])
                            connection.close().whenComplete { _ in }
                        }
                        statement.cancel()
                        return
                    }
                }
            })
        }
    }

    static func closed(_ place: String) -> SluiceError {
        SluiceError(.storage, "\(place): the connection to PostgreSQL closed (the server restarted or the network failed); try again")
    }

    /// The caller's continuation, resumed once by whichever comes first; the watch stops then.
    final class Waiter: Sendable {
        private struct State {
            var continuation: CheckedContinuation<[PostgresRow], any Error>?
            var watch: Task<Void, Never>?
        }
        private let state: Mutex<State>

        init(_ continuation: CheckedContinuation<[PostgresRow], any Error>) { state = Mutex(State(continuation: continuation)) }

        /// The task watching the connection, stopped at once when the statement already finished.
        func watch(_ task: Task<Void, Never>) {
            let finished = state.withLock { state in
                state.watch = task
                return state.continuation == nil
            }
            if finished { task.cancel() }
        }

        /// Resumes the caller with `result` unless something else did; whether this call did.
        @discardableResult
        func finish(_ result: Result<[PostgresRow], any Error>) -> Bool {
            let (continuation, watch) = state.withLock { state in
                defer { state.continuation = nil; state.watch = nil }
                return (state.continuation, state.watch)
            }
            guard let continuation else { return false }
            continuation.resume(with: result)
            watch?.cancel()
            return true
        }
    }
}
