import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceSQLite

/// Opens the SQLite store named on the command line, with messages that name the flag. A write
/// waits for another process's lock at most a third of the lease (10 s at most), so that a
/// heartbeat stuck behind a lock can never outlast the lease it renews.
func openStore(_ path: String, sync: String, lease: Duration) throws -> SQLiteTaskStore {
    guard let synchronous = SQLiteStoreConfiguration.Synchronous(rawValue: sync) else {
        throw SluiceError(.invalidArgument, "--sync \(sync): expected full or normal", field: "sync")
    }
    var configuration = SQLiteStoreConfiguration(path: path, synchronous: synchronous)
    configuration.busyTimeout = min(configuration.busyTimeout, lease / 3)
    configuration.watchOtherProcesses = true
    return try SQLiteTaskStore(configuration)
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
    // Services are shut down last to first: the listener for a second signal comes first, so it
    // stays armed while the others drain.
    let group = ServiceGroup(configuration: ServiceGroupConfiguration(
        services: [.init(service: SecondSignal(logger: logger))]
            + services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger))
    try await group.run()
}
