import Foundation
import Synchronization

/// A PostgreSQL server of one test's own (`tools/dev/postgres`), for tests that restart or stop
/// it: the server SLUICE_TEST_DATABASE_URL names is shared by tests that run at the same time, and
/// a restart there would fail theirs. Stopped and removed by `stop()`, or at the latest on deinit.
public final class PostgresServer: Sendable {
    /// `postgres://sluice:PASSWORD@127.0.0.1:PORT/postgres`
    public let url: String
    /// The cluster's directory (data, socket and server log).
    public let directory: String
    private let stopped = Atomic<Bool>(false)

    /// What went wrong with the tool, in its own words.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The repository's `tools/dev/postgres`.
    static let tool = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("tools/dev/postgres").path

    /// Makes a cluster and starts it (initdb and start take a few seconds).
    public init() throws {
        let (status, output, error) = try ChildProcess(executable: Self.tool, ["start"]).finish(timeout: .seconds(120))
        func value(_ name: String) -> String? {
            output.split(separator: "\n").first { $0.hasPrefix("export \(name)=") }.map { String($0.dropFirst("export \(name)=".count)) }
        }
        guard status == 0, let url = value("SLUICE_TEST_DATABASE_URL"), let directory = value("SLUICE_TEST_POSTGRES_DIR") else {
            throw Failure(description: "tools/dev/postgres start exited \(status): \(error)")
        }
        self.url = url
        self.directory = directory
    }

    deinit { stop() }

    /// `pg_ctl restart -m fast`: every session is cut (57P01), as in a real restart, and the server
    /// comes back on the same port; returns once it accepts connections again.
    public func restart() throws {
        let (status, _, error) = try ChildProcess(executable: Self.tool, ["restart", directory]).finish(timeout: .seconds(90))
        guard status == 0 else { throw Failure(description: "tools/dev/postgres restart exited \(status): \(error)") }
    }

    /// Runs `sql` with psql and returns its unaligned output (`-At`), or throws with psql's error.
    public func query(_ sql: String) throws -> String {
        let (status, output, error) = try ChildProcess(executable: try Self.psql(), [url, "-X", "-At", "-c", sql]).finish(timeout: .seconds(30))
        guard status == 0 else { throw Failure(description: "psql exited \(status): \(error)") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops the server and removes its directory; idempotent.
    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        _ = try? ChildProcess(executable: Self.tool, ["stop", directory]).finish(timeout: .seconds(60))
    }

    /// psql from PATH, or from the newest /usr/lib/postgresql/*/bin (where Debian keeps the server's).
    static func psql() throws -> String {
        let fileManager = FileManager.default
        let onPath = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map { "\($0)/psql" }
        let versions = ((try? fileManager.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? [])
            .sorted { $0.compare($1, options: .numeric) == .orderedDescending }.map { "/usr/lib/postgresql/\($0)/bin/psql" }
        guard let path = (onPath + versions).first(where: fileManager.isExecutableFile) else {
            throw Failure(description: "no psql on PATH or in /usr/lib/postgresql/*/bin (apt-get install postgresql-client)")
        }
        return path
    }
}
