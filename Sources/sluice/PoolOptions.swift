import ArgumentParser
import Foundation
import SluiceCore
import SluicePool

/// Options that define a process's pools; shared by `sluice worker` and `sluice serve`.
struct PoolOptions: ParsableArguments {
    @Option(name: .customLong("pool"), help: ArgumentHelp(
        "A pool as NAME=QUEUE[,QUEUE…][:CONCURRENCY], e.g. mail=mail,bulk:20 (repeatable). Earlier queues are drained first. The concurrency follows the last colon, so a queue name holding one needs it: jobs=mail:high:5.",
        valueName: "spec"))
    var pools: [String] = []

    @Option(help: ArgumentHelp("Queues of the pool named default, earlier first (when no --pool is given; default: default).", valueName: "a,b"))
    var queues: String?

    @Option(help: ArgumentHelp(
        "Tasks the default pool runs at once (default \(PoolConfiguration.defaultConcurrency)). Blocking tasks each hold a thread: size it for the work, not the cores.",
        valueName: "n"))
    var concurrency: Int?

    @Option(help: ArgumentHelp("Let the default pool size itself between MIN and MAX: it grows while tasks wait and every slot is busy, and shrinks after 30 s without waiting tasks.", valueName: "min:max"))
    var autoscale: String?

    @Option(name: .customLong("allow-exec"), help: ArgumentHelp("Allow the exec kind to run this program (absolute path; repeatable). Nothing is allowed by default.", valueName: "path"))
    var allowExec: [String] = []

    @Option(help: ArgumentHelp("Seconds a claim's lease lasts without renewal (renewed every 2 s): after a crash, the process's running tasks are retried this long after its last heartbeat.", valueName: "seconds"))
    var lease: Double = 30

    @Option(help: ArgumentHelp("Tasks each pool claims beyond its free slots, so a thread finds its next task waiting (for many short tasks). Default 0: tasks are claimed only for free slots, so none waits in this process while another has a free thread.", valueName: "n"))
    var prefetch: Int = 0

    /// The flags given that shape a pool in this process (for `serve --no-pool`, which runs none).
    var poolFlagsGiven: [String] {
        [(concurrency != nil, "--concurrency"), (!pools.isEmpty, "--pool"), (autoscale != nil, "--autoscale"), (queues != nil, "--queues"),
         (!allowExec.isEmpty, "--allow-exec"), (prefetch != 0, "--prefetch")].filter(\.0).map(\.1)
    }

    /// Worker timings from these options.
    func workerOptions(grace: Double) throws -> WorkerOptions {
        guard lease >= 3, lease <= 3600 else { throw SluiceError(.invalidArgument, "--lease must be from 3 to 3600 seconds", field: "lease") }
        guard grace >= 0, grace <= 86_400 else { throw SluiceError(.invalidArgument, "--grace must be from 0 to 86400 seconds", field: "grace") }
        guard (0...10_000).contains(prefetch) else { throw SluiceError(.invalidArgument, "--prefetch must be from 0 to 10000", field: "prefetch") }
        var options = WorkerOptions()
        options.prefetch = prefetch
        options.leaseDuration = .milliseconds(Int64(lease * 1000))
        options.heartbeatInterval = min(.seconds(2), options.leaseDuration / 3)
        options.rescueInterval = min(.seconds(5), options.leaseDuration / 2)
        options.grace = .milliseconds(Int64(grace * 1000))
        return options
    }

    /// The pools these options describe.
    func configurations() throws -> [PoolConfiguration] {
        var range: AutoscaleRange?
        if let autoscale {
            let parts = autoscale.split(separator: ":").map { Int($0) }
            guard parts.count == 2, let low = parts[0], let high = parts[1] else {
                throw SluiceError(.invalidArgument, "--autoscale \(autoscale): expected MIN:MAX, e.g. 4:50", field: "autoscale")
            }
            range = AutoscaleRange(min: low, max: high)
        }
        if !pools.isEmpty {
            guard queues == nil, concurrency == nil, range == nil else {
                throw SluiceError(.invalidArgument, "give pools either with --pool or with --queues/--concurrency/--autoscale, not both", field: "pool")
            }
            return try pools.map(PoolConfiguration.parse)
        }
        let pool = PoolConfiguration(name: "default", queues: (queues ?? "default").split(separator: ",").map(String.init),
                                     concurrency: concurrency ?? range?.min ?? PoolConfiguration.defaultConcurrency, autoscale: range)
        try pool.validate()
        return [pool]
    }

    /// The programs `exec` may run, each checked to be an executable file.
    func allowedPrograms() throws -> Set<String> {
        for path in allowExec {
            guard path.hasPrefix("/") else {
                throw SluiceError(.invalidArgument, "--allow-exec \(path): give an absolute path", field: "allow-exec")
            }
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw SluiceError(.invalidArgument, "--allow-exec \(path): no executable file there", field: "allow-exec")
            }
        }
        return Set(allowExec)
    }
}
