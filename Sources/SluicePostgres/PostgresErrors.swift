import Foundation
import PostgresNIO
import SluiceCore

/// Query parameters from a list of values; `nil` binds SQL NULL.
struct Binds {
    var bindings = PostgresBindings()

    init(_ values: (any PostgresThrowingDynamicTypeEncodable)?...) throws {
        for value in values {
            if let value { try bindings.append(value) } else { bindings.appendNull() }
        }
    }
}

/// Turns postgres-nio's errors into messages a user can act on. `PSQLError`'s own description
/// hides everything (it may hold secrets); the server's message, detail and SQLSTATE are safe.
enum PostgresErrors {
    /// The server's words for `error`, or the client's when the server said nothing.
    static func describe(_ error: any Error) -> String {
        if let error = error as? SluiceError { return error.message }
        if let error = error as? PostgresTransactionError {
            return [error.beginError, error.closureError, error.commitError].compactMap { $0 }.first.map(describe) ?? "\(error)"
        }
        guard let error = error as? PSQLError else { return "\(error)" }
        if let server = error.serverInfo {
            var text = server[.message] ?? "error"
            if let detail = server[.detail] { text += " (\(detail))" }
            if let state = server[.sqlState] { text += " [SQLSTATE \(state)]" }
            return text
        }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }

    /// The server's SQLSTATE, when it sent one.
    static func sqlState(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }

    /// The error to throw when a connection to `place` as `user` could not be made.
    static func connectFailure(_ error: any Error, place: String, user: String, database: String) -> SluiceError {
        let state = sqlState(error) ?? ""
        if state.hasPrefix("28") {
            return SluiceError(.storage, "PostgreSQL at \(place) refused the login of user \(user): \(describe(error)); check the user and password in the database URL")
        }
        if state == "3D000" {
            return SluiceError(.storage, "PostgreSQL at \(place) has no database \(database): \(describe(error)); create it (createdb \(database)) or fix the URL")
        }
        if state.isEmpty, let psql = error as? PSQLError, psql.code == .connectionError || psql.code == .serverClosedConnection || psql.code == .uncleanShutdown {
            return SluiceError(.storage, "cannot reach PostgreSQL at \(place): \(describe(error)); is the server running and listening there (host and port in the database URL)?")
        }
        if state.isEmpty, !(error is PSQLError) {
            return SluiceError(.storage, "cannot reach PostgreSQL at \(place): \(error); is the server running and listening there (host and port in the database URL)?")
        }
        return SluiceError(.storage, "PostgreSQL at \(place) refused the connection of user \(user) to database \(database): \(describe(error))")
    }
}
