import Foundation
import SluiceClient
import SluiceCore
import SluiceHTTP
import SluiceTestSupport
import Testing

/// The `sluice` binary's checks of its own options and environment, run as a user runs it.
@Suite(.serialized, .timeLimit(.minutes(4))) struct CommandLineTests {
    /// `sluice` with `arguments` and `environment` added to this process's (less any SLUICE_
    /// settings of the test run's own), in `directory`.
    static func start(_ arguments: [String], environment: [String: String] = [:], in directory: String? = nil) throws -> ChildProcess {
        try ChildProcess("sluice", arguments, environment: environment,
                         removing: ["SLUICE_TOKEN", "SLUICE_DB", "SLUICE_HOST", "SLUICE_PUBLIC_HOST"], in: directory)
    }

    /// Runs a command that should exit by itself; its status and standard error.
    static func run(_ arguments: [String], environment: [String: String] = [:], in directory: String) async throws -> (Int32, String) {
        let (status, _, error) = try await start(arguments, environment: environment, in: directory).finish()
        return (status, error)
    }

    @Test(arguments: [
        (["--token", ""], [:], "--token must not be empty"),
        (["--token", "  "], [:], "--token must not be empty"),
        ([], ["SLUICE_TOKEN": ""], "SLUICE_TOKEN is set but holds no token"),
        ([], ["SLUICE_TOKEN": " , "], "SLUICE_TOKEN is set but holds no token"),
        (["--host", "127.example.com"], [:], "--host 127.example.com is not a loopback address"),
        (["--public-host", "http://x.test:80"], [:], "--public-host http://x.test:80: give a host name alone"),
        (["--memory-limit", "0"], [:], "--memory-limit must be at least 1"),
        ([], ["SLUICE_SYNC": "sometimes"], "SLUICE_SYNC=sometimes: expected full or normal"),
        (["--host", "[::1]", "--token", "t"], [:], "--host [::1]: not an address to listen on"),
        (["--no-pool", "--concurrency", "5"], [:], "--no-pool runs no pool"),
        (["--no-pool", "--queues", "mail"], [:], "--no-pool runs no pool, so --queues would do nothing"),
        (["--no-pool", "--prefetch", "5"], [:], "--no-pool runs no pool, so --prefetch would do nothing"),
        (["--no-pool", "--allow-exec", "/bin/true"], [:], "--no-pool runs no pool, so --allow-exec would do nothing"),
    ] as [([String], [String: String], String)])
    func serveRefusesOptionsThatWouldLeaveItOpen(arguments: [String], environment: [String: String], message: String) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (status, error) = try await Self.run(["serve", "--port", "0", "--db", dir.path("x.db")] + arguments, environment: environment, in: dir.path(""))
        #expect(status == 1, "\(arguments) \(environment): exit \(status)")
        #expect(error.contains(message), "\(error)")
    }

    /// A flag wins over its variable for tokens too: `--token new` with an old SLUICE_TOKEN still
    /// set accepts only the new one (they used to be added together).
    @Test func aTokenFlagReplacesTheVariable() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let serve = try Self.start(["serve", "--port", "0", "--db", dir.path("t.db"), "--token", "new", "--no-pool"],
                                   environment: ["SLUICE_TOKEN": "old"], in: dir.path(""))
        defer { serve.kill9() }
        let line = try #require(await serve.line(startingWith: "sluice: listening on "))
        let url = try #require(line.split(separator: " ").dropFirst(3).first.flatMap { URL(string: String($0)) })
        #expect(try await SluiceClient(baseURL: url, token: "new").send("GET", "/v1/pools").status == 200)
        await #expect { try await SluiceClient(baseURL: url, token: "old").send("GET", "/v1/pools") } throws: {
            ($0 as? SluiceClient.Failure)?.status == 401
        }
    }

    @Test(arguments: [["--prefetch=-1"], ["--prefetch", "10001"]])
    func workerRefusesAPrefetchOutOfRange(arguments: [String]) async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (status, error) = try await Self.run(["worker", "--db", dir.path("x.db")] + arguments, in: dir.path(""))
        #expect(status == 1, "\(arguments): exit \(status)")
        #expect(error.contains("--prefetch must be from 0 to 10000"), "\(error)")
    }

    /// A serve or worker that cannot have its port says so, naming the option, and claims nothing
    /// first: its pools start only once the listener is bound (a failed start used to exit holding
    /// tasks, spending their attempts and leaving them to their leases).
    @Test func aPortInUseIsRefusedBeforeAnyTaskIsClaimed() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let db = dir.path("busy.db")
        let server = try await LiveServer(db: db, ["--no-pool"])
        let port = try #require(server.client.baseURL.port)
        for _ in 0..<5 { _ = try await server.client.enqueue(["kind": "sleep", "queue": "q", "args": ["seconds": 5]]) }
        for (arguments, option) in [(["serve", "--db", db, "--queues", "q", "--port", "\(port)", "--grace", "1"], "--port"),
                                    (["worker", "--db", db, "--queues", "q", "--metrics-port", "\(port)", "--grace", "1"], "--metrics-port")] {
            let (status, error) = try await Self.run(arguments, in: dir.path(""))
            #expect(status == 1 && error.contains("\(option) \(port): 127.0.0.1:\(port) is in use"), "\(arguments): \(error)")
            #expect(error.split(separator: "\n").filter { $0.hasPrefix("error:") }.count == 1, "\(error)")
        }
        let tasks = try await server.client.send("GET", "/v1/tasks", query: ["queue": "q"]).body["tasks"]?.arrayValue ?? []
        #expect(tasks.count == 5 && tasks.allSatisfy { $0["state"] == "queued" && $0["attempt"] == 0 }, "\(tasks)")
        await server.stop()
    }

    /// A bad value from the environment is named as the variable it came from, not as a flag the
    /// user never typed.
    @Test func badEnvironmentValuesNameTheirVariable() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        for (arguments, environment, message) in [
            (["serve", "--db", dir.path("x.db")], ["SLUICE_PORT": "abc"], "SLUICE_PORT=abc: expected 0 to 65535"),
            (["tasks"], ["SLUICE_URL": "ftp://x"], "SLUICE_URL=ftp://x: expected an address"),
            (["tasks", "--url", "ftp://y"], ["SLUICE_URL": "ftp://x"], "--url ftp://y: expected an address"),
        ] {
            let (status, error) = try await Self.run(arguments, environment: environment, in: dir.path(""))
            #expect(status == 1 && error.contains(message), "\(arguments) \(environment): \(error)")
        }
    }

    /// A start refused for a bad flag or variable creates no database and migrates none: every
    /// setting is checked before the store opens (an old file upgraded by a start that then
    /// refused could no longer be read by the binary that made it).
    @Test func aRefusedStartLeavesNoDatabaseBehind() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let db = dir.path("new.db")
        for (arguments, environment, message) in [
            (["serve", "--db", db, "--port", "99999"], [:], "--port 99999: expected 0 to 65535"),
            (["serve", "--db", db], ["SLUICE_CONCURRENCY": "abc"], "SLUICE_CONCURRENCY=abc: expected a whole number"),
            (["serve", "--db", db, "--max-body", "10"], [:], "--max-body must be at least 1024 bytes"),
            (["serve", "--db", db, "--no-pool", "--concurrency", "4"], [:], "--no-pool runs no pool"),
            (["serve", "--db", db, "--allow-exec", "bin/true"], [:], "--allow-exec bin/true: give an absolute path"),
            (["worker", "--db", db, "--metrics-port", "70000"], [:], "--metrics-port 70000: expected 0 to 65535"),
            (["worker", "--db", db, "--allow-exec", "true"], [:], "--allow-exec true: give an absolute path"),
        ] as [([String], [String: String], String)] {
            let (status, error) = try await Self.run(arguments, environment: environment, in: dir.path(""))
            #expect(status == 1 && error.contains(message), "\(arguments) \(environment): \(error)")
            #expect(!FileManager.default.fileExists(atPath: db), "\(arguments) created the database")
        }
    }

    /// A command line that cannot be read is refused like any other error: one line starting
    /// `error:` naming what was wrong and where help is, exit 64; help itself still exits 0.
    @Test func anUnreadableCommandLineIsOneErrorLine() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        for (arguments, message) in [
            (["enqueue", "echo", "--delay", "abc"], "error: The value 'abc' is invalid for '--delay <delay>' (see `sluice enqueue --help`)"),
            (["pools", "set", "default", "abc"], "error: The value 'abc' is invalid for '<concurrency>' (see `sluice pools set --help`)"),
            (["nosuch"], "error: Unexpected argument 'nosuch' (see `sluice --help`)"),
        ] {
            let (status, error) = try await Self.run(arguments, environment: [:], in: dir.path(""))
            #expect(status == 64 && error == message + "\n", "\(arguments): \(status) \(error)")
        }
        let (status, error) = try await Self.run(["enqueue", "--help"], environment: [:], in: dir.path(""))
        #expect(status == 0 && error.isEmpty)
    }

    /// Processes opening a new SQLite file at the same instant (a deploy starting `serve` and
    /// `worker` together) all succeed: one migrates, the others wait for it. Before, about one
    /// round in five failed with "database is locked" on the switch to WAL, or took the file being
    /// migrated for another program's.
    @Test func processesOpeningANewFileAtOnceAllSucceed() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        for round in 0..<12 {
            let db = dir.path("race-\(round).db")
            let children = try (0..<3).map { _ in try ChildProcess("sluice", ["migrate", "--db", db]) }
            for child in children {
                let status = await child.wait()
                #expect(status == 0, "round \(round): \(child.errorOutput())")
            }
        }
    }

    @Test func workerUsesSluiceDBLikeServe() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let db = dir.path("shared.db")
        let server = try await LiveServer(db: db, ["--no-pool"])
        defer { server.stop() }
        // In `dir`, so that a worker ignoring SLUICE_DB would open dir/sluice.db and never see the task.
        let worker = try Self.start(["worker", "--concurrency", "1", "--log-level", "warning"], environment: ["SLUICE_DB": db], in: dir.path(""))
        defer {
            worker.signal(SIGTERM)
            worker.wait()
        }
        let done = try await server.client.enqueue(["kind": "echo", "args": ["n": 1]], wait: 30)
        #expect(done["state"] == "succeeded")
        #expect(!FileManager.default.fileExists(atPath: dir.path("sluice.db")))
    }
}
