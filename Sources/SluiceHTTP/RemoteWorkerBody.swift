import Foundation
import SluiceCore
import SluiceStore

/// A remote worker's description of itself (`PUT /v1/workers/{id}`, and every heartbeat): its host,
/// process, kinds and pools with their figures; a heartbeat adds the leases it holds.
struct RemoteWorkerBody {
    /// One pool as the worker reports it.
    struct Pool {
        var name: String
        var queues: [String]
        var concurrency: Int
        var threads, busy, idle, stuck, free, processed, failed: Int
        var runTimeP50, runTimeP99: Double?

        static let fields: Set<String> = ["name", "queues", "concurrency", "threads", "busy", "idle", "stuck", "free",
                                          "processed", "failed", "run_time_p50", "run_time_p99"]

        static func parse(_ value: JSONValue, at prefix: String) throws(APIError) -> Pool {
            let fields = try JSONFields(value, at: prefix, known: fields)
            let name = try fields.required("name", fields.name)
            let queues = try ClaimBody.queues(fields)
            let concurrency = try fields.required("concurrency") { (n) throws(APIError) in try fields.integer(n, in: PoolSetting.concurrencyRange) }
            func count(_ name: String) throws(APIError) -> Int? { try fields.integer(name, in: 0...1_000_000_000) }
            let busy = try count("busy") ?? 0
            let stuck = try count("stuck") ?? 0
            let threads = try count("threads") ?? concurrency
            return Pool(name: name, queues: queues, concurrency: concurrency, threads: threads, busy: busy,
                        idle: try count("idle") ?? max(0, threads - busy - stuck), stuck: stuck,
                        free: try count("free") ?? max(0, concurrency - busy - stuck), processed: try count("processed") ?? 0,
                        failed: try count("failed") ?? 0, runTimeP50: try fields.number("run_time_p50", in: 0...1e9),
                        runTimeP99: try fields.number("run_time_p99", in: 0...1e9))
        }

        /// The figures as every process reports them, with the store's counts of its queues.
        func capacity(counts: [QueueCounts], paused: Set<String>) -> PoolCapacity {
            PoolCapacity(name: name, queues: queues, target: concurrency, threads: threads, busy: busy, idle: idle, stuck: stuck,
                         free: free, waiting: 0, scheduled: 0, processed: processed, failed: failed,
                         runTimeP50: runTimeP50, runTimeP99: runTimeP99, autoscale: nil).withBacklog(counts: counts, paused: paused)
        }
    }

    /// Each `nil` when the body leaves it out: a heartbeat then keeps what the worker registered.
    var host: String?
    var pid: Int?
    var kinds: [String]?
    var pools: [Pool]?
    var leases: [LeaseReference]

    /// Parses the body; `leases` allows the heartbeat's list of leases.
    static func parse(_ value: JSONValue, leases allowLeases: Bool) throws(APIError) -> RemoteWorkerBody {
        let fields = try JSONFields(value, known: allowLeases ? ["host", "pid", "kinds", "pools", "leases"] : ["host", "pid", "kinds", "pools"])
        let host = try fields.string("host")
        guard (host?.utf8.count ?? 0) <= 255 else { throw .badRequest("host", "must be at most 255 bytes") }
        let kinds = try fields.array("kinds", limit: 1000).map { (list) throws(APIError) in
            var kinds: [String] = []
            for (index, kind) in list.enumerated() {
                guard let text = kind.stringValue else { throw .badRequest("kinds[\(index)]", "must be a string") }
                try JSONFields.checkName(text, at: "kinds[\(index)]")
                kinds.append(text)
            }
            return kinds
        }
        let pools = try fields.array("pools", limit: 100).map { (list) throws(APIError) in
            var pools: [Pool] = []
            for (index, pool) in list.enumerated() { pools.append(try Pool.parse(pool, at: "pools[\(index)].")) }
            return pools
        }
        if let repeated = Dictionary(grouping: (pools ?? []).map(\.name), by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw .badRequest("pools", "names pool \(repeated) twice")
        }
        return RemoteWorkerBody(host: host, pid: try fields.integer("pid", in: 0...Int(Int32.max)), kinds: kinds, pools: pools,
                                leases: allowLeases ? try LeaseReference.parseList(fields, maxBatch: 100_000) : [])
    }
}

extension PoolCapacity {
    /// The pool's figures with its backlog as the store's counts say now (for a heartbeat's pools,
    /// and for those a heartbeat left out, as registered).
    func withBacklog(counts: [QueueCounts], paused: Set<String>) -> PoolCapacity {
        var figures = self
        (figures.waiting, figures.scheduled) = QueueCounts.backlog(of: queues, in: counts, paused: paused)
        return figures
    }
}
