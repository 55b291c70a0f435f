import SluiceCore

/// A pool's name, the queues it drains (earlier first) and how many tasks it runs at once.
public struct PoolConfiguration: Sendable, Hashable {
    /// The concurrency a pool gets when none is given. Stated in `--help`: blocking tasks each hold a
    /// thread, so size pools for the work rather than for the cores.
    public static let defaultConcurrency = 10

    public var name: String
    public var queues: [String]
    public var concurrency: Int
    public var autoscale: AutoscaleRange?

    public init(name: String, queues: [String], concurrency: Int = defaultConcurrency, autoscale: AutoscaleRange? = nil) {
        self.name = name
        self.queues = queues
        self.concurrency = concurrency
        self.autoscale = autoscale
    }

    /// Parses `NAME=QUEUES:CONCURRENCY`, e.g. `mail=mail,bulk:20`; `NAME=QUEUES` takes the default.
    /// The concurrency follows the last `:`, since a queue name may hold one: `jobs=mail:high:5`.
    public static func parse(_ text: String) throws -> PoolConfiguration {
        let usage = "expected NAME=QUEUE[,QUEUE…][:CONCURRENCY], e.g. mail=mail,bulk:20"
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw SluiceError(.invalidArgument, "--pool \(text): \(usage)", field: "pool") }
        let name = parts[0]
        var queueList = parts[1][...]
        var concurrency = defaultConcurrency
        if let colon = queueList.lastIndex(of: ":") {
            let number = queueList[queueList.index(after: colon)...]
            guard let n = Int(number) else {
                throw SluiceError(.invalidArgument, "--pool \(text): concurrency must be a whole number (it follows the last ':'; a queue name with ':' needs one after it, as in jobs=mail:high:5); \(usage)", field: "pool")
            }
            concurrency = n
            queueList = queueList[..<colon]
        }
        let queues = queueList.split(separator: ",").map(String.init)
        let pool = PoolConfiguration(name: name, queues: queues, concurrency: concurrency)
        try pool.validate()
        return pool
    }

    /// Checks names and bounds, naming what is wrong.
    public func validate() throws {
        try EnqueueRequest.checkName(name, field: "pool")
        guard !queues.isEmpty else { throw SluiceError(.invalidArgument, "pool \(name): give at least one queue", field: "queues") }
        for queue in queues { try EnqueueRequest.checkName(queue, field: "queues") }
        guard PoolSetting.concurrencyRange.contains(concurrency) else {
            throw SluiceError(.invalidArgument, "pool \(name): concurrency must be from 1 to \(PoolSetting.concurrencyRange.upperBound), not \(concurrency)", field: "concurrency")
        }
        if let autoscale {
            guard autoscale.min >= 1, autoscale.max >= autoscale.min, autoscale.max <= PoolSetting.concurrencyRange.upperBound else {
                throw SluiceError(.invalidArgument, "pool \(name): autoscale needs 1 ≤ MIN ≤ MAX ≤ 10000", field: "autoscale")
            }
        }
    }
}
