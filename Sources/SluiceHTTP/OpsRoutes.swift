import Hummingbird
import Metrics
import Prometheus
import SluiceCore

/// Operations: the health check and Prometheus metrics.
extension SluiceAPI {
    /// `GET /healthz`: whether the store answers, and the pools running here.
    func health() async -> Response {
        var checks: [String: JSONValue] = [:]
        var healthy = true
        do {
            _ = try await store.counts()
            checks["store"] = "ok"
        } catch {
            checks["store"] = .string("\(error)")
            healthy = false
        }
        checks["pools"] = .array((worker?.pools ?? []).map { .string($0.name) })
        checks["status"] = healthy ? "ok" : "unavailable"
        return jsonResponse(.object(checks), status: healthy ? .ok : .serviceUnavailable)
    }

    /// `GET /metrics`: the registry in Prometheus text, with gauges set from live figures.
    func prometheus() async throws -> Response {
        guard let metrics else { throw APIError(.notFound, "not_found", "metrics are not enabled in this process") }
        // Gauges are set at scrape time from the live figures.
        for queue in try await store.counts() {
            for state in TaskState.allCases {
                Gauge(label: "sluice_queue_tasks", dimensions: [("queue", queue.queue), ("state", state.rawValue)]).record(queue.counts[state] ?? 0)
            }
        }
        if let worker {
            for pool in try await worker.capacity() {
                let d = [("pool", pool.name)]
                Gauge(label: "sluice_pool_target", dimensions: d).record(pool.target)
                Gauge(label: "sluice_pool_threads", dimensions: d).record(pool.threads)
                Gauge(label: "sluice_pool_busy", dimensions: d).record(pool.busy)
                Gauge(label: "sluice_pool_free", dimensions: d).record(pool.free)
                Gauge(label: "sluice_pool_stuck", dimensions: d).record(pool.stuck)
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
    }
}
