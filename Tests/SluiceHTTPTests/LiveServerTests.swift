import Foundation
import SluiceClient
import SluiceCore
import SluiceSQLite
import SluiceStore
import SluiceTestSupport
import Testing

/// `sluice serve` as a user runs it: the built binary on a free loopback port, driven over HTTP.
final class LiveServer: @unchecked Sendable {
    let process: ChildProcess
    let client: SluiceClient

    init(db: String, _ extra: [String] = [], token: String? = nil) async throws {
        process = try ChildProcess("sluice", ["serve", "--port", "0", "--db", db, "--log-level", "warning"] + extra)
        guard let line = await process.line(startingWith: "sluice: listening on "),
              let address = line.split(separator: " ").dropFirst(3).first, let url = URL(string: String(address)) else {
            process.kill9()
            throw SluiceClient.Failure(status: 0, code: "start", message: "the server did not start")
        }
        client = SluiceClient(baseURL: url, token: token)
    }

    /// Stops the server with SIGTERM and records a test issue unless it exits cleanly.
    func stop() async {
        process.signal(SIGTERM)
        check(await process.wait())
    }

    /// The same for a `defer`, which cannot await: it holds its thread while the server drains.
    func stop() {
        process.signal(SIGTERM)
        check(process.wait())
    }

    private func check(_ status: Int32) {
        if status != 0 { Issue.record("the server exited with \(status): \(process.errorOutput().suffix(3000))") }
    }
}

