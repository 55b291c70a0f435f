// sluice-bench-store: the durable store's throughput, each figure beside raw SQLite doing the same
// work in the same run, so the store's overhead shows as a ratio. Run it through `tools/bench/run --only store`.
import Foundation
import SluiceCore
import SluiceSQLite
import SluiceStore

struct Options {
    var repeats = 3
    var scale = 1.0
    var synchronous = SQLiteStoreConfiguration.Synchronous.full
    init() {
        var args = CommandLine.arguments.dropFirst().makeIterator()
        while let arg = args.next() {
            switch arg {
            case "--repeats": repeats = Int(args.next()!)!
            case "--scale": scale = Double(args.next()!)!
            case "--sync": synchronous = .init(rawValue: args.next()!)!
            default: fatalError("unknown option \(arg); options: --repeats N --scale X --sync full|normal")
            }
        }
    }
}

/// `populate --db PATH --finished N --scheduled N`: fills a file through the store itself (so the
/// counters and indexes are what a long-lived deployment has), for the `scale` scenario.
if CommandLine.arguments.dropFirst().first == "populate" {
    var arguments = CommandLine.arguments.dropFirst(2).makeIterator()
    var path = "", finished = 0, scheduled = 0
    while let arg = arguments.next() {
        switch arg {
        case "--db": path = arguments.next()!
        case "--finished": finished = Int(arguments.next()!)!
        case "--scheduled": scheduled = Int(arguments.next()!)!
        default: fatalError("populate: unknown option \(arg); options: --db PATH --finished N --scheduled N")
        }
    }
    var configuration = SQLiteStoreConfiguration(path: path, synchronous: .normal)
    configuration.busyTimeout = .seconds(30)
    let store = try SQLiteTaskStore(configuration)
    let batch = 1000
    let taskArgs: JSONValue = ["customer": 42, "note": "a finished task of the scale scenario"]
    var done = 0
    while done < finished {
        let n = min(batch, finished - done)
        _ = try await store.enqueue(batch: (0..<n).map { _ in EnqueueRequest(kind: "noop", queue: "history", args: taskArgs) })
        let claimed = try await store.claim(queues: ["history"], limit: n, owner: "populate", leaseDuration: .seconds(600))
        _ = try await store.record(claimed.map { .complete($0.lease!, ["ok": true]) }, thenClaim: [])
        done += n
    }
    // Scheduled a day ahead: they stay scheduled through the whole scenario.
    let later = Date().addingTimeInterval(86_400)
    done = 0
    while done < scheduled {
        let n = min(batch, scheduled - done)
        _ = try await store.enqueue(batch: (0..<n).map { _ in EnqueueRequest(kind: "noop", queue: "later", args: taskArgs, runAt: later) })
        done += n
    }
    try await store.optimize()
    print("populated \(path): \(finished) finished, \(scheduled) scheduled")
    exit(0)
}

let options = Options()
let root = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-bench-\(getpid())")
try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: root) }
func freshPath() -> String {
    root.appendingPathComponent("b-\(UUID().uuidString).db").path
}

func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    return (ContinuousClock.now - start).seconds
}

func openStore(_ path: String) throws -> SQLiteTaskStore {
    var configuration = SQLiteStoreConfiguration(path: path, synchronous: options.synchronous)
    configuration.busyTimeout = .seconds(30)
    return try SQLiteTaskStore(configuration)
}

/// A raw connection with the same schema and pragmas, for the baseline.
func openRaw(_ path: String) throws -> SQLiteConnection {
    _ = try openStore(path)  // creates the schema
    let connection = try SQLiteConnection(path: path)
    try connection.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 30000")
    try connection.execute(SQLiteTaskStore.connectionPragmas(options.synchronous))
    return connection
}

let insertSQL = """
    INSERT INTO tasks (id, queue, kind, args, priority, state, run_at, max_attempts, timeout_ms,
                       backoff_base_ms, backoff_cap_ms, idempotency_key, created_at)
    VALUES (?, 'default', 'noop', '{"n":1}', 0, 'queued', ?, 3, 300000, 1000, 600000, NULL, ?)
    """

/// Raw inserts of `count` rows in transactions of `perCommit` rows.
func rawInsert(_ connection: SQLiteConnection, count: Int, perCommit: Int) throws {
    let ids = TaskIDGenerator(clock: SystemClock())
    var done = 0
    while done < count {
        try connection.execute("BEGIN IMMEDIATE")
        for _ in 0..<min(perCommit, count - done) {
            let now = Date().microsecondsSince1970
            try connection.run(insertSQL, [.text(ids.next().rawValue), .integer(now), .integer(now)])
            done += 1
        }
        try connection.execute("COMMIT")
    }
}

struct Result { var name: String; var store: [Double]; var raw: [Double]; var target: Double }
var results: [Result] = []

func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s[s.count / 2] }

