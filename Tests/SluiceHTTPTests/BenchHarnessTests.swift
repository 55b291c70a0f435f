import Foundation
import SluiceTestSupport
import Testing

/// `tools/bench/run --smoke` on the debug binaries: one tiny case per scenario, peers included, so
/// that the benchmark harness cannot rot between full runs. It checks that every scenario produced
/// its figures and lost nothing; it never judges a timing.
@Suite struct BenchHarnessTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let scenarios = ["seed", "burst", "enqueue", "drain", "latency", "resources", "health", "store"]

    @Test(.timeLimit(.minutes(10))) func smokeRunCoversEveryScenario() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let log = dir.path("run.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [Self.root.appendingPathComponent("tools/bench/run").path, "--smoke",
                             "--bin", productsDirectory().path, "--out", dir.path("out")]
        process.standardOutput = FileHandle(forWritingAtPath: log)
        process.standardError = process.standardOutput
        try process.run()
        let deadline = ContinuousClock.now + .seconds(480)
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        if process.isRunning { process.terminate(); process.waitUntilExit() }  // the driver stops what it started on SIGTERM
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "tools/bench/run --smoke failed:\n\(output.suffix(3000))")

        for name in Self.scenarios {
            let path = dir.path("out/bench/results/\(name).json")
            #expect(FileManager.default.fileExists(atPath: path), "no result for \(name)")
        }
        let report = (try? String(contentsOfFile: dir.path("out/BENCHMARKS.md"), encoding: .utf8)) ?? ""
        for title in ["The seed, reproduced", "Blocking burst", "Enqueue throughput", "Drain throughput", "Latency",
                      "Resources", "Event-loop health", "Store micro-benchmark"] {
            #expect(report.contains(title), "BENCHMARKS.md lacks \(title)")
        }
        // Every request of the seed answered 2xx, for Sluice and for the peer.
        let seed = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.path("out/bench/results/seed.json")))) as? [String: Any]
        let data = seed?["data"] as? [String: Any]
        let sluiceRuns = (data?["sluice"] as? [String: [[String: Any]]])?.values.flatMap { $0 } ?? []
        #expect(!sluiceRuns.isEmpty)
        for run in sluiceRuns {
            #expect(run["failed"] as? Int == 0)
            #expect(run["complete"] as? Int == data?["n"] as? Int)
        }
        #expect((data?["fastapi"] as? [String: Any])?.count == 2, "plain and tuned FastAPI both ran")
    }
}
