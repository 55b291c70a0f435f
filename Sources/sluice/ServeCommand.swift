import ArgumentParser
import Foundation
import Hummingbird
import Logging
import SluiceCore
import SluiceHTTP
import SluicePool
import SluiceSQLite
import SluiceStore

/// `sluice serve`: the HTTP front and, by default, an in-process pool, on one SQLite file.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the HTTP API, the web console (/ui/) and an in-process worker pool on a Sluice database.",
        discussion: """
            With no options: ./sluice.db (--database postgres://… for PostgreSQL), http://127.0.0.1:8000, and a pool named default draining the \
            default queue with \(PoolConfiguration.defaultConcurrency) threads. These options have an environment \
            equivalent: SLUICE_HOST, SLUICE_PORT, SLUICE_DB, SLUICE_DATABASE_URL, SLUICE_CONCURRENCY, SLUICE_TOKEN with \
            comma-separated tokens, SLUICE_SYNC, SLUICE_PUBLIC_HOST; a flag wins over the environment. \
            Without a token the server binds only to a loopback address. Requests from web pages of \
            another origin, and requests whose Host is not a name of this server (see --public-host), \
            are refused. SIGTERM or SIGINT answers requests waiting with ?wait= at once, stops accepting \
            requests, finishes those in flight and drains the pool like `sluice worker`. \
            The web console is at /ui/ (with tokens it asks for one and keeps a session cookie).
            """
    )

    @Option(help: "Address to listen on (SLUICE_HOST; default 127.0.0.1).")
    var host: String?

    @Option(help: "Port to listen on; 0 picks a free one (SLUICE_PORT; default 8000).")
    var port: Int?

    @OptionGroup var database: DatabaseOptions

    @OptionGroup var poolOptions: PoolOptions

    @Flag(name: .customLong("no-pool"), help: "Run no pool here: a pure front; durable tasks wait for `sluice worker` or remote workers. It still takes its turn at leading maintenance (rescue, staging, pruning, schedules).")
    var noPool = false

    @Option(name: .customLong("token"), help: ArgumentHelp("Require Authorization: Bearer TOKEN on every route but /healthz and the console's pages, which sign in with it (repeatable; SLUICE_TOKEN).", valueName: "token"))
    var tokens: [String] = []

    @OptionGroup var publicHostOptions: PublicHostOptions

    @Option(help: "SQLite durability, full or normal (SLUICE_SYNC; default full).")
    var sync: String?

    @Option(name: .customLong("max-body"), help: "Largest request body in bytes.")
    var maxBody: Int = 1 << 20

    @Option(name: .customLong("max-queue-depth"), help: "Answer 503 to enqueues while a queue holds this many ready tasks, durable and fire-and-forget together.")
    var maxQueueDepth: Int?

    @Option(name: .customLong("max-memory-tasks"), help: "Answer 503 to fire-and-forget enqueues that would leave more than this many unfinished tasks in memory.")
    var maxMemoryTasks: Int = 100_000

    @Option(name: .customLong("max-wait"), help: "Longest ?wait= a request may ask for, in seconds.")
    var maxWait: Double = 300

    @Option(name: .customLong("memory-limit"), help: "Finished fire-and-forget tasks kept in memory for status reads; older ones are forgotten.")
    var memoryLimit: Int = MemoryTaskStore.defaultFinishedLimit

    @Option(name: .customLong("idle-timeout"), help: "Seconds a connection may stay idle, or send a request slower than this, before it is closed; requests being answered (e.g. ?wait=) are never cut.")
    var idleTimeout: Double = 60

    @Option(help: "A TOML file of schedules to create or update at start (see docs/SCHEDULES.md); schedules made through the API stay.")
    var schedules: String?

    @Option(help: "Seconds running tasks get to finish on shutdown.")
    var grace: Double = 30

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func run() async throws {
        keepFreedMemory()
        let env = ProcessInfo.processInfo.environment
        let logger = try bootstrapLogging(logLevel)
        let target: DatabaseOptions.Target
        let options: WorkerOptions
        let file: SchedulesFile?
        let host = self.host ?? env["SLUICE_HOST"] ?? "127.0.0.1"
        let tokens: [String]
        let settings: Settings
        do {
            // Checked before the store opens, so that a refused start leaves no new database behind.
            tokens = try Self.tokens(flags: self.tokens, environment: env["SLUICE_TOKEN"])
            guard tokens.isEmpty == false || HostNames.isLoopback(host) else {
                throw SluiceError(.invalidArgument, "--host \(host) is not a loopback address: give --token (or SLUICE_TOKEN) so the API is not open to the network", field: "host")
            }
            target = try database.target(environment: env)
            options = try poolOptions.workerOptions(grace: grace)
            // Checked whole before the store opens: a typo refuses to start instead of half-applying.
            file = try schedules.map { path throws(SluiceError) in try SchedulesFile(path: path) }
            settings = try checkedSettings(options: options, environment: env)
        } catch let error as SluiceError {
            throw failure(error.message)
        }
        do {
            let sync = GivenSetting(flag: "--sync", self.sync, variable: "SLUICE_SYNC", environment: env, default: "full")
            try await withStore(target, sync: sync, lease: options.leaseDuration, logger: logger) { store, location in
                if let file {
                    guard let schedules = store as? any ScheduleStore else { throw SluiceError(.invalidArgument, "--schedules: this store keeps no schedules") }
                    for line in try await file.apply(to: schedules) { FileHandle.standardOutput.write(Data("sluice: \(line)\n".utf8)) }
                }
                try await serve(store: store, location: location, host: host, tokens: tokens, options: options, settings: settings, logger: logger)
            }
        } catch let error as SluiceError {
            throw failure(error.message)
        }
    }

    /// What the flags and the environment ask for, every one checked: before the store opens, so
    /// that a refused start creates or migrates no database.
    struct Settings {
        var port: Int
        var pools: [PoolConfiguration]
        var publicHosts: [String]
        var programs: Set<String>
        var limits: SluiceAPI.Limits
    }

    func checkedSettings(options: WorkerOptions, environment env: [String: String]) throws -> Settings {
        let given = GivenSetting(flag: "--port", self.port.map(String.init), variable: "SLUICE_PORT", environment: env, default: "8000")
        guard let port = Int(given.text), (0...65535).contains(port) else {
            throw SluiceError(.invalidArgument, "\(given.spelled): expected 0 to 65535", field: "port")
        }
        guard maxBody >= 1024 else { throw SluiceError(.invalidArgument, "--max-body must be at least 1024 bytes", field: "max-body") }
        guard memoryLimit >= 1 else { throw SluiceError(.invalidArgument, "--memory-limit must be at least 1", field: "memory-limit") }
        if noPool, let first = poolOptions.poolFlagsGiven.first {
            throw SluiceError(.invalidArgument, "--no-pool runs no pool, so \(first) would do nothing: leave out \(poolOptions.poolFlagsGiven.joined(separator: ", ")), or --no-pool", field: "no-pool")
        }
        var pools = try poolOptions.configurations()
        if poolOptions.concurrency == nil, poolOptions.pools.isEmpty, let text = env["SLUICE_CONCURRENCY"] {
            guard let n = Int(text) else { throw SluiceError(.invalidArgument, "SLUICE_CONCURRENCY=\(text): expected a whole number", field: "concurrency") }
            pools[0].concurrency = n
            try pools[0].validate()
        }
        var limits = SluiceAPI.Limits()
        limits.maxBody = maxBody
        limits.remoteLease = options.leaseDuration
        guard maxQueueDepth.map({ $0 >= 1 }) ?? true else { throw SluiceError(.invalidArgument, "--max-queue-depth must be at least 1", field: "max-queue-depth") }
        limits.maxQueueDepth = maxQueueDepth
        guard maxMemoryTasks >= 1 else { throw SluiceError(.invalidArgument, "--max-memory-tasks must be at least 1", field: "max-memory-tasks") }
        limits.maxMemoryTasks = maxMemoryTasks
        guard maxWait >= 0, maxWait <= 3600 else { throw SluiceError(.invalidArgument, "--max-wait must be from 0 to 3600 seconds", field: "max-wait") }
        limits.maxWait = maxWait
        guard idleTimeout > 0, idleTimeout <= 3600 else {
            throw SluiceError(.invalidArgument, "--idle-timeout must be more than 0 and at most 3600 seconds", field: "idle-timeout")
        }
        return Settings(port: port, pools: pools, publicHosts: try publicHostOptions.names(environment: env),
                        programs: try poolOptions.allowedPrograms(), limits: limits)
    }

    /// Serves the API (and the pool, unless --no-pool) on an open store.
    func serve(store: any Worker.Store, location: String, host: String, tokens: [String], options: WorkerOptions,
               settings: Settings, logger: Logger) async throws {
        let api: SluiceAPI
        let worker: Worker
        let port = settings.port
        do {
            // Before anything makes a metric: one made earlier (a pool's counters) would stay a no-op.
            let prometheus = SluiceMetricsFactory.bootstrapped
            let registry = HandlerRegistry.builtin(allowExec: settings.programs)
            let memory = MemoryTaskStore(finishedLimit: memoryLimit)
            // With --no-pool a worker without pools: it registers, and may lead maintenance, so that a
            // front with only remote workers still rescues their leases and fires schedules.
            worker = try Worker(store: store, ephemeral: noPool ? nil : memory, pools: noPool ? [] : settings.pools, registry: registry,
                                options: options, logger: logger)
            api = SluiceAPI(store: store, memory: noPool ? nil : memory, worker: worker, kinds: registry.kinds, tokens: tokens,
                            limits: settings.limits, metrics: prometheus, hosts: HostNames([host], public: settings.publicHosts))
        } catch let error as SluiceError {
            throw failure(error.message)
        }
        let (listening, open) = AfterListening.gate()
        let app = Application(
            router: api.router(),
            // Idle connections are closed so that slow or silent clients cannot hold every descriptor.
            server: HTTP1WithConnectionClose.builder(idleTimeout: .milliseconds(Int64(idleTimeout * 1000))),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "sluice"),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                // Tests and scripts read this line to find a port picked with --port 0.
                let line = "sluice: listening on http://\(urlHost(host)):\(bound) (db \(location)\(tokens.isEmpty ? "" : ", token required"))\n"
                FileHandle.standardOutput.write(Data(line.utf8))
                open()
            },
            logger: logger)
        // Shut down last to first: requests waiting with ?wait= are answered at once, then HTTP stops
        // taking requests and finishes those in flight, then the pool drains.
        do {
            try await runServices([AfterListening(service: worker, listening: listening), app, OnGracefulShutdown { api.beginShutdown() }], logger: logger)
        } catch {
            if let refusal = bindFailure(error, option: "--port", host: host, port: port) { throw failure(refusal.message) }
            throw error
        }
    }

    /// The bearer tokens from `--token`, else from `SLUICE_TOKEN` (comma-separated): the flags win,
    /// so `--token new` with an old variable still set does not accept the old token too. An empty
    /// token is refused rather than dropped: `--token ""` or `SLUICE_TOKEN=` from an unset variable
    /// meant a token, and dropping it would leave the server open.
    static func tokens(flags: [String], environment: String?) throws -> [String] {
        if flags.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw SluiceError(.invalidArgument, "--token must not be empty: give the token, or leave out --token to run without one on loopback", field: "token")
        }
        var tokens = flags
        if flags.isEmpty, let environment {
            let entries = environmentTokens(environment)
            // `a,,b` and a trailing comma are forgiven; a variable that holds no token at all is not.
            guard !entries.isEmpty else {
                throw SluiceError(.invalidArgument, "SLUICE_TOKEN is set but holds no token: set it to one or more comma-separated tokens, or unset it", field: "token")
            }
            tokens += entries
        }
        return tokens
    }

    /// The tokens of a `SLUICE_TOKEN` value: comma-separated, each trimmed, the empty ones left out
    /// (the client reads the variable the same way, and sends the first).
    static func environmentTokens(_ variable: String) -> [String] {
        variable.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
