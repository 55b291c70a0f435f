import Foundation
import Synchronization

/// A child process started from a built product (or any executable) with posix_spawn. Its standard
/// output and error go to files of its own, never to pipes: a child must not stall because nobody
/// drains a pipe, whether ours or the test runner's (a CI run once hung for good behind a child's
/// blocked write). Every wait has a bound, so a wedged child fails its test instead of the run.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    private let directory: String
    /// Whether the child leads a process group of its own, which `kill9()` and deinit kill whole.
    private let ownGroup: Bool
    /// The exit status once reaped; nil while running.
    private let status = Mutex<Int32?>(nil)
    /// How far `line(startingWith:)` and `lines(until:)` have read standard output.
    private let consumed = Mutex<Int>(0)

    /// Starts `product` from the build's products directory.
    public convenience init(_ product: String, _ arguments: [String], environment: [String: String] = [:],
                            removing: [String] = [], in workingDirectory: String? = nil, input: String? = nil) throws {
        try self.init(executable: productsDirectory().appendingPathComponent(product).path, arguments,
                      environment: environment, removing: removing, in: workingDirectory, input: input)
    }

    /// Starts `executable` with this process's environment, minus `removing`, plus `environment`;
    /// `input` (if any) is its standard input, else /dev/null. With `ownGroup`, the child leads a
    /// process group of its own and `kill9()` kills the whole group: for wrappers that fork the
    /// program they run instead of exec'ing it (faketime), whose program would outlive them.
    public init(executable: String, _ arguments: [String], environment: [String: String] = [:],
                removing: [String] = [], in workingDirectory: String? = nil, input: String? = nil, ownGroup: Bool = false) throws {
        self.ownGroup = ownGroup
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-child-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let stdin = directory + "/stdin"
        try Data((input ?? "").utf8).write(to: URL(fileURLWithPath: stdin))

        // posix_spawn has no portable chdir; a shell that changes directory and execs keeps the pid.
        var argv = [executable] + arguments
        var path = executable
        if let workingDirectory {
            argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", workingDirectory] + argv
            path = "/bin/sh"
        }
        var env = ProcessInfo.processInfo.environment
        for name in removing { env[name] = nil }
        env.merge(environment) { $1 }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, directory + "/stdout", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, directory + "/stderr", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (cArgv + cEnv).forEach { free($0) } }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        if ownGroup {
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        var pid: pid_t = 0
        let failed = posix_spawn(&pid, path, &actions, &attributes, cArgv, cEnv)
        guard failed == 0 else {
            try? FileManager.default.removeItem(atPath: directory)
            throw POSIXError(POSIXErrorCode(rawValue: failed) ?? .EIO)
        }
        self.pid = pid
    }

    /// A test that fails before stopping its child must not leave it behind.
    deinit {
        if isRunning || ownGroup { kill9() }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Reaps the child if it has exited; whether it still runs.
    public var isRunning: Bool {
        status.withLock { status in
            guard status == nil else { return false }
            var raw: Int32 = 0
            let reaped = waitpid(pid, &raw, WNOHANG)
            if reaped == pid { status = Self.decode(raw) } else if reaped == -1 && errno != EINTR { status = -1 }
            return status == nil
        }
    }

    /// The exit status, or 128 + the signal that ended it, once it has exited.
    public var exitStatus: Int32? {
        _ = isRunning
        return status.withLock { $0 }
    }

    public func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    public func kill9() {
        if ownGroup { kill(-pid, SIGKILL) }  // the group's id is the child's pid; harmless once it is empty
        signal(SIGKILL)
        _ = wait()
    }

    /// The processes the child has started and not yet reaped (Linux: /proc/PID/task/PID/children).
    public var childPIDs: [pid_t] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { pid_t($0) }
    }

    /// Waits up to `timeout` for the child to exit; a child still running then is SIGKILLed, so the
    /// answer is 128 + 9 unless it exited by itself. For synchronous callers (deinit, `kill9()`).
    @discardableResult
    public func wait(timeout: Duration = .seconds(60)) -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while isRunning && ContinuousClock.now < deadline { usleep(5_000) }
        return reapOrKill()
    }

    /// The same wait for async tests: it sleeps between looks instead of holding one of Swift's
    /// cooperative threads (as many as cores, two here, shared by every suite running at once).
    /// Swift prefers this overload in async code, so a test cannot block a thread by mistake.
    @discardableResult
    public func wait(timeout: Duration = .seconds(60)) async -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while isRunning && ContinuousClock.now < deadline { await pause() }
        return reapOrKill()
    }

    /// The exit status once the child has exited; a child still running is SIGKILLed and reaped.
    private func reapOrKill() -> Int32 {
        if isRunning {
            kill(pid, SIGKILL)
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
            status.withLock { $0 = Self.decode(raw) }
        }
        return exitStatus ?? -1
    }

    /// Five milliseconds between looks, off the cooperative thread. A cancelled task's sleep ends
    /// at once, so it then waits on the thread instead of spinning until its deadline.
    private func pause() async {
        do { try await Task.sleep(for: .milliseconds(5)) } catch { usleep(5_000) }
    }

    /// Everything the child has written to standard output so far.
    public func output() -> String { read("stdout") }

    /// Everything the child has written to standard error so far.
    public func errorOutput() -> String { read("stderr") }

    /// Reads lines until one starts with `prefix`; returns it (nil if the child exits or `timeout`
    /// passes first).
    public func line(startingWith prefix: String, timeout: Duration = .seconds(30)) async -> String? {
        var found: String?
        _ = await readLines(timeout: timeout) { line in
            if line.hasPrefix(prefix) { found = line }
            return found != nil
        }
        return found
    }

    /// Reads lines until one equals `marker` (or the child exits, or `timeout` passes); returns the
    /// lines before it.
    public func lines(until marker: String? = nil, timeout: Duration = .seconds(30)) async -> [String] {
        var lines: [String] = []
        _ = await readLines(timeout: timeout) { line in
            if line == marker { return true }
            lines.append(line)
            return false
        }
        return lines
    }

    /// Feeds each complete unread line to `stop` until it answers true; whether it did.
    private func readLines(timeout: Duration, _ stop: (String) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let exited = !isRunning  // before reading, so that nothing written before the exit is missed
            let bytes = Array(read("stdout").utf8)
            var offset = consumed.withLock { $0 }
            while let newline = bytes[offset...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: bytes[offset..<newline], as: UTF8.self)
                offset = newline + 1
                consumed.withLock { $0 = offset }
                if stop(line) { return true }
            }
            if exited || ContinuousClock.now >= deadline { return false }
            await pause()
        }
    }

    private func read(_ name: String) -> String {
        String(decoding: FileManager.default.contents(atPath: directory + "/" + name) ?? Data(), as: UTF8.self)
    }

    private static func decode(_ raw: Int32) -> Int32 {
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import.
        raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    }

    /// For a command that should exit by itself within `timeout`: its status, output and error.
    /// For synchronous callers (`PostgresServer`, which tests run on a thread of their own).
    public func finish(timeout: Duration = .seconds(60)) -> (status: Int32, output: String, error: String) {
        let status = wait(timeout: timeout)
        return (status, output(), errorOutput())
    }

    /// The same for async tests, without holding a cooperative thread.
    public func finish(timeout: Duration = .seconds(60)) async -> (status: Int32, output: String, error: String) {
        let status = await wait(timeout: timeout)
        return (status, output(), errorOutput())
    }
}
