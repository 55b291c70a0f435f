import Foundation
import Hummingbird
import HummingbirdTesting
import SluiceClient
import SluiceCore
import SluiceHTTP
import SluicePool
import SluiceSQLite
import SluiceStore
import SluiceTestSupport
import Testing

/// An API over a fresh SQLite store, optionally with a running worker, for router-level tests.
struct Harness: Sendable {
    let store: SQLiteTaskStore
    let memory: MemoryTaskStore
    let dir: TempDir

    init() throws {
        dir = try TempDir()
        store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: dir.path("api.db")))
        memory = MemoryTaskStore()
    }

    /// Runs `body` against the router; with `pool`, a worker runs the tasks meanwhile.
    func test(pool: Int? = nil, tokens: [String] = [], limits: SluiceAPI.Limits = SluiceAPI.Limits(),
              _ body: @escaping @Sendable (any TestClientProtocol, Worker?) async throws -> Void) async throws {
        try await testAPI(pool: pool, tokens: tokens, limits: limits) { client, worker, _ in try await body(client, worker) }
    }

    /// Runs `body` against the router, with the API itself at hand; `live` serves it on a loopback
    /// port instead (for requests that need their own `Host`), `metrics` gives it the process's
    /// registry (bootstrapped before the worker is made, so that the pool's metrics are real).
    func testAPI(pool: Int? = nil, tokens: [String] = [], limits: SluiceAPI.Limits = SluiceAPI.Limits(), hosts: HostNames = HostNames(),
                 metrics: Bool = false, live: Bool = false, clock: any WallClock = SystemClock(),
                 _ body: @escaping @Sendable (any TestClientProtocol, Worker?, SluiceAPI) async throws -> Void) async throws {
        defer { dir.remove() }
        let registry = metrics ? SluiceMetricsFactory.bootstrapped : nil
        let registryKinds = HandlerRegistry.builtin()
        var options = WorkerOptions()
        options.heartbeatInterval = .milliseconds(100)
        options.registrationInterval = .milliseconds(100)
        let worker = try pool.map {
            try Worker(store: store, ephemeral: memory, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: $0)],
                       registry: registryKinds, options: options)
        }
        let api = SluiceAPI(store: store, memory: worker == nil ? nil : memory, worker: worker, kinds: registryKinds.kinds, tokens: tokens,
                            limits: limits, clock: clock, metrics: registry, hosts: hosts)
        let app = Application(router: api.router())
        try await withThrowingTaskGroup(of: Void.self) { group in
            if let worker { group.addTask { try await worker.run() } }
            do {
                try await app.test(live ? .live : .router) { client in try await body(client, worker, api) }
            } catch {
                worker?.beginShutdown()
                throw error
            }
            worker?.beginShutdown()
            try await group.waitForAll()
        }
    }
}

extension TestResponse {
    /// The body as JSON.
    var json: JSONValue { (try? JSONValue(jsonText: String(buffer: body))) ?? .null }
    /// The error code of an error body.
    var errorCode: String? { json["error"]?["code"]?.stringValue }
    var errorField: String? { json["error"]?["field"]?.stringValue }
}

extension TestClient.Response {
    /// The body as JSON.
    var json: JSONValue { (try? JSONValue(jsonText: String(buffer: body ?? ByteBuffer()))) ?? .null }
    /// The error code of an error body.
    var errorCode: String? { json["error"]?["code"]?.stringValue }
}

extension TestClientProtocol {
    /// Sends a request with `Host: host` (and `headers`) on a connection of its own; live servers only.
    func send(host: String, _ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil,
              headers: HTTPFields = [.contentType: "application/json"]) async throws -> TestClient.Response {
        let connection = TestClient(host: "127.0.0.1", port: try #require(port))
        connection.connect()
        let response: TestClient.Response
        do {
            response = try await connection.execute(TestClient.Request(uri, method: method, authority: host, headers: headers,
                                                                       body: body.map { ByteBuffer(string: $0) }))
        } catch {
            try? await connection.shutdown()
            throw error
        }
        try await connection.shutdown()
        return response
    }

    /// Sends a JSON body (a string, so tests can send broken JSON too).
    func send(_ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil, headers: HTTPFields = [.contentType: "application/json"]) async throws -> TestResponse {
        try await execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
    }
}

/// A blocking connect to 127.0.0.1 with a 5 s bound; nil when it fails.
func connectLoopback(port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var bound = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &bound, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if connected != 0 { close(fd); return nil }
    return fd
}

/// Whether the peer has closed `fd`: a read that does not block finds the end (or a reset).
func closedByPeer(_ fd: Int32) -> Bool {
    var buffer = [UInt8](repeating: 0, count: 512)
    while true {
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        if n > 0 { continue }  // e.g. a 408 answer before the close
        return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)
    }
}

/// Runs a program to its end (at most a minute) and returns its exit status, -1 when it could not
/// start. A `ChildProcess`, not Foundation's `Process`: a CI run hung for good in `waitUntilExit`.
func run(_ path: String, _ arguments: String...) async -> Int32 {
    (try? await ChildProcess(executable: path, arguments).wait()) ?? -1
}

