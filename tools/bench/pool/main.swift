// sluice-bench-pool: pools and `sluice worker` processes against the ideal. Run it through
// tools/bench/pool.sh, which builds this and `sluice` in release mode first.
import Foundation
import SluiceCore
import SluicePool
import SluiceSQLite
import SluiceStore
import Synchronization

struct Options {
    var repeats = 3
    var quick = false
    var sluice = ""
    var only: String?
    var drainConcurrency = 64
    var drainSync = "full"
    init() {
        var args = CommandLine.arguments.dropFirst().makeIterator()
        while let arg = args.next() {
            switch arg {
            case "--repeats": repeats = Int(args.next()!)!
            case "--quick": quick = true
            case "--sluice": sluice = args.next()!
            case "--only": only = args.next()!
            case "--drain-concurrency": drainConcurrency = Int(args.next()!)!
            case "--drain-sync": drainSync = args.next()!
            default: fatalError("options: --repeats N --quick --only sleep|latency|drain --drain-concurrency N --sluice PATH")
            }
        }
        precondition(FileManager.default.isExecutableFile(atPath: sluice), "--sluice must name the built sluice binary")
    }
}

let options = Options()
let root = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-bench-pool-\(getpid())")
try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: root) }
func freshPath() -> String { root.appendingPathComponent("\(UUID().uuidString).db").path }
func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s[s.count / 2] }
func range(_ xs: [Double], _ format: String) -> String {
    String(format: "\(format) (\(format)–\(format))", median(xs), xs.min()!, xs.max()!)
}

func quietOptions() -> WorkerOptions {
    var o = WorkerOptions()
    o.retention = nil
    return o
}

/// Runs a worker while `body` runs.
func withWorker<T: Sendable>(_ store: SQLiteTaskStore, concurrency: Int, registry: HandlerRegistry = .builtin(),
                             _ body: @Sendable @escaping (Worker) async throws -> T) async throws -> T {
    let worker = try Worker(store: store, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: concurrency)],
                            registry: registry, options: quietOptions())
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await worker.run(); return nil }
        let result = try await body(worker)
        worker.beginShutdown()
        for try await _ in group {}
        return result
    }
}

func waitAllFinal(_ store: SQLiteTaskStore, total: Int) async throws {
    while true {
        let counts = try await store.counts().reduce(into: [TaskState: Int]()) { acc, q in q.counts.forEach { acc[$0.key, default: 0] += $0.value } }
        if (counts[.succeeded] ?? 0) + (counts[.failed] ?? 0) >= total { return }
        // counts() scans the table: polling it faster would take CPU from what is measured.
        try await Task.sleep(for: .milliseconds(total > 10_000 ? 50 : 5))
    }
}

var rows: [String] = []

// 1. 1,000 sleep tasks of 100 ms at concurrency 50, 40, 12: wall time against the ideal.
func wanted(_ name: String) -> Bool { options.only == nil || options.only == name }

let sleeps = options.quick ? 200 : 1000
for concurrency in [50, 40, 12] where wanted("sleep") {
    let ideal = (Double(sleeps) / Double(concurrency)).rounded(.up) * 0.1
    var times: [Double] = []
    for _ in 0..<options.repeats {
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: freshPath()))
        let t = try await withWorker(store, concurrency: concurrency) { _ in
            let start = ContinuousClock.now
            _ = try await store.enqueue(batch: (0..<sleeps).map { _ in EnqueueRequest(kind: "sleep", args: ["seconds": 0.1]) })
            try await waitAllFinal(store, total: sleeps)
            return (ContinuousClock.now - start).seconds
        }
        times.append(t)
    }
    rows.append("| \(sleeps) × sleep 0.1 s, concurrency \(concurrency) | \(range(times, "%.2f")) s | \(String(format: "%.2f", ideal)) s | \(String(format: "%.3f", median(times) / ideal)) |")
}

