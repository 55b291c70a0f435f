import Hummingbird
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
        guard let metricsEndpoint else { throw APIError(.notFound, "not_found", "metrics are not enabled in this process") }
        return try await metricsEndpoint.response()
    }
}
