import Foundation
import SluiceCore
import SluiceSQLite
import SluiceStore

/// The stores every conformance test runs against.
enum StoreKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case memory, sqlite
    var description: String { rawValue }
}

/// A fresh directory under the system temp dir, removed by `remove()`.
struct TempDir {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// A store of `kind` on a manual clock; `unit` fixes the backoff jitter draw.
func makeStore(_ kind: StoreKind, clock: ManualClock, unit: Double = 1.0, dir: TempDir) throws -> any TaskStore {
    switch kind {
    case .memory:
        return MemoryTaskStore(clock: clock, unitRandom: { unit })
    case .sqlite:
        var configuration = SQLiteStoreConfiguration(path: dir.path("tasks.db"))
        configuration.clock = clock
        configuration.unitRandom = { unit }
        return try SQLiteTaskStore(configuration)
    }
}

/// The directory holding the built products (`sluice`, `sluice-testkit`).
func productsDirectory() -> URL {
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
        Bundle.main.bundleURL,
        Bundle.main.bundleURL.deletingLastPathComponent(),
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug"),
    ]
    for dir in candidates where FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("sluice-testkit").path) {
        return dir
    }
    return candidates.last!
}

/// A child process started from a built product, with its standard output readable line by line.
final class ChildProcess {
    let process = Process()
    private let output = Pipe()
    private var buffer = Data()

    init(_ product: String, _ arguments: [String]) throws {
        process.executableURL = productsDirectory().appendingPathComponent(product)
        process.arguments = arguments
        process.standardOutput = output
        try process.run()
    }

    /// Reads lines until one equals `marker` (or the output ends); returns the lines before it.
    func lines(until marker: String? = nil) -> [String] {
        var lines: [String] = []
        while true {
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer = Data(buffer[(newline + 1)...])
                if line == marker { return lines }
                lines.append(line)
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return lines }
            buffer.append(chunk)
        }
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func wait() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }
}
