import Foundation
import SluiceCore
import SluiceTestSupport
import Testing

/// The client commands (`sluice enqueue`, `status`, `tasks`, `cancel`, `retry`, `delete`, `bulk`,
/// `queues`, `pools`) run as a user runs them: the built binary against a live server, each a
/// process of its own, judged by what it prints and how it exits.
@Suite(.serialized, .timeLimit(.minutes(4))) struct ClientCommandTests {
    /// Runs `sluice ARGUMENTS --url URL` to its end: its exit status, standard output and error.
    func sluice(_ arguments: [String], _ server: LiveServer) async throws -> (status: Int32, output: String, error: String) {
        try await CommandLineTests.start(arguments + ["--url", server.client.baseURL.absoluteString]).finish(timeout: .seconds(30))
    }

    /// The task a `--json` command printed.
    func task(_ output: String) throws -> JSONValue {
        try JSONValue(jsonText: output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test func aTaskThroughItsWholeLifeFromTheCommandLine() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("cli.db"), ["--concurrency", "2"])

        // The server's pool drains the default queue.
        let done = try await sluice(["enqueue", "echo", "--args", #"{"n": 1}"#, "--wait", "10"], server)
        #expect(done.status == 0, "\(done.error)")
        #expect(done.output.contains("succeeded") && done.output.contains(#"{"n":1}"#) && done.output.contains("default"), "\(done.output)")

        // A long task, cancelled while it runs: `status --wait` sees it end cancelled.
        let long = try task(try await sluice(["enqueue", "sleep", "--args", #"{"seconds": 60}"#, "--json"], server).output)
        let id = try #require(long["id"]?.stringValue)
        #expect(await eventually { (try? await server.client.task(id))?["state"] == "running" })
        let cancelling = try await sluice(["cancel", id], server)
        #expect(cancelling.status == 0 && (cancelling.output.contains("running (cancelling)") || cancelling.output.contains("cancelled")), "\(cancelling)")
        let cancelled = try task(try await sluice(["status", id, "--wait", "20", "--json"], server).output)
        #expect(cancelled["state"] == "cancelled", "\(cancelled)")

        // Retried, it runs again; deleted once finished, it is gone.
        let retried = try task(try await sluice(["retry", id, "--json"], server).output)
        #expect(retried["state"] == "queued" || retried["state"] == "running", "\(retried)")
        #expect(try await sluice(["cancel", id], server).status == 0)
        #expect(try task(try await sluice(["status", id, "--wait", "20", "--json"], server).output)["state"] == "cancelled")
        #expect(try await sluice(["delete", id], server).status == 0)
        let gone = try await sluice(["status", id], server)
        #expect(gone.status == 1 && gone.error.contains("no task has id \(id)"), "\(gone)")

        // The search finds what is left, by args too.
        let found = try await sluice(["tasks", "--queue", "default", "--where", "n=1"], server)
        #expect(found.status == 0 && found.output.split(separator: "\n").count == 1 && found.output.contains("echo"), "\(found.output)")
        #expect(try await sluice(["tasks", "--queue", "nowhere"], server).output.contains("no tasks"))
        await server.stop()
    }

    @Test func bulkActionsNeedAConditionWithAValue() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("bulk.db"), ["--no-pool"])
        for n in 0..<3 { _ = try await server.client.enqueue(["kind": "echo", "queue": "mail", "args": ["n": .int(Int64(n))]]) }
        _ = try await server.client.enqueue(["kind": "echo", "queue": "other"])

        // An empty value is no condition: refused here, and by the server had it been sent.
        for arguments in [["bulk", "delete"], ["bulk", "delete", "--state", ""], ["bulk", "cancel", "--queue", "", "--kind", ""]] {
            let refused = try await sluice(arguments, server)
            #expect(refused.status == 1 && refused.error.contains("give at least one search option"), "\(arguments): \(refused)")
        }
        let cancelled = try await sluice(["bulk", "cancel", "--queue", "mail"], server)
        #expect(cancelled.status == 0 && cancelled.output.contains("cancel: 3 of 3 changed"), "\(cancelled)")
        let other = try await server.client.send("GET", "/v1/tasks", query: ["queue": "other"]).body
        #expect(other["tasks"]?[0]?["state"] == "queued", "the other queue's task was left alone")
        let unknown = try await sluice(["bulk", "zap", "--queue", "mail"], server)
        #expect(unknown.status == 1 && unknown.error.contains("action"), "\(unknown)")
        await server.stop()
    }

    @Test func queuesPauseAndResumeAndPoolsResize() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("ops.db"), ["--concurrency", "2"])
        _ = try await server.client.enqueue(["kind": "echo", "queue": "default"], wait: 10)

        #expect(try await sluice(["queues", "pause", "default"], server).output.contains("queue default paused"))
        let paused = try task(try await sluice(["queues", "--json"], server).output)
        #expect(paused["paused"] == ["default"], "\(paused)")
        let table = try await sluice(["queues"], server).output
        #expect(table.contains("default (paused)") && table.contains("succeeded"), "\(table)")
        // A fire-and-forget task waiting for its time shows on a row of its own.
        _ = try await sluice(["enqueue", "echo", "--fire-and-forget", "--delay", "600"], server)
        #expect(try await sluice(["queues"], server).output.contains("default (memory) (paused)"))
        #expect(try await sluice(["queues", "resume", "default"], server).output.contains("queue default resumed"))
        #expect(try task(try await sluice(["queues", "--json"], server).output)["paused"] == [])

        let set = try await sluice(["pools", "set", "default", "5"], server)
        #expect(set.status == 0 && set.output.contains("target now 5"), "\(set)")
        let pools = try await sluice(["pools"], server)
        #expect(pools.status == 0 && pools.output.contains("default") && pools.output.contains("target"), "\(pools)")
        let tooBig = try await sluice(["pools", "set", "default", "0"], server)
        #expect(tooBig.status == 1 && tooBig.error.contains("concurrency"), "\(tooBig)")
        await server.stop()
    }

    /// A negative priority is a value, not an option (the argument parser took `-5` for one).
    @Test func aNegativePriorityIsAValue() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("neg.db"), ["--no-pool"])
        let task = try task(try await sluice(["enqueue", "echo", "--priority", "-5", "--json"], server).output)
        #expect(task["priority"] == -5, "\(task)")
        await server.stop()
    }

    /// `tasks` and `bulk` find the same tasks: a `+` in a value reached the server as a space in the
    /// query of `tasks` (which then listed another task than the one `bulk` changed), and a name went
    /// into a path unencoded.
    @Test func valuesAndNamesReachTheServerAsTyped() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("plus.db"), ["--no-pool"])
        let plus = try #require(try await server.client.enqueue(["kind": "echo", "args": ["note": "a+b"]])["id"]?.stringValue)
        let space = try #require(try await server.client.enqueue(["kind": "echo", "args": ["note": "a b"]])["id"]?.stringValue)
        let listed = try await sluice(["tasks", "--where", "note=a+b"], server)
        #expect(listed.output.contains(plus) && !listed.output.contains(space), "\(listed)")
        #expect(try await sluice(["tasks", "--args", "a+b"], server).output.contains(plus))
        #expect(try await sluice(["bulk", "cancel", "--where", "note=a+b"], server).output.contains("1 of 1 changed"))
        #expect(try await server.client.task(plus)["state"] == "cancelled")
        #expect(try await server.client.task(space)["state"] == "queued", "the other task is still there")
        let slashed = try await sluice(["queues", "pause", "a/b"], server)
        #expect(slashed.status == 1 && slashed.error.contains("name"), "refused as a name, not as a route: \(slashed)")
        await server.stop()
    }

    /// After `--wait`, the exit status tells a script how the wait ended.
    @Test func theExitStatusAfterAWaitSaysHowTheTaskEnded() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("wait.db"), ["--concurrency", "2"])
        #expect(try await sluice(["enqueue", "echo", "--wait", "10"], server).status == 0)
        let failed = try await sluice(["enqueue", "fail", "--args", #"{"times": 5}"#, "--max-attempts", "1", "--wait", "10"], server)
        #expect(failed.status == 2 && failed.output.contains("failed"), "\(failed)")
        let long = try task(try await sluice(["enqueue", "sleep", "--args", #"{"seconds": 30}"#, "--json"], server).output)
        let running = try await sluice(["status", try #require(long["id"]?.stringValue), "--wait", "0.3"], server)
        #expect(running.status == 3 && running.error.contains("had not finished after --wait 0.3 s"), "\(running)")
        #expect(try await sluice(["status", try #require(long["id"]?.stringValue)], server).status == 0, "without --wait, reading is the answer")
        await server.stop()
    }

    /// The client trims SLUICE_TOKEN's entries as the server does, and a 401 says how to give a token.
    @Test func tokensAsTheServerReadsThem() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try await LiveServer(db: dir.path("token.db"), ["--no-pool", "--token", "s3cret"])
        let url = server.client.baseURL.absoluteString
        let missing = try await CommandLineTests.start(["tasks", "--url", url]).finish(timeout: .seconds(30))
        #expect(missing.status == 1 && missing.error.contains("give the server's token with --token or SLUICE_TOKEN"), "\(missing)")
        let spaced = try await CommandLineTests.start(["tasks", "--url", url], environment: ["SLUICE_TOKEN": " s3cret , other"]).finish(timeout: .seconds(30))
        #expect(spaced.status == 0, "\(spaced)")
        await server.stop()
    }

    @Test func badAddressesAndArgumentsAreOneLineAndExit1() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        for (arguments, message) in [(["tasks", "--url", "ftp://x"], "--url ftp://x: expected an address like http://127.0.0.1:8000"),
                                     (["enqueue", "echo", "--args", "[1]"], "--args must be a JSON object"),
                                     // Numbers that used to crash the client or be dropped on the way.
                                     (["enqueue", "echo", "--wait", "nan"], "--wait nan: give a number of seconds"),
                                     (["enqueue", "echo", "--delay", "inf"], "--delay inf: give a number of seconds"),
                                     (["status", "01JY3R8M4S7K2Q9ZB6XW5T0N1C", "--wait", "nan"], "--wait nan: give a number of seconds"),
                                     (["queues", "--url", "http://127.0.0.1:99999"], "--url http://127.0.0.1:99999: expected an address"),
                                     (["status", ""], "give a task id"),
                                     (["cancel", ""], "give a task id"),
                                     (["queues", "pause", ""], "the queue's name is empty: give one"),
                                     (["pools", "set", "", "3"], "the pool's name is empty: give one"),
                                     (["schedules", "rm", ""], "the schedule's name is empty: give one"),
                                     // sqlite://m.db was read as the path //m.db, a file at the root.
                                     (["migrate", "--database", "sqlite://m.db"], "write sqlite:PATH"),
                                     (["migrate", "--db", "/nonexistent-dir/x.db"], "the directory /nonexistent-dir does not exist"),
                                     (["migrate", "--db", "/tmp"], "--db /tmp: is a directory"),
                                     // Nothing listens on port 1 of loopback: said at once, not retried until
                                     // the request's 30 s run out (the wait below is shorter).
                                     (["status", "01JY3R8M4S7K2Q9ZB6XW5T0N1C", "--url", "http://127.0.0.1:1"],
                                      "cannot reach http://127.0.0.1:1: connection refused, nothing listens there")] {
            let (status, _, error) = try await CommandLineTests.start(arguments, in: dir.path("")).finish(timeout: .seconds(15))
            #expect(status == 1, "\(arguments): exit \(status)")
            #expect(error.hasPrefix("error: ") && error.contains(message) && error.split(separator: "\n").count == 1, "\(arguments): \(error)")
        }
    }
}
