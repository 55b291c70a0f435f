import Foundation
import Synchronization

/// A PgBouncer of one test's own in transaction mode (`tools/dev/pgbouncer`), in front of the
/// PostgreSQL server at `server`. Stopped and removed by `stop()`, or at the latest on deinit.
public final class PgBouncer: Sendable {
    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/DB`: the server's database, through PgBouncer.
    public let url: String
    public let directory: String
    private let stopped = Atomic<Bool>(false)

    static let tool = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("tools/dev/pgbouncer").path

    /// Whether PgBouncer is installed (Debian: pgbouncer).
    public static var installed: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/sbin/pgbouncer")
            || (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/pgbouncer") }
    }

    public init(server: String) throws {
        let (status, output, error) = try ChildProcess(executable: Self.tool, ["start", server]).finish(timeout: .seconds(30))
        func value(_ name: String) -> String? {
            output.split(separator: "\n").first { $0.hasPrefix("export \(name)=") }.map { String($0.dropFirst("export \(name)=".count)) }
        }
        guard status == 0, let url = value("SLUICE_TEST_PGBOUNCER_URL"), let directory = value("SLUICE_TEST_PGBOUNCER_DIR") else {
            throw PostgresServer.Failure(description: "tools/dev/pgbouncer start exited \(status): \(error)")
        }
        self.url = url
        self.directory = directory
    }

    deinit { stop() }

    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        _ = try? ChildProcess(executable: Self.tool, ["stop", directory]).finish(timeout: .seconds(30))
    }
}
