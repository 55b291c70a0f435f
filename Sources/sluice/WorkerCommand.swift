import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceHTTP
import SluicePool
import SluiceSQLite
import UnixSignals

/// `sluice worker`: pools in a process of their own, draining the same database as the server.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run worker pools that drain durable tasks from a Sluice database.",
        discussion: """
            Runs beside `sluice serve` (or other workers) on the same SQLite file, or on the same \
            PostgreSQL database from any number of hosts (--database postgres://…). Each pool claims only \
            as many tasks as it has free slots. SIGTERM or SIGINT stops claiming, hands unstarted tasks \
            back, and lets running tasks finish for --grace seconds; a second signal exits at once \
            (the tasks' leases then expire and another process retries them).

            With --metrics-port, the worker also serves GET /metrics for Prometheus (on 127.0.0.1 unless \
            --host says otherwise). The database is --db or --database, else SLUICE_DATABASE_URL, else \
            SLUICE_DB, else ./sluice.db.

            Examples:
              sluice worker --concurrency 50
              sluice worker --pool default=default:20 --pool mail=mail,bulk:5
            """
    )

    @OptionGroup var database: DatabaseOptions

    @OptionGroup var poolOptions: PoolOptions

    @Option(help: "Seconds running tasks get to finish on shutdown.")
    var grace: Double = 30

    @Option(help: "SQLite durability: full (an acknowledged write survives power loss) or normal (faster; may lose the last commits on power loss, never on a crash).")
    var sync: String = "full"

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Option(name: .customLong("metrics-port"), help: ArgumentHelp("Serve GET /metrics (Prometheus text: this process's task counters and run times, its pools, the queues) on this port; 0 picks a free one. Off by default.", valueName: "port"))
    var metricsPort: Int?

    @Option(help: "Address the --metrics-port listener binds.")
    var host: String = "127.0.0.1"

    @OptionGroup var publicHostOptions: PublicHostOptions

    func run() async throws {
        keepFreedMemory()
        let logger = try bootstrapLogging(logLevel)
        // The same database as `sluice serve` started with the same environment; a flag wins.
        let target: DatabaseOptions.Target
        let options: WorkerOptions
        let publicHosts: [String]
        let pools: [PoolConfiguration]
        let programs: Set<String>
        // Every flag is checked before the store opens, so that a refused start creates or
        // migrates no database.
        do {
            target = try database.target()
            options = try poolOptions.workerOptions(grace: grace)
            publicHosts = try publicHostOptions.names(environment: ProcessInfo.processInfo.environment)
            if let metricsPort, !(0...65535).contains(metricsPort) {
                throw SluiceError(.invalidArgument, "--metrics-port \(metricsPort): expected 0 to 65535", field: "metrics-port")
            }
            pools = try poolOptions.configurations()
            programs = try poolOptions.allowedPrograms()
        } catch let error as SluiceError {
            throw failure(error.message)
        }
        do {
            try await withStore(target, sync: GivenSetting(flag: "--sync", sync, default: "full"), lease: options.leaseDuration, logger: logger) { store, location in
                try await work(store: store, location: location, options: options, pools: pools, programs: programs,
                               publicHosts: publicHosts, logger: logger)
            }
        } catch let error as SluiceError {
            throw failure(error.message)
        }
    }

    /// Runs the pools (and the metrics listener) on an open store.
    func work(store: any Worker.Store, location: String, options: WorkerOptions, pools: [PoolConfiguration], programs: Set<String>,
              publicHosts: [String], logger: Logger) async throws {
        let worker: Worker
        var metrics: MetricsEndpoint?
        do {
            // Before the worker makes its pools: a metric made before this would stay a no-op.
            let registry = metricsPort.map { _ in SluiceMetricsFactory.bootstrapped }
            worker = try Worker(store: store, pools: pools, registry: .builtin(allowExec: programs), options: options, logger: logger)
            metrics = registry.map { MetricsEndpoint(registry: $0, store: store, worker: worker) }
        } catch let error as SluiceError {
            throw failure(error.message)
        }
        logger.info("worker \(worker.id) on \(location)")
        var services: [any Service] = []
        var pools: any Service = worker
        if let metrics, let metricsPort {
            let host = self.host
            let (listening, open) = AfterListening.gate()
            pools = AfterListening(service: worker, listening: listening)
            services.append(Application(
                router: metrics.router(hosts: HostNames([host], public: publicHosts)),
                server: HTTP1WithConnectionClose.builder(idleTimeout: .seconds(60)),
                configuration: ApplicationConfiguration(address: .hostname(host, port: metricsPort), serverName: "sluice-worker"),
                onServerRunning: { channel in
                    // Tests and scripts read this line to find a port picked with --metrics-port 0.
                    let line = "sluice: metrics on http://\(urlHost(host)):\(channel.localAddress?.port ?? metricsPort)/metrics\n"
                    FileHandle.standardOutput.write(Data(line.utf8))
                    open()
                },
                logger: logger))
        }
        // The worker last, so it is shut down first: /metrics stays up while the pools drain.
        do {
            try await runServices(services + [pools], logger: logger)
        } catch {
            if let metricsPort, let refusal = bindFailure(error, option: "--metrics-port", host: host, port: metricsPort) { throw failure(refusal.message) }
            throw error
        }
    }
}
