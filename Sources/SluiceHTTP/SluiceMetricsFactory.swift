import Metrics
import Prometheus

/// swift-metrics into a Prometheus registry, with a `# HELP` line for every metric Sluice makes.
/// swift-prometheus's own factory registers every metric with empty help text (and the registry
/// refuses a second registration with other text), so help has to be given where the metric is
/// made: here, looked up by its label, so that the code making the metric need not know Prometheus.
public struct SluiceMetricsFactory: MetricsFactory {
    /// The registry that `/metrics` renders.
    public let registry: PrometheusCollectorRegistry

    /// Help text per metric name. A metric made elsewhere without an entry gets a generic line, so
    /// the output always passes `promtool check metrics`.
    public static let help: [String: String] = [
        "sluice_task_attempts_total": "Task attempts finished in this process's pools, by outcome (succeeded; failed, timeouts included; dropped: not reported because the lease was lost, to a cancel elsewhere, a rescue or the end of a shutdown's grace).",
        "sluice_task_run_seconds": "Run time of task attempts in this process's pools, in seconds.",
        "sluice_task_wait_seconds": "Time from a task's run_at to the start of its attempt, in seconds.",
        "sluice_queue_tasks": "Durable tasks per queue and state, read at scrape time.",
        "sluice_memory_tasks": "Fire-and-forget (in-memory) tasks per queue and state, read at scrape time.",
        "sluice_pool_target": "Concurrency the pool aims at (its size), per pool of this process.",
        "sluice_pool_threads": "Threads the pool has now, per pool of this process.",
        "sluice_pool_busy": "Slots running a task now, per pool of this process.",
        "sluice_pool_free": "Slots free to claim a task, per pool of this process.",
        "sluice_pool_stuck": "Slots whose task is past its deadline and has not returned, per pool of this process.",
        "sluice_http_waiting_requests": "Requests held open by ?wait= now.",
        "sluice_schedule_slots_total": "Schedule slots handled by this process's scheduler (the leader's), by outcome: fired, already_fired, missed, over_cap, overlapping (previous task still live), failed (schedules whose firing failed).",
    ]

    /// Run-time buckets, in seconds: from a millisecond to ten minutes, for tasks from echo to exec.
    static let durationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
        .seconds(60), .seconds(300), .seconds(600),
    ]
    static let valueBuckets: [Double] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// The help text for `name`.
    public static func help(for name: String) -> String {
        help[name] ?? "\(name), a Sluice metric."
    }

    /// `label` whole as the metric's name (Sluice's labels already end in their unit), with its help.
    static func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: help(for: label))
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: Self.descriptor(label), labels: dimensions)
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: Self.descriptor(label), labels: dimensions)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        aggregate ? registry.makeValueHistogram(descriptor: Self.descriptor(label), labels: dimensions, buckets: Self.valueBuckets)
            : registry.makeGauge(descriptor: Self.descriptor(label), labels: dimensions)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: Self.descriptor(label), labels: dimensions)
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: Self.descriptor(label), labels: dimensions, buckets: Self.durationBuckets)
    }

    public func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    public func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }

    public func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    public func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}

extension SluiceMetricsFactory {
    /// This process's registry, with swift-metrics bootstrapped into it on first use. The metrics
    /// system can be bootstrapped once per process, and metrics made before that stay no-ops: call
    /// this before making anything that makes a metric (a `Worker`, its pools).
    public static let bootstrapped: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(SluiceMetricsFactory(registry: registry))
        return registry
    }()
}
