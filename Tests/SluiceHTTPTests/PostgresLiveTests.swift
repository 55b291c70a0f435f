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
