import Foundation
import SluiceClient
import SluiceCore
import SluiceHTTP
import SluiceTestSupport
import Testing

/// The `sluice` binary's checks of its own options and environment, run as a user runs it.
@Suite(.serialized) struct CommandLineTests {
    /// `sluice` with `arguments` and `environment` added to this process's, in `directory`.
    static func start(_ arguments: [String], environment: [String: String] = [:], in directory: String? = nil) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = productsDirectory().appendingPathComponent("sluice")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for name in ["SLUICE_TOKEN", "SLUICE_DB", "SLUICE_HOST", "SLUICE_PUBLIC_HOST"] { env[name] = nil }
        env.merge(environment) { $1 }
        process.environment = env
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        return (process, output, error)
    }

    /// Runs a command that should exit by itself; its status and standard error.
    static func run(_ arguments: [String], environment: [String: String] = [:], in directory: String) throws -> (Int32, String) {
        let (process, _, error) = try start(arguments, environment: environment, in: directory)
        let text = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    @Test(arguments: [
        (["--token", ""], [:], "--token must not be empty"),
        (["--token", "  "], [:], "--token must not be empty"),
        ([], ["SLUICE_TOKEN": ""], "SLUICE_TOKEN is set but holds no token"),
        ([], ["SLUICE_TOKEN": " , "], "SLUICE_TOKEN is set but holds no token"),
        (["--host", "127.example.com"], [:], "--host 127.example.com is not a loopback address"),
        (["--public-host", "http://x.test:80"], [:], "--public-host http://x.test:80: give a host name alone"),
    ] as [([String], [String: String], String)])
    func serveRefusesOptionsThatWouldLeaveItOpen(arguments: [String], environment: [String: String], message: String) throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (status, error) = try Self.run(["serve", "--port", "0", "--db", dir.path("x.db")] + arguments, environment: environment, in: dir.path(""))
        #expect(status == 1, "\(arguments) \(environment): exit \(status)")
        #expect(error.contains(message), "\(error)")
    }

    @Test func workerUsesSluiceDBLikeServe() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let db = dir.path("shared.db")
        let server = try LiveServer(db: db, ["--no-pool"])
        defer { server.stop() }
        // In `dir`, so that a worker ignoring SLUICE_DB would open dir/sluice.db and never see the task.
        let (worker, _, _) = try Self.start(["worker", "--concurrency", "1", "--log-level", "warning"], environment: ["SLUICE_DB": db], in: dir.path(""))
        defer {
            kill(worker.processIdentifier, SIGTERM)
            worker.waitUntilExit()
        }
        let done = try await server.client.enqueue(["kind": "echo", "args": ["n": 1]], wait: 30)
        #expect(done["state"] == "succeeded")
        #expect(!FileManager.default.fileExists(atPath: dir.path("sluice.db")))
    }
}
