import Foundation
import PostgresNIO
import SluiceCore

/// How to reach a PostgreSQL store: a server, a login, a database and the schema that holds
/// Sluice's tables. Made from a URL (`postgres://user:pass@host:5432/db`) or field by field.
public struct PostgresStoreConfiguration: Sendable {
    /// Where the server listens.
    public enum Endpoint: Sendable, Hashable {
        case tcp(host: String, port: Int)
        /// A unix-domain socket (the URL form `postgres://user@/db?host=/var/run/postgresql`).
        case unixSocket(path: String)
    }

    /// Whether to talk TLS (the URL's `sslmode`): `disable` (the default), `prefer` or `require`.
    public enum TLSMode: String, Sendable, CaseIterable {
        case disable, prefer, require
    }

    public var endpoint: Endpoint
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode = .disable
    /// The schema Sluice's tables live in (the connections' `search_path`); `nil` keeps the
    /// server's default (`public`). The URL's `?search_path=` or `?schema=` sets it.
    public var schema: String?
    /// Apply pending migrations when opening (otherwise an old schema is refused).
    public var migrate = true
    /// Keep one connection LISTENing for other processes' enqueues, so pools start them at once and
    /// poll only as a backstop. Off (`--poll-only`) behind a pooler in transaction mode
    /// (PgBouncer), where nothing of a session lasts past its transaction: then no LISTEN (pools
    /// poll every 50 ms), no prepared statements (each statement is parsed and planned at every
    /// call, which costs throughput) and no settings at login but `application_name` (and
    /// `search_path` when a schema is given: PgBouncer 1.18 refuses it, so set it on the role
    /// instead; `lock_timeout` and `statement_timeout` likewise belong on the role there).
    public var listen = true
    /// Tasks finished here are announced to other processes (NOTIFY, for their waiting requests)
    /// at most once per this interval, and once more at its end when more finished meanwhile. Each
    /// notice is a round trip of its own: every 5 ms cost a draining worker a few per cent.
    public var finishNoticeInterval: Duration = .milliseconds(20)
    /// Connections the store's pool may open at most.
    public var maximumConnections = 10
    /// How long to wait for the server to accept a connection.
    public var connectTimeout: Duration = .seconds(10)
    /// How often the listening connection must answer a `SELECT 1` (within `listenProbeTimeout`):
    /// one a NAT or load balancer dropped without a word would otherwise look alive for good, no
    /// notice would come, pools would stay on the slow backstop and other hosts' finishes unheard.
    public var listenProbeInterval: Duration = .seconds(15)
    public var listenProbeTimeout: Duration = .seconds(5)
    /// How long a statement waits for another transaction's lock before failing (the session's
    /// `lock_timeout`): a heartbeat may take that long, so leases must last several times longer.
    public var lockTimeout: Duration = .seconds(10)
    /// How long the store waits for a statement's answer before it gives up on it, closes its
    /// connection and fails the call (which its caller retries). Longer than `lockTimeout`. A
    /// heartbeat waits at most a third of its lease instead, when that is shorter. The server is
    /// told to cancel a statement at nine tenths of it (the session's `statement_timeout`), so a
    /// statement the store gave up on is rolled back rather than committed after the caller was
    /// told it failed (an enqueue answered 503 and then stored would be stored twice on retry).
    public var statementTimeout: Duration = .seconds(30)
    /// Outcome batches a worker's completer writes at once, each its own transaction. One drains
    /// fastest: while it commits, outcomes pile up and the next batch carries them all (a
    /// 50,000-task drain of one worker on 2026-11-28: 4,900 to 6,300 tasks/s against 3,700 to
    /// 4,200 with four, alternating runs on one server).
    public var outcomeBatchesInFlight = 1
    /// `nil` (the default): every time comes from the database's `now()`, shared by every host.
    /// A clock (tests use a `ManualClock`): every statement takes its time from it instead.
    public var clock: (any WallClock)?
    /// Draws backoff jitter, uniform in [0, 1].
    public var unitRandom: @Sendable () -> Double = { .random(in: 0...1) }

