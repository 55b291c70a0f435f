import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import SluiceCore
import SluiceSQLite

/// Opens the SQLite store named on the command line, with messages that name the flag. A write
/// waits for another process's lock at most a third of the lease (10 s at most), so that a
/// heartbeat stuck behind a lock can never outlast the lease it renews.
func openStore(_ path: String, sync: GivenSetting, lease: Duration) throws -> SQLiteTaskStore {
    guard let synchronous = SQLiteStoreConfiguration.Synchronous(rawValue: sync.text) else {
        throw SluiceError(.invalidArgument, "\(sync.spelled): expected full or normal", field: "sync")
    }
    try checkDatabasePath(path)
    var configuration = SQLiteStoreConfiguration(path: path, synchronous: synchronous)
    configuration.busyTimeout = min(configuration.busyTimeout, lease / 3)
    configuration.watchOtherProcesses = true
    return try SQLiteTaskStore(configuration)
}

/// What SQLite would only call "unable to open database file", said with what to do.
func checkDatabasePath(_ path: String) throws(SluiceError) {
    var isDirectory: ObjCBool = false
    if path.isEmpty { throw SluiceError(.invalidArgument, "--db: give a file path, e.g. ./sluice.db", field: "db") }
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
        throw SluiceError(.invalidArgument, "--db \(path): is a directory; give a file in it, e.g. \(path)/sluice.db", field: "db")
    }
    let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
    if !FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) || !isDirectory.boolValue {
        throw SluiceError(.invalidArgument, "--db \(path): the directory \(parent) does not exist; create it first", field: "db")
    }
}

/// glibc gives freed memory back to the kernel once 128 KB lie free at the top of a thread's heap,
/// and faults it back in at the next allocation: with dozens of pool threads on short tasks, that
/// `madvise` and page-fault churn took a third of a draining worker's time (20,000 → 30,000 tasks/s
/// with it off; docs/BENCHMARKS.md). Up to 4 MB free at a heap's top now stays. `mallopt` is not in
/// Swift's Glibc module, so it is looked up; without it (another libc) nothing changes.
func keepFreedMemory() {
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    let trimThreshold: Int32 = -1  // M_TRIM_THRESHOLD in <malloc.h>
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }  // RTLD_DEFAULT
    _ = unsafeBitCast(symbol, to: Mallopt.self)(trimThreshold, 4 << 20)
}

/// Sets up logging to standard error at `level`.
func bootstrapLogging(_ level: String) throws -> Logger {
    guard let parsed = Logger.Level(rawValue: level) else {
        throw failure("--log-level \(level): expected one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = parsed
        return handler
    }
    return Logger(label: "sluice")
}

/// Runs `services` until SIGTERM/SIGINT; a second signal exits at once.
func runServices(_ services: [any Service], logger: Logger) async throws {
    // A broken pipe is an error to handle, not a reason to die: an `exec` child that exits without
    // reading its stdin made the write of it kill `sluice worker` (which, without a listener, had
    // nothing else that ignores SIGPIPE), and the retried task then killed the next worker.
    signal(SIGPIPE, SIG_IGN)
    // Services are shut down last to first: the listener for a second signal comes first, so it
    // stays armed while the others drain.
    let group = ServiceGroup(configuration: ServiceGroupConfiguration(
        services: [.init(service: SecondSignal(logger: logger))]
            + services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger))
    try await group.run()
}

/// Runs `service` (a worker's pools) only once the listener it goes with is bound: a process that
/// cannot have its port must fail before its pools claim anything, or it would exit holding tasks
/// whose attempts are then spent and which wait out their leases.
struct AfterListening: Service {
    let service: any Service
    let listening: AsyncStream<Void>

    /// The stream to give `AfterListening`, and the call that opens it (from `onServerRunning`).
    static func gate() -> (listening: AsyncStream<Void>, open: @Sendable () -> Void) {
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        return (stream, { continuation.yield(); continuation.finish() })
    }

    func run() async throws {
        let stream = listening
        let bound = try await cancelWhenGracefulShutdown {
            var iterator = stream.makeAsyncIterator()
            return await iterator.next() != nil
        }
        guard bound, !Task.isCancelled else { return }
        try await service.run()
    }
}

/// `host` as a URL writes it: an IPv6 address in brackets (http://[::1]:8000).
func urlHost(_ host: String) -> String {
    host.contains(":") ? "[\(host)]" : host
}

/// A listener that could not bind, said as the option at fault; nil for any other error.
func bindFailure(_ error: any Error, option: String, host: String, port: Int) -> SluiceError? {
    if error is SocketAddressError || error is SocketAddressError.UnknownHost {
        return SluiceError(.invalidArgument, "--host \(host): not an address to listen on; give an IP address such as 127.0.0.1, ::1 or 0.0.0.0, or a name that resolves to one", field: "host")
    }
    guard let error = error as? IOError else { return nil }
    switch error.errnoCode {
    case EADDRINUSE:
        return SluiceError(.invalidArgument, "\(option) \(port): \(host):\(port) is in use by another process; pick another port (0 picks a free one)", field: option)
    case EADDRNOTAVAIL:
        return SluiceError(.invalidArgument, "--host \(host): not an address of this machine; give one of its addresses, 127.0.0.1 or 0.0.0.0", field: "host")
    case EACCES:
        return SluiceError(.invalidArgument, "\(option) \(port): binding a port below 1024 needs privileges; pick a port from 1024", field: option)
    default:
        return nil
    }
}