// 1. Durable enqueue, 50 concurrent callers, one task each call (group commit).
do {
    let total = Int(100_000 * options.scale)
    let callers = 50
    var store: [Double] = [], raw: [Double] = []
    for _ in 0..<options.repeats {
        let s = try openStore(freshPath())
        let t = try await seconds {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<callers {
                    group.addTask { for _ in 0..<(total / callers) { _ = try await s.enqueue(EnqueueRequest(kind: "noop", args: ["n": 1])) } }
                }
                try await group.waitForAll()
            }
        }
        store.append(Double(total) / t)
        let connection = try openRaw(freshPath())
        raw.append(Double(total) / (try await seconds { try rawInsert(connection, count: total, perCommit: callers) }))
    }
    results.append(Result(name: "enqueue, 50 concurrent callers (raw: 50 inserts per commit)", store: store, raw: raw, target: 30_000))
}

// 2. Batch enqueue, 1,000 tasks per batch.
do {
    let total = Int(200_000 * options.scale)
    var store: [Double] = [], raw: [Double] = []
    for _ in 0..<options.repeats {
        let s = try openStore(freshPath())
        let batch = (0..<1000).map { _ in EnqueueRequest(kind: "noop", args: ["n": 1]) }
        let t = try await seconds { for _ in 0..<(total / 1000) { _ = try await s.enqueue(batch: batch) } }
        store.append(Double(total) / t)
        let connection = try openRaw(freshPath())
        raw.append(Double(total) / (try await seconds { try rawInsert(connection, count: total, perCommit: 1000) }))
    }
    results.append(Result(name: "batch enqueue, 1,000 per batch (raw: 1,000 inserts per commit)", store: store, raw: raw, target: 150_000))
}

// 3. Claim up to 64 + complete each (completions concurrent, so they share commits).
do {
    let total = Int(100_000 * options.scale)
    var store: [Double] = [], raw: [Double] = []
    for _ in 0..<options.repeats {
        let path = freshPath()
        let s = try openStore(path)
        for _ in 0..<(total / 1000) { _ = try await s.enqueue(batch: (0..<1000).map { _ in EnqueueRequest(kind: "noop") }) }
        var drained = 0
        let t = try await seconds {
            while true {
                let claimed = try await s.claim(queues: ["default"], limit: 64, owner: "bench", leaseDuration: .seconds(60))
                if claimed.isEmpty { break }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for task in claimed { group.addTask { _ = try await s.complete(task.lease!, result: nil) } }
                    try await group.waitForAll()
                }
                drained += claimed.count
            }
        }
        precondition(drained == total, "drained \(drained) of \(total)")
        store.append(Double(total) / t)

        let rawPath = freshPath()
        let connection = try openRaw(rawPath)
        try rawInsert(connection, count: total, perCommit: 1000)
        let claimSQL = """
            UPDATE tasks SET state = 'running', attempt = attempt + 1, started_at = ?1, worker = 'bench',
                lease_owner = 'bench', lease_expires_at = ?2
            WHERE id IN (SELECT id FROM tasks WHERE state = 'queued' AND queue = 'default' ORDER BY priority DESC, run_at, id LIMIT 64)
            RETURNING id, attempt
            """
        let completeSQL = """
            UPDATE tasks SET state = 'succeeded', result = 'null', finished_at = ?, lease_owner = NULL, lease_expires_at = NULL
            WHERE id = ? AND state = 'running' AND lease_owner = 'bench' AND attempt = ?
            """
        raw.append(Double(total) / (try await seconds {
            while true {
                var claimed: [(String, Int64)] = []
                let now = Date().microsecondsSince1970
                try connection.execute("BEGIN IMMEDIATE")
                try connection.query(claimSQL, [.integer(now), .integer(now + 60_000_000)]) { claimed.append(($0.text(0), $0.int(1))) }
                try connection.execute("COMMIT")
                if claimed.isEmpty { break }
                try connection.execute("BEGIN IMMEDIATE")
                for (id, attempt) in claimed { try connection.run(completeSQL, [.integer(now), .text(id), .integer(attempt)]) }
                try connection.execute("COMMIT")
            }
        }))
    }
    results.append(Result(name: "claim 64 + complete each (raw: claim commit + 64 updates per commit)", store: store, raw: raw, target: 25_000))
}

print("synchronous=\(options.synchronous.rawValue), \(options.repeats) repeats, scale \(options.scale); tasks/s, median (min–max)")
print("")
print("| scenario | store | raw SQLite | store / raw | target | met |")
print("|---|---:|---:|---:|---:|:-:|")
for r in results {
    func fmt(_ xs: [Double]) -> String {
        String(format: "%.0f (%.0f–%.0f)", median(xs), xs.min()!, xs.max()!)
    }
    let ratio = median(r.store) / median(r.raw)
    print("| \(r.name) | \(fmt(r.store)) | \(fmt(r.raw)) | \(String(format: "%.2f", ratio)) | \(Int(r.target)) | \(median(r.store) >= r.target ? "yes" : "no") |")
}
