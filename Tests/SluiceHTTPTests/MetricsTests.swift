import Foundation
import SluiceClient
import SluiceCore
@testable import SluiceHTTP
import SluiceTestSupport
import Testing

/// `/metrics` of `sluice serve` and `sluice worker --metrics-port`, scraped as Prometheus would,
/// after tasks ran: the task counters and histograms moved, and promtool finds nothing to fault.
@Suite(.serialized, .timeLimit(.minutes(4))) struct MetricsTests {
    /// Checks what every Sluice process's /metrics must show after `succeeded` successes and
    /// `failed` failures in its pool `default`.
    static func check(_ text: String, succeeded: Double, failed: Double) async throws {
        let pool = ["pool": "default"]
        #expect(sample(text, "sluice_task_attempts_total", ["pool": "default", "outcome": "succeeded"]) == succeeded, "\(text)")
        #expect(sample(text, "sluice_task_attempts_total", ["pool": "default", "outcome": "failed"]) == failed)
        #expect(sample(text, "sluice_task_run_seconds_count", pool) == succeeded + failed)
        #expect(sample(text, "sluice_task_wait_seconds_count", pool) == succeeded + failed)
        #expect(sample(text, "sluice_task_run_seconds_bucket", ["pool": "default", "le": "+Inf"]) == succeeded + failed)
        for line in text.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let name = line.split(separator: " ")[2]
            #expect(text.contains("# HELP \(name) "), "no HELP for \(name)")
        }
        if let (status, said) = try await promtoolCheck(text) {
            #expect(status == 0, "promtool check metrics: \(said)")
        }
    }

    @Test func serveCountsTasksItRan() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("metrics.db"), ["--concurrency", "2"])
        defer { server.stop() }
        for _ in 0..<3 { #expect(try await server.client.enqueue(["kind": "echo"], wait: 30)["state"] == "succeeded") }
        #expect(try await server.client.enqueue(["kind": "fail", "args": ["times": 5], "max_attempts": 1], wait: 30)["state"] == "failed")
        // A timeout is a failed attempt, not a dropped one (its handler returns later, at the cancel).
        let timedOut = try await server.client.enqueue(["kind": "sleep", "args": ["seconds": 60], "timeout": 0.5, "max_attempts": 1], wait: 30)
        #expect(timedOut["state"] == "failed" && timedOut["error"]?.stringValue?.hasPrefix("timed out") == true, "\(timedOut)")
        var (status, text) = (0, "")
        #expect(await eventually {
            (status, text) = (try? fetch(port: server.client.baseURL.port!, "/metrics")) ?? (0, "")
            return sample(text, "sluice_task_run_seconds_count", ["pool": "default"]) == 5
        }, "\(text)")
        #expect(status == 200)
        try await Self.check(text, succeeded: 3, failed: 2)
        #expect(sample(text, "sluice_task_attempts_total", ["pool": "default", "outcome": "dropped"]) == 0)
        #expect(sample(text, "sluice_queue_tasks", ["queue": "default", "state": "succeeded"]) == 3)
    }

    /// A queue whose tasks are all gone (deleted, pruned) leaves /metrics: its gauges kept their
    /// last values for good, so an alert on `failed` never cleared.
    @Test func aQueueWithNoTasksLeftLeavesTheGauges() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("gone.db"), ["--concurrency", "1"])
        defer { server.stop() }
        let port = server.client.baseURL.port!
        let id = try #require(try await server.client.enqueue(["kind": "echo", "queue": "zz", "delay": 1000])["id"]?.stringValue)
        #expect(sample(try fetch(port: port, "/metrics").body, "sluice_queue_tasks", ["queue": "zz", "state": "scheduled"]) == 1)
        #expect(try await server.client.send("POST", "/v1/tasks/\(id)/cancel").status == 200)
        #expect(try await server.client.send("DELETE", "/v1/tasks/\(id)").status == 200)
        let text = try fetch(port: port, "/metrics").body
        #expect(!text.contains("queue=\"zz\""), "\(text)")
        if let (status, said) = try await promtoolCheck(text) { #expect(status == 0, "promtool check metrics: \(said)") }
    }

    @Test func workerServesMetricsOfItsOwnPools() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let db = dir.path("worker-metrics.db")
        let server = try await LiveServer(db: db, ["--no-pool"])
        defer { server.stop() }
        let worker = try ChildProcess("sluice", ["worker", "--db", db, "--concurrency", "2", "--metrics-port", "0", "--log-level", "warning",
                                                 "--public-host", "worker-3.internal"])
        defer {
            worker.signal(SIGTERM)
            #expect(worker.wait() == 0)
        }
        let line = try #require(await worker.line(startingWith: "sluice: metrics on "))
        let port = try #require(URL(string: String(line.dropFirst("sluice: metrics on ".count)))?.port)
        for _ in 0..<2 { #expect(try await server.client.enqueue(["kind": "echo"], wait: 30)["state"] == "succeeded") }
        // The worker records an attempt just after storing its outcome: the counter may lag the answer by a moment.
        var text = ""
        #expect(await eventually {
            text = (try? fetch(port: port, "/metrics").body) ?? ""
            return sample(text, "sluice_task_attempts_total", ["pool": "default", "outcome": "succeeded"]) == 2
        })
        try await Self.check(text, succeeded: 2, failed: 0)
        #expect(sample(text, "sluice_pool_target", ["pool": "default"]) == 2)
        #expect(try fetch(port: port, "/v1/tasks").status == 404, "the worker serves /metrics only")
        // Prometheus scraping by a DNS name the worker was told it has; another name is refused.
        #expect(try fetch(port: port, "/metrics", host: "worker-3.internal:\(port)").status == 200)
        #expect(try fetch(port: port, "/metrics", host: "evil.example:\(port)").status == 403)
    }

    /// The leader's scheduler counts its slots by outcome: a schedule every second whose task
    /// lasts longer, with `overlap: false`, fires one slot and skips the next while its task runs.
    @Test func theSchedulerCountsSlotsByOutcome() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("schedules.db"), ["--concurrency", "2"])
        defer { server.stop() }
        let schedule: JSONValue = ["name": "tick", "cron": "@every 1s", "task": ["kind": "sleep", "args": ["seconds": 60]], "overlap": false]
        #expect(try await server.client.send("POST", "/v1/schedules", body: schedule).status == 201)
        var text = ""
        #expect(await eventually(timeout: .seconds(30)) {
            text = (try? fetch(port: server.client.baseURL.port!, "/metrics").body) ?? ""
            return sample(text, "sluice_schedule_slots_total", ["outcome": "overlapping"]).map { $0 >= 1 } ?? false
        }, "\(text)")
        #expect(sample(text, "sluice_schedule_slots_total", ["outcome": "fired"]) == 1)
        #expect(sample(text, "sluice_schedule_slots_total", ["outcome": "missed"]) == 0)
        #expect(text.contains("# HELP sluice_schedule_slots_total Schedule slots"))
        if let (status, said) = try await promtoolCheck(text) { #expect(status == 0, "promtool check metrics: \(said)") }
        // The sleep honours a cancel, so the server stops without waiting it out.
        let running = try await server.client.send("GET", "/v1/tasks", query: ["state": "running"]).body["tasks"]?.arrayValue ?? []
        for task in running { _ = try await server.client.send("POST", "/v1/tasks/\(task["id"]?.stringValue ?? "")/cancel") }
    }

    /// Queue names come from clients, so the queue gauges show at most 500 queues one by one (those
    /// with the most unfinished tasks) and sum the rest under `queue="(other)"`: a batch into 600
    /// made-up queues adds 3,507 series at most, not 4,200 for good.
    @Test func theQueueGaugesShowABoundedNumberOfQueues() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("queues.db"), ["--no-pool"])
        defer { server.stop() }
        let made: [JSONValue] = (0..<600).map { .object(["kind": "echo", "queue": .string(String(format: "q%03d", $0))]) }
        let hot: [JSONValue] = (0..<3).map { _ in ["kind": "echo", "queue": "hot"] }
        #expect(try await server.client.send("POST", "/v1/tasks/batch", body: .array(made + hot)).status == 202)
        let text = try fetch(port: server.client.baseURL.port!, "/metrics").body
        let queues = Set(text.split(separator: "\n").filter { $0.hasPrefix("sluice_queue_tasks{") }.compactMap { line in
            line.split(separator: "queue=\"").dropFirst().first?.split(separator: "\"").first.map(String.init)
        })
        #expect(queues.count == MetricsEndpoint.maxQueues + 1, "\(queues.count) queues shown")
        #expect(sample(text, "sluice_queue_tasks", ["queue": "hot", "state": "queued"]) == 3)
        #expect(sample(text, "sluice_queue_tasks", ["queue": "(other)", "state": "queued"]) == Double(600 - (MetricsEndpoint.maxQueues - 1)))
        if let (status, said) = try await promtoolCheck(text) { #expect(status == 0, "promtool check metrics: \(said)") }
    }

    @Test func shutdownAnswersALongPollAtOnce() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("shutdown.db"))
        let id = try #require(try await server.client.enqueue(["kind": "echo", "delay": 600])["id"]?.stringValue)
        let client = server.client
        async let answer = within(.seconds(60)) { try await client.task(id, wait: 300) }
        #expect(await eventually { (try? fetch(port: client.baseURL.port!, "/metrics")).flatMap { sample($0.body, "sluice_http_waiting_requests") } == 1 })
        server.process.signal(SIGTERM)
        let task = try #require(try await answer, "the waiting request was not answered within 60 s of SIGTERM")
        #expect(task["state"] == "scheduled")
        #expect(await server.process.wait() == 0)
    }
}
