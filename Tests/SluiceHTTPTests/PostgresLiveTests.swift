import Foundation
import SluiceClient
import SluiceCore
import SluiceTestSupport
import Testing

/// `sluice serve` and `sluice worker` on one PostgreSQL database, as a team past one host runs them
/// (`--database postgres://…`): the built binaries, over HTTP. Each test takes a schema of its own.
@Suite(.serialized, .timeLimit(.minutes(4))) struct PostgresLiveTests {
    @Test func serveAndAWorkerShareOnePostgreSQLQueue() async throws {
        let database = try postgresDatabase("live")
        let serve = try ChildProcess("sluice", ["serve", "--port", "0", "--database", database, "--concurrency", "2", "--log-level", "warning"])
        defer { serve.kill9() }
        let line = try #require(await serve.line(startingWith: "sluice: listening on "))
        #expect(line.contains("PostgreSQL database"))
        let address = try #require(line.split(separator: " ").dropFirst(3).first.flatMap { URL(string: String($0)) })
        let client = SluiceClient(baseURL: address)
        let worker = try ChildProcess("sluice", ["worker", "--database", database, "--concurrency", "4", "--log-level", "warning"])
        defer { worker.kill9() }
        func workerCount() async -> Int {
            guard case .array(let workers)? = try? await client.send("GET", "/v1/workers").body["workers"] else { return 0 }
            return workers.count
        }
        #expect(await eventually { await workerCount() == 2 })

        var ids: [String] = []
        for n in 0..<40 {
            let task = try await client.send("POST", "/v1/tasks", body: ["kind": "sleep", "args": ["seconds": 0.05, "n": .int(Int64(n))]]).body
            ids.append(try #require(task["id"]?.stringValue))
        }
        var workers = Set<String>()
        for id in ids {
            let done = try await client.task(id, wait: 30)
            #expect(done["state"] == "succeeded")
            if let ran = done["worker"]?.stringValue { workers.insert(ran) }
        }
        // Both processes took tasks from the one queue.
        #expect(workers.count == 2, "tasks ran in \(workers)")
        let counts = try await client.send("GET", "/v1/queues").body["durable"]?[0]?["counts"]
        #expect(counts?["succeeded"] == 40)

        worker.signal(SIGTERM)
        #expect(await worker.wait() == 0)
        serve.signal(SIGTERM)
        #expect(await serve.wait() == 0)
    }

    /// Behind PgBouncer in transaction mode, as the README says to run it with `--poll-only`:
    /// migrations, a front and a worker on one database through the pooler, and every task runs.
    /// (The store used to send session settings at login, which PgBouncer refuses, and statements
    /// prepared on one server connection, which the next transaction's connection does not know.)
    @Test func behindPgBouncerInTransactionModeWithPollOnly() async throws {
        let server = try requirePostgres()
        guard PgBouncer.installed else {
            let message = "SKIPPED: the PgBouncer test needs pgbouncer (Debian package pgbouncer)"
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                Issue.record("pgbouncer is not installed, and CI must run the PgBouncer test (.ci/run installs it)")
                return
            }
            FileHandle.standardError.write(Data("\n*** \(message) ***\n\n".utf8))
            try Test.cancel(Comment(rawValue: message))
        }
        // A database of its own: PgBouncer takes no search_path at login, so no schema per test.
        let name = "bouncer_\(UInt32.random(in: 0 ... .max))"
        #expect(await postgresQuery(server, "CREATE DATABASE \(name)") != nil)
        let base = String(server[..<server.lastIndex(of: "/")!])
        let bouncer = try PgBouncer(server: "\(base)/\(name)")
        defer { bouncer.stop() }
        let serve = try ChildProcess("sluice", ["serve", "--port", "0", "--database", bouncer.url, "--poll-only", "--no-pool", "--log-level", "warning"])
        defer { serve.kill9() }
        let line = try #require(await serve.line(startingWith: "sluice: listening on "), "\(serve.errorOutput())")
        let address = try #require(line.split(separator: " ").dropFirst(3).first.flatMap { URL(string: String($0)) })
        let client = SluiceClient(baseURL: address)
        let worker = try ChildProcess("sluice", ["worker", "--database", bouncer.url, "--poll-only", "--concurrency", "4", "--log-level", "warning"])
        defer { worker.kill9() }
        var ids: [String] = []
        for n in 0..<50 {
            ids.append(try #require(try await client.send("POST", "/v1/tasks", body: ["kind": "echo", "args": ["n": .int(Int64(n))]]).body["id"]?.stringValue))
        }
        for id in ids { #expect(await succeeded(id, on: client, timeout: .seconds(60)) != nil, "\(worker.errorOutput().suffix(2000))") }
        worker.signal(SIGTERM)
        #expect(await worker.wait() == 0)
        serve.signal(SIGTERM)
        #expect(await serve.wait() == 0)
    }

    /// Four `sluice worker` processes drain one queue; the leader is SIGKILLed mid-run. Every task
    /// ends succeeded; only the tasks the dead process held ran twice (their lease expired, and the
    /// new leader rescued them); every other task was claimed exactly once.
    @Test func fourWorkerProcessesShareTheQueueAndSurviveTheLeadersSIGKILL() async throws {
        let database = try postgresDatabase("live")
        let workers = try (0..<4).map { _ in
            try ChildProcess("sluice", ["worker", "--database", database, "--concurrency", "4", "--lease", "3", "--log-level", "error"])
        }
        defer { for worker in workers { worker.kill9() } }
        // The front takes its turn at leading too: start it once a worker leads, so that the
        // leader this test kills is a worker.
        #expect(await eventually { await postgresLeaderElected(database) }, "a worker was elected")
        let serve = try ChildProcess("sluice", ["serve", "--port", "0", "--database", database, "--no-pool", "--log-level", "error"])
        defer { serve.kill9() }
        let line = try #require(await serve.line(startingWith: "sluice: listening on "))
        let address = try #require(line.split(separator: " ").dropFirst(3).first.flatMap { URL(string: String($0)) })
        let client = SluiceClient(baseURL: address)
        func live() async -> [JSONValue] {
            guard case .array(let list)? = try? await client.send("GET", "/v1/workers").body["workers"] else { return [] }
            return list
        }
        var leaderPID: Int64?
        #expect(await eventually {
            let list = await live()
            leaderPID = list.first { $0["leader"] == true }?["pid"]?.intValue
            return list.count == 5 && leaderPID != nil
        })
        let leader = try #require(workers.first { Int64($0.pid) == leaderPID })

        let body: JSONValue = .array((0..<400).map { n in ["kind": "sleep", "args": ["seconds": 0.03, "n": .int(Int64(n))]] })
        let created = try await client.send("POST", "/v1/tasks/batch", body: body).body["tasks"]
        guard case .array(let tasks)? = created else { Issue.record("no tasks in \(String(describing: created))"); return }
        let ids = tasks.compactMap { $0["id"]?.stringValue }
        #expect(ids.count == 400)
        #expect(await eventually {
            let counts = try? await client.send("GET", "/v1/queues").body["durable"]?[0]?["counts"]
            return (counts?["succeeded"]?.intValue ?? 0) >= 60
        })
        leader.kill9()
        _ = await leader.wait()
        // What the dead process held: its running tasks, and any it finished whose outcome it had
        // not yet written. Frozen now (nothing renews or rescues them before the lease runs out).
        let held = await postgresQuery(database, "SELECT count(*) FROM %s.tasks WHERE state = 'running' AND lease_owner LIKE '%:\(leader.pid):%'")
            .flatMap { Int($0) }

        var ranOn = Set<String>(), twice = 0
        for id in ids {
            guard let done = await succeeded(id, on: client) else { continue }
            if let worker = done["worker"]?.stringValue { ranOn.insert(worker) }
            if done["attempt"] != 1 {
                twice += 1
                #expect(done["attempt"] == 2, "\(done)")
            }
        }
        // Exactly the tasks the dead leader held ran again; the survivors shared the rest.
        #expect(held != nil && twice == held, "\(twice) tasks ran twice; the killed process held \(held.map(String.init) ?? "unknown")")
        #expect(ranOn.count >= 3, "tasks ran on \(ranOn)")
        #expect(await eventually { await live().filter { $0["leader"] == true }.count == 1 })
        for worker in workers where worker !== leader {
            worker.signal(SIGTERM)
            #expect(await worker.wait() == 0)
        }
        serve.signal(SIGTERM)
        #expect(await serve.wait() == 0)
    }

    /// PostgreSQL refuses U+0000 in `jsonb` and `text`, and one such value used to fail the whole
    /// batch it rode in, again and again: the worker then recorded nothing more. Now args holding
    /// it are refused, program output shows it as U+FFFD, and a result holding it fails its task
    /// alone, whether it comes from a handler here or from a remote worker.
    @Test func aNULCharacterFailsOnlyWhatHoldsItAndTheWorkerGoesOn() async throws {
        let database = try postgresDatabase("nul")
        let serve = try ChildProcess("sluice", ["serve", "--port", "0", "--database", database, "--concurrency", "4",
                                                "--allow-exec", "/bin/sh", "--log-level", "warning"])
        defer { serve.kill9() }
        let line = try #require(await serve.line(startingWith: "sluice: listening on "))
        let client = SluiceClient(baseURL: try #require(line.split(separator: " ").dropFirst(3).first.flatMap { URL(string: String($0)) }))

        await #expect { try await client.send("POST", "/v1/tasks", body: ["kind": "echo", "args": ["a": "x\u{0}y"]]) } throws: {
            ($0 as? SluiceClient.Failure)?.field == "args"
        }
        func enqueue(_ body: JSONValue) async throws -> String { try #require(try await client.enqueue(body)["id"]?.stringValue) }
        let printed = try await enqueue(["kind": "exec", "args": ["argv": ["/bin/sh", "-c", #"printf 'a\0b'"#]], "max_attempts": 1])
        let failed = try await enqueue(["kind": "exec", "args": ["argv": ["/bin/sh", "-c", #"printf 'x\0y' >&2; exit 1"#]], "max_attempts": 1])
        #expect(try await client.task(printed, wait: 20)["result"]?["stdout"] == "a\u{FFFD}b")
        let failure = try await client.task(failed, wait: 20)
        #expect(failure["state"] == "failed" && failure["error"]?.stringValue?.contains("x\u{FFFD}y") == true, "\(failure)")

        // A remote worker's batch: one result holds U+0000, the other is plain.
        _ = try await client.send("PUT", "/v1/workers/py-1", body: ["host": "py-1", "pid": 1, "kinds": ["resize"],
                                                                      "pools": [["name": "py", "queues": ["images"], "concurrency": 2]]])
        let bad = try await enqueue(["kind": "resize", "queue": "images"])
        let good = try await enqueue(["kind": "resize", "queue": "images"])
        let claimed = try await client.send("POST", "/v1/workers/py-1/claim", body: ["pools": [["name": "py", "queues": ["images"], "free": 2]], "wait": 5]).body
        guard case .array(let leases)? = claimed["tasks"] else { Issue.record("no tasks in \(claimed)"); return }
        #expect(leases.count == 2)
        let outcomes: [JSONValue] = leases.map { task in
            ["id": task["id"] ?? .null, "token": task["token"] ?? .null, "result": task["id"] == .string(bad) ? ["raw": "\u{0}"] : ["ok": true]]
        }
        _ = try await client.send("POST", "/v1/workers/py-1/outcomes", body: ["outcomes": .array(outcomes)])
        let refused = try await client.task(bad)
        #expect(refused["state"] == "failed" && refused["error"]?.stringValue?.contains("NUL") == true, "\(refused)")
        #expect(try await client.task(good)["result"] == ["ok": true])

        // The worker here still records outcomes.
        let after = try await enqueue(["kind": "echo", "args": ["n": 1]])
        #expect(try await client.task(after, wait: 20)["state"] == "succeeded")
        serve.signal(SIGTERM)
        #expect(await serve.wait() == 0)
    }

    @Test func anUnreachableServerIsOneClearLineAndANonZeroExit() async throws {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        let port = 1
        let child = try ChildProcess("sluice", ["worker", "--database", "postgres://sluice:x@127.0.0.1:\(port)/sluice"])
        #expect(await child.wait() != 0)
        let message = child.errorOutput()
        #expect(message.hasPrefix("error: ") && message.split(separator: "\n").count == 1, "\(message)")
        #expect(message.contains("127.0.0.1:\(port)"), "\(message)")
    }
}
