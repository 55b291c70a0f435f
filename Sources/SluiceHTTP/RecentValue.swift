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

    /// Whether a value is cached and passes `test`, however old it is.
    func holds(where test: (Value) -> Bool) -> Bool {
        cache.withLock { $0.map { test($0.value) } ?? false }
    }

    /// Drops the cached value, so the next `get` loads afresh.
    func forget() {
        cache.withLock { $0 = nil }
    }
}