    public init(endpoint: Endpoint, username: String, password: String?, database: String) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses `postgres://user:pass@host:port/db` (or `postgresql://`; port 5432 by default; user and
    /// password percent-encoded). Query options: `sslmode=disable|prefer|require`,
    /// `search_path=` (or `schema=`), and `host=/dir` for a unix-domain socket in that directory.
    public init(url text: String) throws(SluiceError) {
        func refuse(_ why: String) -> SluiceError {
            SluiceError(.invalidArgument, "database URL \(Self.redacted(text)): \(why); expected postgres://user:password@host:5432/database", field: "database")
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw refuse("not a URL")
        }
        guard scheme == "postgres" || scheme == "postgresql" else { throw refuse("the scheme must be postgres:// or postgresql://") }
        guard let user = components.user, !user.isEmpty else { throw refuse("no user name") }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else { throw refuse("no database name after the host") }
        var options: [String: String] = [:]
        for item in components.queryItems ?? [] { options[item.name.lowercased()] = item.value ?? "" }
        let endpoint: Endpoint
        if let socketDirectory = options["host"], socketDirectory.hasPrefix("/") {
            let port = components.port ?? 5432
            endpoint = .unixSocket(path: socketDirectory + "/.s.PGSQL.\(port)")
        } else {
            guard let host = components.host, !host.isEmpty else { throw refuse("no host") }
            let port = components.port ?? 5432
            guard (1...65535).contains(port) else { throw refuse("port \(port) is out of range") }
            endpoint = .tcp(host: host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host, port: port)
        }
        self.init(endpoint: endpoint, username: user, password: components.password, database: database)
        if let mode = options["sslmode"] {
            guard let tls = TLSMode(rawValue: mode) else {
                throw refuse("sslmode \(mode) is not one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self.tls = tls
        }
        if let schema = options["search_path"] ?? options["schema"], !schema.isEmpty {
            // Taken as one schema's name (quoted): `a,b` would make and migrate a schema called "a,b".
            guard !schema.contains(",") else {
                throw refuse("search_path \(schema) names several schemas: give the one that holds (or will hold) Sluice's tables")
            }
            self.schema = schema
        }
    }

    /// Where the server is, for messages: `host:port` or the socket's path.
    public var place: String {
        switch endpoint {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unixSocket(let path): path
        }
    }

    /// The URL with its password hidden, for messages and logs.
    static func redacted(_ url: String) -> String {
        if var components = URLComponents(string: url) {
            guard components.password != nil else { return url }
            components.password = "***"
            if let text = components.string { return text }
        }
        // Not a URL Foundation can read (a port of letters, say): hide whatever follows the user's
        // name up to the last @ of the authority, by hand.
        guard let start = url.range(of: "://")?.upperBound else { return url }
        let authorityEnd = url[start...].firstIndex(of: "/") ?? url.endIndex
        guard let at = url[start..<authorityEnd].lastIndex(of: "@"),
              let colon = url[start..<at].firstIndex(of: ":") else { return url }
        return String(url[..<url.index(after: colon)]) + "***" + String(url[at...])
    }

    /// The client configuration postgres-nio takes.
    func clientConfiguration() -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        switch endpoint {
        case .tcp(let host, let port):
            let tls: PostgresClient.Configuration.TLS = switch self.tls {
            case .disable: .disable
            case .prefer: .prefer(.makeClientConfiguration())
            case .require: .require(.makeClientConfiguration())
            }
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        case .unixSocket(let path):
            configuration = .init(unixSocketPath: path, username: username, password: password, database: database)
        }
        configuration.options.maximumConnections = max(1, maximumConnections)
        configuration.options.connectTimeout = connectTimeout
        configuration.options.additionalStartupParameters = startupParameters(applicationName: "sluice")
        return configuration
    }

    /// A connection of its own, outside the pool: the one `open` makes to check reachability and the
    /// login, and the listener's. `application_name` tells them apart in `pg_stat_activity`.
    func connectionConfiguration(applicationName: String = "sluice") throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        switch endpoint {
        case .tcp(let host, let port):
            let tls: PostgresConnection.Configuration.TLS = switch self.tls {
            case .disable: .disable
            case .prefer: .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        case .unixSocket(let path):
            configuration = .init(unixSocketPath: path, username: username, password: password, database: database)
        }
        configuration.options.connectTimeout = .milliseconds(connectTimeout.milliseconds)
        configuration.options.additionalStartupParameters = startupParameters(applicationName: applicationName)
        return configuration
    }

    private func startupParameters(applicationName: String) -> [(String, String)] {
        var parameters = [("application_name", applicationName)]
        // A pooler in transaction mode refuses session settings at login (see `listen`).
        if listen {
            parameters += [("lock_timeout", "\(max(1, lockTimeout.milliseconds))ms"),
                           ("statement_timeout", "\(max(1, statementTimeout.milliseconds * 9 / 10))ms")]
        }
        if let schema { parameters.append(("search_path", Self.quoteIdentifier(schema))) }
        return parameters
    }

    /// `name` as a quoted SQL identifier.
    public static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
