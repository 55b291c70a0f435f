import Foundation

/// A fresh directory under the system temp dir, removed by `remove()`.
public struct TempDir: Sendable {
    public let url: URL
    public init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    public func remove() { try? FileManager.default.removeItem(at: url) }
}

/// The directory holding the built products (`sluice`, `sluice-testkit`).
public func productsDirectory() -> URL {
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
        Bundle.main.bundleURL,
        Bundle.main.bundleURL.deletingLastPathComponent(),
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug"),
    ]
    for dir in candidates where FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("sluice").path) {
        return dir
    }
    return candidates.last!
}

/// A child process started from a built product, with its standard output readable line by line.
public final class ChildProcess: @unchecked Sendable {
    public let process = Process()
    private let output = Pipe()
    private var buffer = Data()

    private let error = Pipe()

    public init(_ product: String, _ arguments: [String], captureError: Bool = false) throws {
        process.executableURL = productsDirectory().appendingPathComponent(product)
        process.arguments = arguments
        process.standardOutput = output
        if captureError { process.standardError = error }
        try process.run()
    }

    /// Everything the process wrote to standard error (when captured), once it has exited.
    public func errorOutput() -> String {
        String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    /// Reads lines until one equals `marker` (or the output ends); returns the lines before it.
    public func lines(until marker: String? = nil) -> [String] {
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

    /// Reads lines until one starts with `prefix`; returns it (nil if the output ends first).
    public func line(startingWith prefix: String) -> String? {
        while true {
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer = Data(buffer[(newline + 1)...])
                if line.hasPrefix(prefix) { return line }
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }

    /// A test that fails before stopping its child must not leave it behind: it would hold the test
    /// runner's output open, and the run would never end.
    deinit {
        if process.isRunning { kill9() }
    }

    public func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    public func wait() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held. For waiting on
/// another thread or process, never for letting time pass.
public func eventually(timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}
