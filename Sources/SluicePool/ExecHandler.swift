import Foundation
import SluiceCore
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// The `exec` kind: `{"argv": ["/path/prog", "arg"…], "stdin": "…", "env": {"K": "V"}}` runs a
/// program as a child process, only when its path was allowed at start-up (`--allow-exec PATH`).
/// No shell: argv goes to the program as is. The environment holds only what `env` gives. Output
/// over the cap fails the attempt. On timeout or cancel the child's whole process group is killed.
struct ExecHandler {
    /// Bytes kept of standard output and of standard error each.
    static let outputCap = 1 << 20

    let allowed: Set<String>

    var handler: Handler {
        let allowed = allowed
        return .async { context in try await ExecHandler.run(context, allowed: allowed) }
    }

    static func run(_ context: TaskContext, allowed: Set<String>) async throws -> JSONValue {
        guard case .array(let items)? = context.args["argv"], !items.isEmpty,
              let argv = Optional(items.compactMap(\.stringValue)), argv.count == items.count else {
            throw TaskFailure("args.argv must be a non-empty array of strings", disposition: .discard)
        }
        let program = argv[0]
        guard allowed.contains(program) else {
            let list = allowed.isEmpty ? "none (start the process with --allow-exec PATH)" : allowed.sorted().joined(separator: ", ")
            throw TaskFailure("exec: \(program) is not allowed; allowed programs: \(list)", disposition: .discard)
        }
        var environment: [Environment.Key: String] = [:]
        if let env = context.args["env"] {
            guard let members = env.objectValue else { throw TaskFailure("args.env must be an object of strings", disposition: .discard) }
            for (key, value) in members {
                guard let text = value.stringValue else { throw TaskFailure("args.env.\(key) must be a string", disposition: .discard) }
                environment[Environment.Key(stringLiteral: key)] = text
            }
        }
        // Closed here, not by Subprocess: it would close it only once it had made its pipes, and a
        // run that fails before then (out of files) would leak one descriptor a task.
        let stdin = try stdinFile(context.args["stdin"]?.stringValue ?? "")
        defer { try? stdin.close() }
        var options = PlatformOptions()
        // Its own process group, so that a timeout or cancel kills what the program started too.
        options.processGroupID = 0
        options.teardownSequence = [.send(signal: .kill, toProcessGroup: true, allowedDurationToNextStep: .milliseconds(100))]
        let result: ExecutionResult<Void, StringOutput<UTF8>, StringOutput<UTF8>>
        do {
            result = try await Subprocess.run(
                .path(FilePath(program)), arguments: Arguments(Array(argv.dropFirst())),
                environment: .custom(environment), platformOptions: options,
                input: .fileDescriptor(stdin, closeAfterSpawningProcess: false), output: .string(limit: outputCap), error: .string(limit: outputCap))
        } catch is CancellationError {
            throw TaskFailure(context.cancellation.reason ?? "cancelled", disposition: .cancel)
        } catch {
            if Task.isCancelled { throw TaskFailure(context.cancellation.reason ?? "cancelled", disposition: .cancel) }
            throw TaskFailure("exec: \(program): \(error)", disposition: startFailure(error))
        }
        let status: JSONValue
        let ok: Bool
        switch result.terminationStatus {
        case .exited(let code):
            status = ["exit": .int(Int64(code))]
            ok = code == 0
        case .signaled(let signal):
            status = ["signal": .int(Int64(signal))]
            ok = false
        }
        // Output is text; a NUL in it (which a result may not hold) is shown as U+FFFD.
        let output: JSONValue = ["status": status, "stdout": .string(result.standardOutput.withoutNUL),
                                 "stderr": .string(result.standardError.withoutNUL)]
        if Task.isCancelled || context.isCancelled {
            throw TaskFailure(context.cancellation.reason ?? "cancelled", disposition: .cancel)
        }
        guard ok else { throw TaskFailure("exec: \(program) ended with \(status.jsonText()); stderr: \((result.standardError).suffix(500))") }
        return output
    }

    /// A program that cannot be run (missing, not executable, not permitted) fails its task at
    /// once, and so does output past the cap; anything else may pass (out of processes, files or
    /// memory, a binary being replaced by a deploy: ETXTBSY): the attempt is retried.
    static func startFailure(_ error: any Error) -> TaskFailure.Disposition {
        guard let error = error as? SubprocessError else { return .retry }
        if error.code == .executableNotFound || error.code == .outputLimitExceeded { return .discard }
        let permanent: Set<Int32> = [ENOENT, EACCES, ENOEXEC, ENOTDIR, ELOOP, ENAMETOOLONG, EISDIR, EPERM]
        if let errno = error.underlyingError, permanent.contains(errno.rawValue) { return .discard }
        return .retry
    }

    /// `text` in a file in memory, read from its start, for the child's standard input. Not a pipe:
    /// swift-subprocess 1.0.2 ends the whole process (a fatal error) when a child exits without
    /// reading the pipe it writes (swiftlang/swift-subprocess#367), and a task would then take down
    /// every worker that ran it. A file is read, or not, without anyone waiting on the reader.
    static func stdinFile(_ text: String) throws -> FileDescriptor {
        let fd = memoryFile()
        guard fd >= 0 else { throw TaskFailure("exec: no file for stdin: \(String(cString: strerror(errno)))") }
        let file = FileDescriptor(rawValue: fd)
        do {
            _ = try file.writeAll(Array(text.utf8))
            _ = try file.seek(offset: 0, from: FileDescriptor.SeekOrigin.start)
        } catch {
            try? file.close()
            throw TaskFailure("exec: writing stdin to a memory file: \(error)")
        }
        return file
    }

    /// A file descriptor of an anonymous file: `memfd_create` (looked up: Swift's Glibc module does
    /// not declare it), else an unlinked temporary file. -1 on failure, with `errno` set.
    private static func memoryFile() -> Int32 {
        typealias MemfdCreate = @convention(c) (UnsafePointer<CChar>, UInt32) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "memfd_create") {  // RTLD_DEFAULT
            let fd = unsafeBitCast(symbol, to: MemfdCreate.self)("sluice-exec-stdin", 1)  // MFD_CLOEXEC
            if fd >= 0 { return fd }
        }
        guard let stream = tmpfile() else { return -1 }
        defer { fclose(stream) }
        return fcntl(fileno(stream), F_DUPFD_CLOEXEC, 0)
    }
}
