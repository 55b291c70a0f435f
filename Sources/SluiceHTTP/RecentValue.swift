import Synchronization

/// A value loaded on demand and reused until it is older than the caller allows.
final class RecentValue<Value: Sendable>: Sendable {
    private let cache = Mutex<(at: ContinuousClock.Instant, value: Value)?>(nil)

    func get(maxAge: Duration, load: () async throws -> Value) async throws -> Value {
        if let cached = cache.withLock({ $0 }), ContinuousClock.now - cached.at < maxAge { return cached.value }
        let value = try await load()
        cache.withLock { $0 = (ContinuousClock.now, value) }
        return value
    }
}
