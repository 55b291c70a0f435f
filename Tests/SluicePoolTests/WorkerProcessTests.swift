import Foundation
import SluiceCore
import SluicePool
import SluiceSQLite
import SluiceStore
import SluiceTestSupport
import Testing

/// The built `sluice worker` binary, as an operator runs it.
@Suite(.serialized, .timeLimit(.minutes(4))) struct WorkerProcessTests {
    @Test func sigtermFinishesRunningTasksAndHandsTheRestBack() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("w.db")
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        let ids = try await store.enqueue(batch: (0..<40).map { _ in EnqueueRequest(kind: "sleep", args: ["seconds": 1.5]) }).map(\.task.id)

        let worker = try ChildProcess("sluice", ["worker", "--db", path, "--concurrency", "4", "--grace", "10", "--log-level", "warning"])
        #expect(await eventually { (try? await store.counts().first?.counts[.running]) == 4 })
        // Claimed is not yet started: a claim not started at SIGTERM is handed back (a CI-like run
        // under load saw all four handed back). Half a second lets the pool start them; each runs 1.5 s.
        try await Task.sleep(for: .milliseconds(500))
        worker.signal(SIGTERM)
        let exited = await eventually(timeout: .seconds(15)) { !worker.isRunning }
        #expect(exited)
        if !exited { worker.kill9() }
        #expect(await worker.wait() == 0)

        let counts = try await store.counts().first?.counts ?? [:]
        #expect(counts[.running] == nil, "no task left running: \(counts)")
        #expect(counts[.failed] == nil)
        #expect((counts[.succeeded] ?? 0) >= 4 && (counts[.succeeded] ?? 0) + (counts[.queued] ?? 0) == 40, "\(counts)")
        // Handed-back tasks did not use up an attempt.
        for id in ids {
            let task = try await store.require(id)
            #expect(task.state == .succeeded ? task.attempt == 1 : task.attempt == 0)
        }
    }

    /// An `exec` child that exits without reading its stdin breaks the pipe the worker writes it
    /// to: the write fails, the worker lives (SIGPIPE used to kill it, and the task, retried, then
    /// killed the next worker), and the task ends by the child's exit status.
    @Test func anExecChildThatLeavesItsStdinUnreadDoesNotKillTheWorker() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("w.db")
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        let worker = try ChildProcess("sluice", ["worker", "--db", path, "--allow-exec", "/bin/true", "--log-level", "warning"])
        let id = try await store.enqueue(EnqueueRequest(kind: "exec", args: ["argv": ["/bin/true"], "stdin": .string(String(repeating: "x", count: 1 << 20))])).task.id
        let tasks = try await finished(store, [id], timeout: .seconds(30))
        #expect(tasks.first?.state == .succeeded, "\(String(describing: tasks.first))")
        #expect(worker.isRunning, "the worker died")
        worker.signal(SIGTERM)
        let exited = await eventually(timeout: .seconds(15)) { !worker.isRunning }
        if !exited { worker.kill9() }
        #expect(await worker.wait() == 0)
    }

    /// When the grace period ends with an `exec` task still running, its child is killed: it runs
    /// in a process group of its own, so it outlived the worker before, and ran on beside the
    /// retry of its task on another worker.
    @Test func anExecChildStillRunningWhenTheGraceEndsIsKilled() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("w.db")
        let pidFile = dir.path("child.pid")
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        let worker = try ChildProcess("sluice", ["worker", "--db", path, "--allow-exec", "/bin/sh", "--grace", "0.5", "--log-level", "error"])
        let id = try await store.enqueue(EnqueueRequest(kind: "exec", args: ["argv": ["/bin/sh", "-c", .string("echo $$ > \(pidFile); exec sleep 60")]])).task.id
        let started = await eventually { ((try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) != nil }
        try #require(started)
        let child = try #require(Int32(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(child, SIGKILL) }
        worker.signal(SIGTERM)
        let exited = await eventually(timeout: .seconds(15)) { !worker.isRunning }
        if !exited { worker.kill9() }
        #expect(await worker.wait() == 0)
        #expect(await eventually(timeout: .seconds(5)) { kill(child, 0) != 0 }, "the exec child outlived the worker")
        // Not finished: its lease expires and it runs again, as when a worker dies.
        #expect(try await store.require(id).state == .running)
    }

    @Test func whenTheLeaderIsKilledAnotherProcessTakesOverAndRescues() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path("leader.db")
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        // Two worker processes; neither drains the queue that will hold the orphaned tasks.
        let arguments = ["worker", "--db", path, "--queues", "elsewhere", "--concurrency", "1", "--lease", "3", "--log-level", "warning"]
        let first = try ChildProcess("sluice", arguments)
        defer { first.kill9() }
        #expect(try await eventually { try await leaderPID(store) == first.pid })
        let second = try ChildProcess("sluice", arguments)
        defer { second.kill9() }
        #expect(await eventually { ((try? await store.workers(seenWithin: .seconds(5)))?.count ?? 0) == 2 })
        #expect(try await leaderPID(store) == first.pid)

        // Tasks whose worker died: their leases expire in 2 s, while the leader is already dead.
        let ids = try await store.enqueue(batch: (0..<3).map { _ in EnqueueRequest(kind: "echo", queue: "orphans") }).map(\.task.id)
        _ = try await store.claim(queues: ["orphans"], limit: 3, owner: "ghost", leaseDuration: .seconds(2))
        first.kill9()
        _ = await first.wait()

        // The survivor takes the lease within two lease periods and rescues them.
        #expect(try await eventually(timeout: .seconds(20)) { try await leaderPID(store) == second.pid })
        #expect(try await eventually(timeout: .seconds(20)) {
            try await ids.asyncAllSatisfy { try await store.require($0).state == .queued }
        })
        for id in ids {
            let task = try await store.require(id)
            #expect(task.attempt == 1 && task.attemptErrors.map(\.message) == [TaskRecord.leaseExpiredMessage])
        }
    }

    @Test func badOptionsGiveOneLineAndExitNonZero() async throws {
        for arguments in [["--pool", "nonsense"], ["--concurrency", "0"], ["--allow-exec", "relative/path"], ["--sync", "sometimes"],
                          ["--db", "/nonexistent-dir/x.db"], ["--autoscale", "5"]] {
            let child = try ChildProcess("sluice", ["worker"] + arguments)
            let status = await child.wait()
            let message = child.errorOutput()
            #expect(status != 0, "\(arguments)")
            #expect(message.hasPrefix("error: ") && message.split(separator: "\n").count == 1, "\(arguments): \(message)")
        }
    }
}

