import Foundation
import SluiceCore
import SluicePool
import SluiceSQLite
import SluiceStore
import SluiceTestSupport
import Synchronization

/// Runs a blocking call on a thread of its own and awaits its result, so that an async test never
/// holds one of Swift's cooperative threads while it waits: there are as many as cores (two here),
/// shared by every suite running at once, and the worker under test needs them to get anywhere.
@discardableResult
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

/// A door handlers wait at until the test opens it; waiting has a bound so a bug fails, not hangs.
final class Gate: @unchecked Sendable {
    private let condition = NSCondition()
    private var open = false

    /// Waits until released or `timeout` passes; whether it was released.
    @discardableResult
    func wait(timeout: TimeInterval = 20) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(timeout)
        while !open && condition.wait(until: deadline) {}
        return open
    }

    func release() {
        condition.lock()
        open = true
        condition.broadcast()
        condition.unlock()
    }
}

/// Counts tasks running at once and remembers the most seen.
final class HighWaterMark: Sendable {
    private let state = Mutex((current: 0, max: 0))
    @discardableResult
    func enter() -> Int { state.withLock { $0.current += 1; $0.max = Swift.max($0.max, $0.current); return $0.current } }
    func leave() { state.withLock { $0.current -= 1 } }
    var max: Int { state.withLock { $0.max } }
    var current: Int { state.withLock { $0.current } }
    func reset() { state.withLock { $0.max = $0.current } }
}

/// Options with short intervals, so tests do not wait on production timings.
func fastOptions() -> WorkerOptions {
    var options = WorkerOptions()
    options.heartbeatInterval = .milliseconds(100)
    options.registrationInterval = .milliseconds(100)
    options.rescueInterval = .milliseconds(200)
    options.maxPollInterval = .milliseconds(20)
    options.grace = .seconds(10)
    return options
}

/// Runs a worker for the duration of `body`, then shuts it down gracefully.
func withWorker(
    store: any Worker.Store, pools: [PoolConfiguration], registry: HandlerRegistry, options: WorkerOptions = fastOptions(),
    clock: any WallClock = SystemClock(), monotonic: any MonotonicClock = SystemMonotonicClock(),
    _ body: (Worker) async throws -> Void
) async throws {
    let worker = try Worker(store: store, pools: pools, registry: registry, options: options, clock: clock, monotonic: monotonic)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await worker.run() }
        do {
            try await body(worker)
        } catch {
            worker.beginShutdown()
            throw error
        }
        worker.beginShutdown()
        try await group.waitForAll()
    }
}

/// A fresh SQLite store in a temp directory.
func sqliteStore(clock: any WallClock = SystemClock(), busyTimeout: Duration? = nil) throws -> (SQLiteTaskStore, URL) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-pool-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    var configuration = SQLiteStoreConfiguration(path: dir.appendingPathComponent("tasks.db").path)
    configuration.clock = clock
    if let busyTimeout { configuration.busyTimeout = busyTimeout }
    return (try SQLiteTaskStore(configuration), dir)
}

/// Waits until every task in `ids` is final; returns them.
func finished(_ store: any TaskStore, _ ids: [TaskID], timeout: Duration = .seconds(30)) async throws -> [TaskRecord] {
    _ = try await eventually(timeout: timeout) {
        for id in ids where try await store.require(id).state.isFinal == false { return false }
        return true
    }
    var tasks: [TaskRecord] = []
    for id in ids { tasks.append(try await store.require(id)) }
    return tasks
}

/// The pid of the process holding the maintenance lease (worker ids are `host:pid:random`).
func leaderPID(_ store: any WorkerDirectory) async throws -> Int32? {
    guard let owner = try await store.leader("maintenance")?.owner else { return nil }
    let parts = owner.split(separator: ":")
    return parts.count >= 3 ? Int32(parts[parts.count - 2]) : nil
}