// 2. Idle-to-start latency, in-process: enqueue through the same store, the handler notes its start.
var inProcess: [Double] = [0]
if wanted("latency") {
    let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: freshPath()))
    let started = Mutex<ContinuousClock.Instant?>(nil)
    var registry = HandlerRegistry()
    registry.register("mark", .blocking { _ in started.withLock { $0 = .now }; return nil })
    let samples = options.quick ? 50 : 300
    inProcess = try await withWorker(store, concurrency: 4, registry: registry) { _ in
        var latencies: [Double] = []
        try await Task.sleep(for: .milliseconds(300))
        for _ in 0..<samples {
            started.withLock { $0 = nil }
            let t0 = ContinuousClock.now
            _ = try await store.enqueue(EnqueueRequest(kind: "mark"))
            while started.withLock({ $0 }) == nil { try await Task.sleep(for: .microseconds(50)) }
            latencies.append((started.withLock { $0! } - t0).seconds * 1000)
            try await Task.sleep(for: .milliseconds(20))  // let the pool go idle again
        }
        return latencies
    }
}

// 3. Idle-to-start, cross-process: a `sluice worker` polls; started_at − created_at from the store.
var crossProcess: [Double] = [0]
var idleRSS = 0.0
if wanted("latency") {
    let path = freshPath()
    let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
    let worker = Process()
    worker.executableURL = URL(fileURLWithPath: options.sluice)
    worker.arguments = ["worker", "--db", path, "--concurrency", "4", "--log-level", "error"]
    try worker.run()
    defer { worker.terminate(); worker.waitUntilExit() }
    try await Task.sleep(for: .seconds(2))
    let status = try String(contentsOfFile: "/proc/\(worker.processIdentifier)/status", encoding: .utf8)
    idleRSS = Double(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }!.split(separator: " ")[1])! / 1024
    for _ in 0..<(options.quick ? 30 : 100) {
        let id = try await store.enqueue(EnqueueRequest(kind: "echo")).task.id
        var task = try await store.require(id)
        while task.startedAt == nil { try await Task.sleep(for: .milliseconds(1)); task = try await store.require(id) }
        crossProcess.append(task.startedAt!.timeIntervalSince(task.createdAt) * 1000)
        try await Task.sleep(for: .milliseconds(Int.random(in: 250...400)))  // the worker's poll backs off to its cap
    }
}

// 4. Drain: pre-filled no-op tasks drained by one and by two `sluice worker` processes.
let drainCount = options.quick ? 20_000 : 100_000
var drainRows: [String] = []
for processes in [1, 2] where wanted("drain") {
    var rates: [Double] = []
    for _ in 0..<options.repeats {
        let path = freshPath()
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: path))
        for _ in 0..<(drainCount / 1000) { _ = try await store.enqueue(batch: (0..<1000).map { _ in EnqueueRequest(kind: "echo") }) }
        let start = ContinuousClock.now
        let workers = try (0..<processes).map { _ in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: options.sluice)
            p.arguments = ["worker", "--db", path, "--concurrency", String(options.drainConcurrency), "--sync", options.drainSync, "--log-level", "error"]
            try p.run()
            return p
        }
        try await waitAllFinal(store, total: drainCount)
        let elapsed = (ContinuousClock.now - start).seconds
        for p in workers { p.terminate(); p.waitUntilExit() }
        rates.append(Double(drainCount) / elapsed)
    }
    drainRows.append("| drain \(drainCount) echo tasks, \(processes) `sluice worker` process\(processes > 1 ? "es" : "") × \(options.drainConcurrency), synchronous=\(options.drainSync) | \(range(rates, "%.0f")) tasks/s |")
}

func percentile(_ xs: [Double], _ p: Double) -> Double { let s = xs.sorted(); return s[min(s.count - 1, Int(Double(s.count) * p))] }

print("\(options.repeats) repeats\(options.quick ? ", quick sizes" : ""); medians with (min–max)\n")
print("| scenario | wall time | ideal | ratio |\n|---|---:|---:|---:|")
rows.forEach { print($0) }
print("\n| scenario | throughput |\n|---|---:|")
drainRows.forEach { print($0) }
print("\n| idle-to-start latency | p50 | p99 | samples |\n|---|---:|---:|---:|")
print(String(format: "| in-process (local enqueue wakes the pool), enqueue call → handler start | %.2f ms | %.2f ms | %d |", percentile(inProcess, 0.5), percentile(inProcess, 0.99), inProcess.count))
print(String(format: "| other process (`sluice worker` polling), created_at → started_at | %.2f ms | %.2f ms | %d |", percentile(crossProcess, 0.5), percentile(crossProcess, 0.99), crossProcess.count))
print(String(format: "\nIdle `sluice worker` resident memory (VmRSS after 2 s): %.1f MB", idleRSS))