extension Array {
    func asyncAllSatisfy(_ predicate: (Element) async throws -> Bool) async rethrows -> Bool {
        for element in self where try await !predicate(element) { return false }
        return true
    }
}

@Suite(.serialized, .timeLimit(.minutes(4))) struct ExecTests {
    func run(_ args: JSONValue, timeout: Duration = .seconds(30), clock: ManualClock? = nil, monotonic: ManualMonotonicClock? = nil,
             whileRunning: (() async throws -> Void)? = nil) async throws -> TaskRecord {
        let (store, dir) = try sqliteStore(clock: clock ?? SystemClock())
        defer { try? FileManager.default.removeItem(at: dir) }
        var result: TaskRecord?
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 2)],
                             registry: .builtin(allowExec: ["/bin/sh", "/bin/echo"]), clock: clock ?? SystemClock(),
                             monotonic: monotonic ?? SystemMonotonicClock()) { _ in
            let id = try await store.enqueue(EnqueueRequest(kind: "exec", args: args, maxAttempts: 1, timeout: timeout)).task.id
            try await whileRunning?()
            result = try await finished(store, [id])[0]
        }
        return try #require(result)
    }

    @Test func allowedProgramRunsWithArgvStdinAndOnlyTheGivenEnvironment() async throws {
        let echo = try await run(["argv": ["/bin/echo", "a b", "$HOME"]])
        #expect(echo.state == .succeeded)
        #expect(echo.result?["stdout"] == "a b $HOME\n", "argv passed as is, no shell")
        #expect(echo.result?["status"] == ["exit": 0])
        let shell = try await run(["argv": ["/bin/sh", "-c", "cat; echo \":$HOME:$FOO\""], "stdin": "in", "env": ["FOO": "bar"]])
        #expect(shell.result?["stdout"] == "in:(nil):bar\n" || shell.result?["stdout"] == "in::bar\n")
    }

    /// A program that cannot start for a reason that may pass (here ETXTBSY: the file is open for
    /// writing, as while a deploy replaces it) is retried; one that does not exist fails at once.
    @Test func aStartFailureThatMayPassIsRetriedAndAMissingProgramIsNot() async throws {
        let (store, dir) = try sqliteStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = dir.appendingPathComponent("deploying.sh").path
        try "#!/bin/sh\necho done\n".write(toFile: script, atomically: false, encoding: .utf8)
        chmod(script, 0o755)
        let writer = try #require(FileHandle(forWritingAtPath: script))
        defer { try? writer.close() }
        try await withWorker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: 2)],
                             registry: .builtin(allowExec: [script, "/nonexistent/program"])) { _ in
            let busy = try await store.enqueue(EnqueueRequest(kind: "exec", args: ["argv": [.string(script)]], maxAttempts: 3)).task.id
            let missing = try await store.enqueue(EnqueueRequest(kind: "exec", args: ["argv": ["/nonexistent/program"]], maxAttempts: 3)).task.id
            // Every attempt meets the busy file (it stays open): retried until out of attempts.
            let retried = try await finished(store, [busy])[0]
            #expect(retried.state == .failed && retried.attempt == 3 && retried.error?.contains("exec: \(script)") == true, "\(retried)")
            let failed = try await finished(store, [missing])[0]
            #expect(failed.state == .failed && failed.attempt == 1, "\(failed)")
        }
    }

    /// The stdin file is the handler's to close, whether the program ran, failed or never started
    /// (only this suite runs `exec` in this process, one test at a time).
    @Test func noStdinFileOutlivesItsRun() async throws {
        func stdinFiles() -> Int {
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            return fds.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)"))?.contains("sluice-exec-stdin") == true }.count
        }
        _ = try await run(["argv": ["/bin/sh", "-c", "cat"], "stdin": "in"])
        _ = try await run(["argv": ["/bin/sh", "-c", "exit 3"]])
        _ = try await run(["argv": ["/bin/sh", "-c", "sleep 30"]], timeout: .milliseconds(200))
        #expect(stdinFiles() == 0)
    }

    @Test func nonZeroExitIsAFailure() async throws {
        let task = try await run(["argv": ["/bin/sh", "-c", "echo oops >&2; exit 3"]])
        #expect(task.state == .failed)
        #expect(task.error?.contains("{\"exit\":3}") == true && task.error?.contains("oops") == true)
    }

    @Test(arguments: ["/bin/ls", "/bin/../bin/sh", "sh", "/bin/sh/../ls"])
    func programsNotAllowedAreRefused(program: String) async throws {
        let task = try await run(["argv": [.string(program), "/"]])
        #expect(task.state == .failed && task.attempt == 1)
        #expect(task.error?.contains("\(program) is not allowed; allowed programs: /bin/echo, /bin/sh") == true)
    }

    @Test func timeoutKillsTheWholeProcessGroup() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let pidFile = dir.path("grandchild.pid")
        let monotonic = ManualMonotonicClock()
        let task = try await run(["argv": ["/bin/sh", "-c", .string("sleep 300 & echo $! > \(pidFile); wait")]], timeout: .seconds(5), monotonic: monotonic) {
            #expect(await eventually { FileManager.default.fileExists(atPath: pidFile) && ((try? String(contentsOfFile: pidFile, encoding: .utf8))?.hasSuffix("\n") ?? false) })
            monotonic.advance(by: .seconds(6))
        }
        #expect(task.state == .failed && task.error?.contains("timed out") == true)
        let pid = try #require(Int32(String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        // The grandchild (not the shell we started) is gone too, or at most an unreaped zombie.
        #expect(await eventually(timeout: .seconds(5)) { Self.isGoneOrZombie(pid) })
    }

    static func isGoneOrZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
    }
}
