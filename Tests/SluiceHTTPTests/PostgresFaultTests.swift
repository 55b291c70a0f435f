import Foundation
import SluiceClient
import SluiceCore
import SluiceTestSupport
import Synchronization
import Testing

/// What must hold across hosts when the world misbehaves: the PostgreSQL server restarts in the
/// middle of a run, and hosts' clocks disagree by an hour. The built binaries, over HTTP, as a team
/// past one host runs them.
@Suite(.serialized, .timeLimit(.minutes(4))) struct PostgresFaultTests {
    /// `sluice serve --no-pool` on `database`, and a client for it.
    func front(_ database: String) async throws -> (ChildProcess, SluiceClient) {
        let serve = try ChildProcess("sluice", ["serve", "--port", "0", "--database", database, "--no-pool", "--log-level", "info"])
        let line = try #require(await serve.line(startingWith: "sluice: listening on "), "\(serve.errorOutput())")
        let address = try #require(line.split(separator: " ").dropFirst(3).first.flatMap { URL(string: String($0)) })
        return (serve, SluiceClient(baseURL: address))
    }

    func liveWorkers(_ client: SluiceClient) async -> [JSONValue] {
        guard case .array(let list)? = try? await client.send("GET", "/v1/workers").body["workers"] else { return [] }
        return list
    }

    /// Every durable task, page by page.
    func allTasks(_ client: SluiceClient) async throws -> [JSONValue] {
        var tasks: [JSONValue] = [], cursor: String?
        repeat {
            var query = ["limit": "1000"]
            if let cursor { query["cursor"] = cursor }
            let page = try await client.send("GET", "/v1/tasks", query: query).body
            if case .array(let some)? = page["tasks"] { tasks += some }
            cursor = page["next_cursor"]?.stringValue
        } while cursor != nil
        return tasks
    }

    /// Tasks not yet finished, by the queue counts.
    func unfinished(_ client: SluiceClient) async -> Int? {
        guard case .array(let queues)? = try? await client.send("GET", "/v1/queues").body["durable"] else { return nil }
        return queues.reduce(0) { sum, queue in
            sum + ["queued", "running", "scheduled", "retrying"].reduce(0) { $0 + Int(queue["counts"]?[$1]?.intValue ?? 0) }
        }
    }

    static func seconds(_ from: JSONValue?, _ to: JSONValue?) -> Double? {
        guard let from = from?.stringValue.flatMap(parseTime), let to = to?.stringValue.flatMap(parseTime) else { return nil }
        return to.timeIntervalSince(from)
    }

    static func parseTime(_ text: String) -> Date? {
        (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)) ?? (try? Date.ISO8601FormatStyle().parse(text))
    }

    /// Runs blocking `work` (a child process and its bounded wait) on a thread of its own, so that
    /// it holds none of the few threads the tests' async code shares.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
        }
    }

    // MARK: - The server restarts

    final class Counter: Sendable { let value = Atomic<Int>(0) }

    /// Restarts `server` once `counter` reaches `count`; how long the restart took, and when it ended.
    static func restart(_ server: PostgresServer, once counter: Counter, reaches count: Int) async throws -> (Duration, Date) {
        _ = await eventually(timeout: .seconds(120)) { counter.value.load(ordering: .relaxed) >= count }
        let began = ContinuousClock.now
        try await onThread { try server.restart() }
        return (ContinuousClock.now - began, Date())
    }

    /// Issue 11: "`pg_ctl restart` during a run loses nothing and the workers resume by themselves."
    /// A server of the test's own (the shared one serves other tests meanwhile) is restarted while
    /// four producers enqueue 2,000 tasks over HTTP and two `sluice worker` processes drain them.
    @Test func aServerRestartMidRunLosesNothingAndTheWorkersResumeByThemselves() async throws {
        try requirePostgres()  // a server of its own, but a run without PostgreSQL has none to start either
        let server = try await Self.onThread { try PostgresServer() }
        defer { server.stop() }
        let (serve, client) = try await front(server.url)
        defer { serve.kill9() }
        // Worker 0 also has an idle pool on queue `probe`: its fetcher backs off to the backstop
        // poll (1 s) while the store hears every enqueue, so a probe starts within milliseconds only
        // if a NOTIFY reached the process, i.e. its LISTEN connection came back after the restart.
        let workers = try (0..<2).map { n in
            try ChildProcess("sluice", ["worker", "--database", server.url, "--pool", "main=default:8", "--lease", "10", "--log-level", "info"]
                             + (n == 0 ? ["--pool", "probe=probe:1"] : []))
        }
        defer { for worker in workers { worker.kill9() } }
        let pids = Set(workers.map { Int64($0.pid) })
        /// Sessions LISTENing for enqueues, as the server sees them: one per sluice process.
        func listening() -> Int {
            Int((try? server.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sluice listener'")) ?? "") ?? -1
        }
        /// The two `sluice worker` processes, not the front (it leads maintenance, so it registers too).
        func workerPIDs() async -> Set<Int64> {
            Set(await liveWorkers(client).filter { $0["this_server"] != true }.compactMap { $0["pid"]?.intValue })
        }
        #expect(await eventually { await workerPIDs() == pids && listening() == 3 }, "listening: \(listening())")

        // Four producers, 500 tasks each, one request per task; the server restarts once 600 were sent.
        let taskCount = 2000, producers = 4
        let sent = Counter()
        let started = ContinuousClock.now
        async let restarted = Self.restart(server, once: sent, reaches: 600)
        struct Outcome: Sendable { var acknowledged: [String] = []; var refused: [String] = []; var slowest = Duration.zero }
        let outcome = await withTaskGroup(of: Outcome.self) { group in
            for producer in 0..<producers {
                group.addTask {
                    var outcome = Outcome()
                    for n in 0..<(taskCount / producers) {
                        let body: JSONValue = ["kind": "sleep", "args": ["seconds": 0.01, "n": .int(Int64(producer * 10_000 + n))]]
                        let began = ContinuousClock.now
                        do {
                            let task = try await client.send("POST", "/v1/tasks", body: body).body
                            if let id = task["id"]?.stringValue { outcome.acknowledged.append(id) } else { outcome.refused.append("no id in \(task)") }
                        } catch let failure as SluiceClient.Failure {
                            outcome.refused.append(failure.status == 503 ? "503" : "\(failure)")
                        } catch {
                            outcome.refused.append("\(error)")
                        }
                        outcome.slowest = max(outcome.slowest, ContinuousClock.now - began)
                        sent.value.add(1, ordering: .relaxed)
                    }
                    return outcome
                }
            }
            return await group.reduce(into: Outcome()) {
                $0.acknowledged += $1.acknowledged; $0.refused += $1.refused; $0.slowest = max($0.slowest, $1.slowest)
            }
        }
        let enqueueTime = ContinuousClock.now - started
        let (restartTime, restartedAt) = try await restarted
        // Refused enqueues were not acknowledged: they may be missing.
        #expect(outcome.acknowledged.count + outcome.refused.count == taskCount)
        #expect(outcome.acknowledged.count >= taskCount - 200, "\(outcome.refused.count) of \(taskCount) enqueues refused")

        // Every task ends succeeded, with no help: the workers resumed by themselves.
        let drainStarted = ContinuousClock.now
        var left: Int?
        #expect(await eventually(timeout: .seconds(60)) {
            left = await unfinished(client)
            return left == 0
        }, "\(left.map(String.init) ?? "unknown") tasks unfinished 60 s after the last enqueue")
        let drainTime = ContinuousClock.now - drainStarted
        let tasks = try await allTasks(client)
        let stored = Dictionary(tasks.compactMap { task in task["id"]?.stringValue.map { ($0, task) } }) { first, _ in first }
        let lost = outcome.acknowledged.filter { stored[$0] == nil }
        #expect(lost.isEmpty, "\(lost.count) acknowledged enqueues are not stored, e.g. \(lost.prefix(3))")
        var twice = 0
        for task in tasks {
            #expect(task["state"] == "succeeded", "\(task)")
            // A second attempt only after the first one's lease was lost and rescued; never two at once.
            if task["attempt"] != 1 {
                twice += 1
                #expect(task["attempt"] == 2 && task["attempt_errors"]?[0]?["message"]?.stringValue == TaskRecord.leaseExpiredMessage, "\(task)")
            }
        }

        // Both processes ran tasks after the restart (started a second after it, to be sure).
        let ranAfter = Set(tasks.filter { task in
            (task["started_at"]?.stringValue.flatMap(Self.parseTime)).map { $0 > restartedAt.addingTimeInterval(1) } ?? false
        }.compactMap { $0["worker"]?.stringValue?.split(separator: ":").dropFirst().first.flatMap { Int64($0) } })
        // A store call never hangs (postgres-nio can lose a statement sent as its connection closes;
        // StatementWatch): each refusal says 503 (try again), none waits until the client gives up,
        // and both workers went on claiming.
        #expect(outcome.refused.allSatisfy { $0 == "503" }, "refused: \(Set(outcome.refused))")
        #expect(outcome.slowest < .seconds(15), "the slowest enqueue took \(outcome.slowest)")
        #expect(ranAfter == pids, "after the restart tasks started on \(ranAfter), the workers are \(pids)")

        // The same two processes, never restarted, still registered; each LISTENs again.
        #expect(workers.allSatisfy(\.isRunning) && serve.isRunning, "exits: \(workers.map(\.exitStatus)), serve \(String(describing: serve.exitStatus))")
        #expect(await eventually { await workerPIDs() == pids })
        #expect(await eventually { listening() == 3 }, "\(listening()) sessions listening after the restart")

        // New tasks start promptly: woken by NOTIFY, not found by the backstop poll. Each probe waits
        // out the probe pool's backoff first (about 1 s to reach the 1 s backstop), so that only a
        // notify can start it within 250 ms; polling alone would do so about one time in four.
        var latencies: [Double] = []
        for n in 0..<6 {
            try await Task.sleep(for: .seconds(2))
            let probe = try await client.send("POST", "/v1/tasks", body: ["kind": "echo", "queue": "probe", "args": ["probe": .int(Int64(n))]]).body
            let id = try #require(probe["id"]?.stringValue)
            var done: JSONValue?
            #expect(await eventually(timeout: .seconds(30)) {
                done = try? await client.task(id, wait: 5)
                return done?["state"] == "succeeded"
            })
            latencies.append(Self.seconds(done?["created_at"], done?["started_at"]) ?? .infinity)
        }
        #expect(latencies.filter { $0 < 0.25 }.count >= 5, "enqueue → start after the restart: \(latencies) s")

        print("restart test: \(outcome.acknowledged.count) acknowledged, \(outcome.refused.count) refused (503); restart \(restartTime), "
              + "enqueueing \(enqueueTime) (slowest request \(outcome.slowest)), drained \(drainTime) after; \(twice) tasks ran twice; "
              + "probe enqueue → start \(latencies.map { "\(Int($0 * 1000)) ms" })")
        var stops: [(Int32, String)] = []
        for worker in workers {
            worker.signal(SIGTERM)
            stops.append((await worker.wait(timeout: .seconds(45)), worker.errorOutput()))
        }
        serve.signal(SIGTERM)
        stops.append((await serve.wait(timeout: .seconds(45)), serve.errorOutput()))
        for (status, log) in stops { #expect(status == 0, "\(log.suffix(3000))") }
    }

    // MARK: - Clocks an hour apart

    /// The faketime wrapper (Debian: faketime), or nil after a loud skip; under CI=true its absence fails.
    func faketime() throws -> String? {
        if let path = ["/usr/bin/faketime", "/usr/local/bin/faketime"].first(where: FileManager.default.isExecutableFile) { return path }
        let message = "SKIPPED: the clock-skew test needs faketime (Debian package faketime)"
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            Issue.record("faketime is not installed, and CI must run the clock-skew test (.ci/run installs it)")
            return nil
        }
        FileHandle.standardError.write(Data("\n*** \(message) ***\n\n".utf8))
        try Test.cancel(Comment(rawValue: message))
    }

    /// A `sluice worker` whose clock is `offset` (`+1h`, `-1h`) off. Through the faketime wrapper, not
    /// LD_PRELOAD in the environment: libfaketime then calls setenv() while it loads, which moves
    /// `environ` off the stack, and Swift on Linux finds argv by walking back from `environ`, so
    /// the program would start without its arguments. The wrapper passes the shared-memory names
    /// libfaketime would set, so nothing is set. It forks the worker (hence its own process group,
    /// killed whole on failure) and its monotonic clock is left alone: only wall clocks differ.
    struct SkewedWorker {
        let wrapper: ChildProcess
        let offset: String

        init(_ faketime: String, _ offset: String, _ arguments: [String]) throws {
            self.offset = offset
            wrapper = try ChildProcess(executable: faketime, ["-m", "--exclude-monotonic", "-f", offset,
                                                               productsDirectory().appendingPathComponent("sluice").path] + arguments,
                                       ownGroup: true)
        }

        /// The worker process itself: the wrapper's child.
        func pid() async -> pid_t? {
            var pid: pid_t?
            _ = await eventually(timeout: .seconds(10)) {
                pid = wrapper.childPIDs.first
                return pid != nil
            }
            return pid
        }
    }

    /// Issue 11: "a worker process started under faketime an hour ahead or behind neither steals nor
    /// loses leases." Leases are 12 s (heartbeats every 2 s, rescue every 5 s) and tasks run 6 to
    /// 7 s, so every task's lease is renewed, and looked at by the rescuer, more than once. The
    /// process an hour ahead leads, so its maintenance is what would rescue live leases if it judged
    /// them by its own clock; the one an hour behind would write leases that expired an hour ago.
    ///
    /// Why the lease is that long: libfaketime shifts `timerfd_settime` deadlines by its offset
    /// even on monotonic clocks (wolfcw/libfaketime#378, `--exclude-monotonic` notwithstanding), and
    /// Dispatch and NIO arm monotonic timerfds. So in the process an hour behind, a `Task.sleep`
    /// ends only when something else wakes the timer loop (another timer armed, a task finishing),
    /// and the process ahead spins a core re-arming timers that fire at once. With 3 s leases that
    /// artifact alone lost a lease in about 1 run of 5; a lease longer than a task plus a heartbeat
    /// absorbs it, while a lease judged by a skewed clock is still an hour off and rescued at once.
    @Test func workersAnHourAheadAndBehindNeitherStealNorLoseLeases() async throws {
        let database = try postgresDatabase("fault")
        guard let faketime = try faketime() else { return }
        // The wrapper really shifts the clock here (a missing libfaketime would leave it alone).
        for (offset, hours) in [("+1h", 1.0), ("-1h", -1.0)] {
            let (status, output, error) = try await ChildProcess(executable: faketime, ["-m", "--exclude-monotonic", "-f", offset, "/bin/date", "+%s"]).finish()
            let skew = (Double(output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) - Date().timeIntervalSince1970
            #expect(status == 0 && abs(skew - hours * 3600) < 60, "faketime \(offset) date: \(output) \(error)")
        }
        let arguments = ["worker", "--database", database, "--concurrency", "2", "--lease", "12", "--log-level", "info"]
        // The worker an hour ahead starts alone, so that it is elected; the front, which takes its
        // turn at leading too, starts after.
        let ahead = try SkewedWorker(faketime, "+1h", arguments)
        defer { ahead.wrapper.kill9() }
        let aheadPID = try #require(await ahead.pid(), "\(ahead.wrapper.errorOutput())")
        #expect(await eventually { await postgresLeaderElected(database) }, "\(ahead.wrapper.errorOutput())")
        let (serve, client) = try await front(database)
        defer { serve.kill9() }
        func leader() async -> Int64? { await liveWorkers(client).first { $0["leader"] == true }?["pid"]?.intValue }
        #expect(await eventually { await leader() == Int64(aheadPID) }, "\(ahead.wrapper.errorOutput())")
        let behind = try SkewedWorker(faketime, "-1h", arguments)
        defer { behind.wrapper.kill9() }
        let behindPID = try #require(await behind.pid())
        let normal = try ChildProcess("sluice", arguments)
        defer { normal.kill9() }
        #expect(await eventually { await liveWorkers(client).filter { $0["this_server"] != true }.count == 3 }, "\(behind.wrapper.errorOutput())")

        // Each process reports the start time its own clock gave it: the skew is real in sluice itself.
        let workers = await liveWorkers(client)
        for (pid, hours) in [(aheadPID, 1.0), (behindPID, -1.0), (normal.pid, 0.0)] {
            let worker = workers.first { $0["pid"]?.intValue == Int64(pid) }
            let skew = worker.flatMap { Self.parseTime($0["started_at"]?.stringValue ?? "") }.map { $0.timeIntervalSinceNow }
            #expect(skew.map { abs($0 - hours * 3600) < 120 } == true, "\(hours) h: \(String(describing: worker))")
        }

        // A daily slot half an hour from now: the leader, an hour ahead by its own clock, would think
        // it past and fire it (misfire "latest") if it judged slots by that clock and not the database's.
        let slot = Date().addingTimeInterval(1800)
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        let (hour, minute) = (utc.component(.hour, from: slot), utc.component(.minute, from: slot))
        _ = try await client.send("POST", "/v1/schedules", body: ["name": "not-yet", "cron": .string("\(minute) \(hour) * * *"),
                                                                  "misfire": "latest", "task": ["kind": "echo", "queue": "not-yet"]])

        let body: JSONValue = .array((0..<12).map { n in ["kind": "sleep", "args": ["seconds": .double(6 + Double(n % 3) * 0.5), "n": .int(Int64(n))]] })
        let created = try await client.send("POST", "/v1/tasks/batch", body: body).body["tasks"]
        guard case .array(let list)? = created else { Issue.record("no tasks in \(String(describing: created))"); return }
        let ids = list.compactMap { $0["id"]?.stringValue }
        #expect(ids.count == 12)
        var ranOn: [Int64: Int] = [:]
        for id in ids {
            guard let done = await succeeded(id, on: client) else { continue }
            // Claimed once and never rescued: no lease was stolen or lost.
            #expect(done["attempt"] == 1 && done["attempt_errors"] == [], "\(done)")
            if let worker = done["worker"]?.stringValue, let pid = worker.split(separator: ":").dropFirst().first.flatMap({ Int64($0) }) {
                ranOn[pid, default: 0] += 1
            }
        }
        // Both skewed processes claimed and completed tasks; the one ahead led throughout.
        #expect((ranOn[Int64(aheadPID)] ?? 0) > 0 && (ranOn[Int64(behindPID)] ?? 0) > 0 && (ranOn[Int64(normal.pid)] ?? 0) > 0, "tasks per pid: \(ranOn)")
        #expect(await leader() == Int64(aheadPID))
        // Many scheduler passes of the skewed leader later, the slot half an hour away has not fired.
        let early = try await client.send("GET", "/v1/tasks", query: ["queue": "not-yet"]).body["tasks"]
        #expect(early == [], "a slot fired by the leader's clock, an hour early: \(String(describing: early))")
        let counts = try await client.send("GET", "/v1/queues").body["durable"]?[0]?["counts"]
        #expect(counts?["succeeded"] == 12 && counts?["queued"] == 0 && counts?["running"] == 0, "\(String(describing: counts))")
        for log in [ahead.wrapper.errorOutput(), behind.wrapper.errorOutput(), normal.errorOutput()] {
            #expect(!log.contains("rescued") && !log.contains("no longer leader") && !log.contains("stale outcome"), "\(log)")
        }
        print("clock-skew test: tasks per worker pid \(ranOn) (ahead \(aheadPID), behind \(behindPID), normal \(normal.pid))")

        // A clean stop of each worker itself (the wrapper passes on its exit status).
        for (process, pid) in [(ahead.wrapper, aheadPID), (behind.wrapper, behindPID), (normal, normal.pid)] {
            kill(pid, SIGTERM)
            #expect(await process.wait(timeout: .seconds(30)) == 0, "\(process.errorOutput().suffix(2000))")
        }
        serve.signal(SIGTERM)
        #expect(await serve.wait(timeout: .seconds(30)) == 0)
    }
}