@Suite(.serialized, .timeLimit(.minutes(4))) struct LiveServerTests {
    @Test func enqueueWaitResultAndFireAndForget() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("live.db"))
        let done = try await server.client.enqueue(["kind": "sleep", "args": ["seconds": 0.2]], wait: 10)
        #expect(done["state"] == "succeeded" && done["result"] == ["slept": 0.2])
        let quick = try await server.client.enqueue(["kind": "echo", "args": ["n": 1], "durable": false], wait: 10)
        #expect(quick["state"] == "succeeded" && quick["durable"] == false)
        let read = try await server.client.task(try #require(quick["id"]?.stringValue))
        #expect(read["result"] == ["n": 1])
        await server.stop()
    }

    @Test func killedServerLosesNoDurableTask() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let db = dir.path("crash.db")
        var server = try await LiveServer(db: db, ["--concurrency", "3", "--lease", "3"])
        var ids: [String] = []
        // One batch of 5 s tasks: the first three start together, and none of them can finish before
        // the kill that follows at once (one by one, with shorter tasks, the first sometimes finished
        // under load before the kill, and another ran again in its place).
        let batch: JSONValue = .array(Array(repeating: ["kind": "sleep", "args": ["seconds": 5]], count: 12))
        guard case .array(let created)? = try await server.client.send("POST", "/v1/tasks/batch", body: batch).body["tasks"] else {
            Issue.record("the batch was not created")
            return
        }
        ids = created.compactMap { $0["id"]?.stringValue }
        try #require(ids.count == 12)
        var running: [String] = []
        #expect(await eventually {
            guard case .array(let list)? = try? await server.client.send("GET", "/v1/tasks", query: ["state": "running"]).body["tasks"] else { return false }
            running = list.compactMap { $0["id"]?.stringValue }
            return running.count == 3
        })
        server.process.kill9()

        server = try await LiveServer(db: db, ["--concurrency", "3", "--lease", "3"])
        var tasks: [JSONValue] = []
        for id in ids { tasks.append(try await server.client.task(id, wait: 60)) }
        #expect(tasks.allSatisfy { $0["state"] == "succeeded" }, "\(tasks.map { $0["state"] ?? .null })")
        // The three that were running when the server died ran again, and say why.
        let rerun = tasks.filter { $0["attempt"] == 2 }
        #expect(Set(running).isSubset(of: Set(rerun.compactMap { $0["id"]?.stringValue })), "running at the kill: \(running)")
        #expect(rerun.count >= 3)
        #expect(rerun.allSatisfy { $0["attempt_errors"]?[0]?["message"]?.stringValue?.hasPrefix("lease expired") == true })
        await server.stop()
    }

    /// `serve --no-pool` runs no task, but it takes its turn as leader: alone after a worker was
    /// killed with SIGKILL, it rescues that worker's expired leases and fires schedules, so a front
    /// with only remote workers loses neither.
    @Test func aPureFrontStillLeadsMaintenance() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let db = dir.path("front.db")
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: db))
        _ = try await store.enqueue(batch: (0..<4).map { _ in EnqueueRequest(kind: "echo") })
        let holder = try ChildProcess("sluice-testkit", ["hold", "--db", db, "--owner", "doomed", "--count", "4", "--lease", "3"])
        let held = await holder.lines(until: "ready")
        try #require(held.count == 4, "the holder claimed \(held)")
        holder.kill9()

        let server = try await LiveServer(db: db, ["--no-pool", "--lease", "3"])
        _ = try await server.client.send("POST", "/v1/schedules",
                                         body: ["name": "tick", "cron": "@every 1s", "task": ["kind": "echo", "queue": "ticks"]])
        let rescued = await eventually(timeout: .seconds(20)) {
            for id in held where (try? await server.client.task(id))?["state"] != "queued" { return false }
            return true
        }
        #expect(rescued, "the front requeued the dead worker's tasks once their leases expired")
        for id in held {
            let task = try await server.client.task(id)
            #expect(task["attempt_errors"]?[0]?["message"]?.stringValue?.hasPrefix("lease expired") == true, "\(task)")
        }
        let fired = await eventually(timeout: .seconds(15)) {
            guard case .array(let ticks)? = try? await server.client.send("GET", "/v1/tasks", query: ["queue": "ticks"]).body["tasks"] else { return false }
            return !ticks.isEmpty
        }
        #expect(fired, "the front's scheduler fired the schedule")
        let me = try await server.client.send("GET", "/v1/workers").body["workers"]?[0]
        #expect(me?["this_server"] == true && me?["leader"] == true, "\(me ?? .null)")
        await server.stop()
    }

    @Test func resizeShowsInPoolsAndTheRunningCountFollowsIt() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("resize.db"), ["--concurrency", "2"])
        for _ in 0..<16 { _ = try await server.client.enqueue(["kind": "sleep", "args": ["seconds": 1]]) }
        func pool() async throws -> JSONValue { try await server.client.send("GET", "/v1/pools").body["pools"]?[0] ?? .null }
        #expect(await eventually { (try? await pool()["busy"]) == 2 })
        #expect(try await pool()["target"] == 2)
        try await server.client.send("PATCH", "/v1/pools/default", body: ["concurrency": 6])
        #expect(try await pool()["target"] == 6)
        // The most tasks the store ever shows running, sampled until the new limit is reached.
        var highest: Int64 = 0
        #expect(await eventually {
            let queues = try? await server.client.send("GET", "/v1/queues").body["durable"]?[0]?["counts"]
            highest = max(highest, queues?["running"]?.intValue ?? 0)
            return (try? await pool()["busy"]) == 6
        }, "the running count follows the new limit")
        #expect(highest <= 6, "never more running than the target: saw \(highest)")
        await server.stop()
    }

    @Test func tokenRequiredWhenConfigured() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("auth.db"), ["--token", "t0ken"], token: nil)
        let denied = await #expect(throws: SluiceClient.Failure.self) { try await server.client.send("GET", "/v1/pools") }
        #expect(denied?.status == 401)
        #expect(try await server.client.send("GET", "/healthz").status == 200)
        let authed = SluiceClient(baseURL: server.client.baseURL, token: "t0ken")
        #expect(try await authed.send("GET", "/v1/pools").status == 200)
        await server.stop()
    }

    /// Neither a bearer token (right or wrong) nor any task's args appear in the logs of the server
    /// or of a worker, even at trace level: Sluice never logs args, so none can be forgotten.
    @Test func tokensAndTaskArgsNeverReachTheLogs() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let db = dir.path("logs.db")
        let token = "token-\(UUID().uuidString)", secret = "secret-\(UUID().uuidString)"
        let serve = try ChildProcess("sluice", ["serve", "--port", "0", "--db", db, "--log-level", "trace", "--token", token,
                                                "--concurrency", "2"])
        let line = try #require(await serve.line(startingWith: "sluice: listening on "))
        let url = try #require(line.split(separator: " ").dropFirst(3).first.flatMap { URL(string: String($0)) })
        let worker = try ChildProcess("sluice", ["worker", "--db", db, "--log-level", "trace", "--concurrency", "2"])
        let client = SluiceClient(baseURL: url, token: token)
        for durable in [true, false] {
            let done = try await client.enqueue(["kind": "echo", "args": ["password": .string(secret)], "durable": .bool(durable)], wait: 10)
            #expect(done["state"] == "succeeded")
            let failed = try await client.enqueue(["kind": "fail", "args": ["times": 5, "password": .string(secret)], "max_attempts": 1,
                                                   "durable": .bool(durable)], wait: 10)
            #expect(failed["state"] == "failed")
        }
        for _ in 0..<20 { _ = try await client.enqueue(["kind": "echo", "args": ["password": .string(secret)]]) }
        await #expect(throws: SluiceClient.Failure.self) {
            try await client.enqueue(["kind": "no-such-kind", "args": ["password": .string(secret)]])
        }
        await #expect(throws: SluiceClient.Failure.self) {
            try await SluiceClient(baseURL: url, token: "wrong-\(token)").send("GET", "/v1/tasks")
        }
        _ = await eventually { (try? await client.send("GET", "/v1/tasks", query: ["state": "queued"]).body["tasks"]) == [] }
        var logs = ""
        for child in [worker, serve] {
            child.signal(SIGTERM)
            await child.wait()
            logs += child.errorOutput()
        }
        #expect(logs.contains("worker"), "trace logging wrote something to check")
        #expect(!logs.contains(token), "a token reached the logs")
        #expect(!logs.contains(secret), "an argument reached the logs")
    }

    @Test func http10ClientsWithoutKeepAliveGetTheConnectionClosed() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("http10.db"))
        defer { server.stop() }
        for (request, close) in [("GET /healthz HTTP/1.0\r\n\r\n", true),
                                 ("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", true)] {
            let (answer, closed) = try rawExchange(port: server.client.baseURL.port!, request)
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
            #expect(answer.lowercased().contains("connection: close") == close)
            #expect(closed, "the server closed the connection after answering")
        }
        let (kept, closed) = try rawExchange(port: server.client.baseURL.port!, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(kept.lowercased().contains("connection: keep-alive") && !closed)
    }

    @Test func publicHostNamesAreAnsweredAndOthersRefused() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("hosts.db"), ["--public-host", "sluice.test"])
        defer { server.stop() }
        let port = server.client.baseURL.port!
        for (host, status) in [("sluice.test:\(port)", "200"), ("localhost:\(port)", "200"), ("evil.test:\(port)", "403")] {
            let (answer, _) = try rawExchange(port: port, "GET /v1/tasks HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 \(status)"), "\(host): \(answer.prefix(200))")
        }
        let (crossSite, _) = try rawExchange(port: port, "GET /v1/tasks HTTP/1.1\r\nHost: localhost:\(port)\r\nOrigin: http://evil.test\r\nConnection: close\r\n\r\n")
        #expect(crossSite.hasPrefix("HTTP/1.1 403") && crossSite.contains("forbidden_origin"))
    }

    /// A long-poll claim whose client went away claims nothing more: the next task goes to a worker
    /// that is there, instead of sitting under a dead claim's lease.
    @Test func aClaimWhoseClientWentAwayTakesNoTask() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("gone.db"))
        defer { server.stop() }
        let claim = #"{"pools":[{"name":"py","queues":["gone"],"free":1}],"wait":20}"#
        let fd = try #require(connectLoopback(port: server.client.baseURL.port!))
        let request = "POST /v1/workers/dead/claim HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(claim.utf8.count)\r\n\r\n\(claim)"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        try await Task.sleep(for: .milliseconds(300))
        close(fd)
        try await Task.sleep(for: .milliseconds(300))
        let id = try #require(try await server.client.enqueue(["kind": "echo", "queue": "gone"])["id"]?.stringValue)
        let alive = try await server.client.send("POST", "/v1/workers/alive/claim", body: ["pools": [["name": "py", "queues": ["gone"], "free": 1]], "wait": 5])
        let task = try await server.client.task(id)
        #expect(alive.body["tasks"]?[0]?["id"]?.stringValue == id, "\(alive.body); the task: \(task)")
    }

    /// A claim whose client is gone by the time its tasks are claimed (it sent the claim and closed
    /// at once) hands them back: nobody will run them, and under a lease nobody renews they would
    /// wait for it to expire and lose an attempt.
    @Test func aClaimWhoseClientLeftBeforeTheAnswerHandsItsTasksBack() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("left.db"), ["--no-pool"])
        defer { server.stop() }
        let id = try #require(try await server.client.enqueue(["kind": "echo", "queue": "left"])["id"]?.stringValue)
        let claim = #"{"pools":[{"name":"py","queues":["left"],"free":1}],"wait":0}"#
        let fd = try #require(connectLoopback(port: server.client.baseURL.port!))
        let request = "POST /v1/workers/left/claim HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(claim.utf8.count)\r\n\r\n\(claim)"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        close(fd)
        // Settled either way within a moment: claimed and handed back, or never claimed.
        try await Task.sleep(for: .milliseconds(500))
        let task = try await server.client.task(id)
        #expect(task["state"] == "queued" && task["attempt"] == 0, "\(task)")
    }

    /// Sends `request` on a fresh connection; returns what came back within 2 s and whether the
    /// server closed the connection.
    func rawExchange(port: Int, _ request: String) throws -> (String, Bool) {
        let fd = try #require(connectLoopback(port: port))
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var received = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { return (String(decoding: received, as: UTF8.self), true) }
            if n < 0 { return (String(decoding: received, as: UTF8.self), false) }  // timed out: still open
            received += buffer[0..<n]
        }
    }

    @Test func refusesToListenBeyondLoopbackWithoutAToken() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let child = try ChildProcess("sluice", ["serve", "--host", "0.0.0.0", "--port", "0", "--db", dir.path("x.db")])
        #expect(await child.wait() == 1)
        #expect(child.errorOutput().contains("is not a loopback address: give --token"))
        #expect(!FileManager.default.fileExists(atPath: dir.path("x.db")), "a refused start left a database behind")
    }
}