/// The first of `operation` and a `bound`: nil when the bound passed first. A bound, not a wait: a
/// correct program answers long before it.
func within<T: Sendable>(_ bound: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T? {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: bound)
            return nil
        }
        defer { group.cancelAll() }
        return try await group.next() ?? nil
    }
}

/// `GET path` on 127.0.0.1:`port` over a connection of its own; the status code and the body.
func fetch(port: Int, _ path: String, host: String? = nil) throws -> (status: Int, body: String) {
    guard let fd = connectLoopback(port: port) else { throw CocoaError(.fileReadUnknown) }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let request = "GET \(path) HTTP/1.1\r\nHost: \(host ?? "127.0.0.1:\(port)")\r\nConnection: close\r\n\r\n"
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
    var received = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        received += buffer[0..<n]
    }
    let text = String(decoding: received, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n"), let code = Int(text.split(separator: " ").dropFirst().first ?? "") else {
        throw CocoaError(.fileReadCorruptFile)
    }
    return (code, String(text[split.upperBound...]))
}

/// Prometheus text, read: the value of the sample `name` whose labels are exactly `labels`.
func sample(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        let parts = line.split(separator: " ")
        guard parts.count >= 2 else { continue }
        let series = parts[0]
        let brace = series.firstIndex(of: "{")
        guard (brace.map { series[..<$0] } ?? series) == name else { continue }
        var found: [String: String] = [:]
        if let brace {
            for pair in series[series.index(after: brace)..<series.index(before: series.endIndex)].split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { found[String(kv[0])] = String(kv[1].dropFirst().dropLast()) }
            }
        }
        if found == labels { return Double(parts[1]) }
    }
    return nil
}

/// Runs `promtool check metrics` on `text` when promtool is installed: its exit status and output,
/// or nil (after a loud line) when it is not.
func promtoolCheck(_ text: String) async throws -> (Int32, String)? {
    let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        .map { "\($0)/promtool" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    guard let path else {
        print("SKIPPED: promtool not installed (Debian package prometheus); the metrics output was not linted")
        return nil
    }
    let (status, output, error) = try await ChildProcess(executable: path, ["check", "metrics"], input: text).finish()
    return (status, output + error)
}

/// The test PostgreSQL server's URL (SLUICE_TEST_DATABASE_URL), or a skip that says so loudly:
/// without it no PostgreSQL test runs, so a run without one cannot pass for a full run.
@discardableResult
func requirePostgres() throws -> String {
    guard let url = ProcessInfo.processInfo.environment["SLUICE_TEST_DATABASE_URL"], !url.isEmpty else {
        let message = "SKIPPED: PostgreSQL tests need SLUICE_TEST_DATABASE_URL (tools/dev/postgres start prints one)"
        FileHandle.standardError.write(Data("\n*** \(message) ***\n\n".utf8))
        try Test.cancel(Comment(rawValue: message))
    }
    return url
}

/// The test server's URL with a fresh schema, `prefix_` and a random number (the store creates
/// it on open), or a skip.
func postgresDatabase(_ prefix: String) throws -> String {
    let url = try requirePostgres()
    return url + (url.contains("?") ? "&" : "?") + "search_path=\(prefix)_\(UInt32.random(in: 0 ... .max))"
}

/// Whether some process holds the leader's lease in the PostgreSQL database and schema (its
/// `?search_path=`) that `database` names. Asked with psql, so that no Sluice front need run: a
/// test that wants a worker to lead starts the front, which takes its turn too, only after this.
func postgresLeaderElected(_ database: String) async -> Bool {
    await postgresQuery(database, "SELECT count(*) FROM %s.leadership WHERE expires_at > now()") == "1"
}

/// The one value `sql` answers on the database (and schema, from `?search_path=`) that `database`
/// names, asked with psql; `%s.` before a table name becomes the schema (or nothing). Nil on failure.
func postgresQuery(_ database: String, _ sql: String) async -> String? {
    let parts = database.split(separator: "?", maxSplits: 1).map(String.init)
    let schema = parts.count > 1 ? parts[1].split(separator: "&").first { $0.hasPrefix("search_path=") }.map { $0.dropFirst("search_path=".count) } : nil
    let query = sql.replacingOccurrences(of: "%s.", with: schema.map { "\($0)." } ?? "")
    guard let answer = try? await ChildProcess(executable: "/usr/bin/psql", [parts[0], "-Atc", query]).finish(timeout: .seconds(10)),
          answer.status == 0 else { return nil }
    return answer.output.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Task `id` as it stands once it has succeeded, or after `timeout` (an issue is recorded then).
func succeeded(_ id: String, on client: SluiceClient, timeout: Duration = .seconds(60)) async -> JSONValue? {
    var done: JSONValue?
    let ok = await eventually(timeout: timeout) {
        done = try? await client.task(id, wait: 5)
        return done?["state"] == "succeeded"
    }
    if !ok { Issue.record("task \(id) ended \(done?["state"] ?? "unknown")") }
    return done
}
