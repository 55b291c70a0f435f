import Foundation
import Synchronization

/// The source of "now" for everything that stores or compares timestamps. Core code never calls
/// `Date()` directly, so tests can move time with a `ManualClock`.
public protocol WallClock: Sendable {
    /// The current time.
    func now() -> Date
}

/// The real wall clock.
public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that moves only when told to; for tests and for reasoning about leases and backoff.
public final class ManualClock: WallClock {
    private let current: Mutex<Date>

    public init(_ start: Date = Date(timeIntervalSince1970: 1_750_000_000)) {
        current = Mutex(start)
    }

    public func now() -> Date { current.withLock { $0 } }

    /// Moves the clock by `duration`, forwards or (negative) backwards.
    public func advance(by duration: Duration) {
        current.withLock { $0 = $0.addingTimeInterval(duration.seconds) }
    }

    /// Sets the clock to `date`.
    public func set(_ date: Date) {
        current.withLock { $0 = date }
    }
}

extension Duration {
    /// The duration in seconds as a `Double`.
    public var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }

    /// The duration in whole milliseconds, rounded.
    public var milliseconds: Int64 {
        let (s, attoseconds) = components
        return s * 1000 + Int64((Double(attoseconds) / 1e15).rounded())
    }

    /// The duration in whole microseconds, rounded: the resolution the stores keep times in.
    public var microseconds: Int64 { Int64((seconds * 1_000_000).rounded()) }
}

extension Date {
    /// Microseconds since 1970: the resolution both stores keep, so they agree to the tick.
    public var microsecondsSince1970: Int64 {
        Int64((timeIntervalSince1970 * 1_000_000).rounded())
    }

    /// A date from microseconds since 1970.
    public init(microsecondsSince1970 micros: Int64) {
        self.init(timeIntervalSince1970: Double(micros) / 1_000_000)
    }

    /// This date cut to the microsecond, as the stores keep it.
    public var storedPrecision: Date { Date(microsecondsSince1970: microsecondsSince1970) }
}

/// Time that only moves forward, for deadlines and intervals: a wall clock set forward or back
/// must not time tasks out early or keep them running late. `now()` counts from an arbitrary origin.
public protocol MonotonicClock: Sendable {
    /// Time since this clock's origin.
    func now() -> Duration
}

/// The system's monotonic clock (`ContinuousClock`: it keeps counting while the machine sleeps).
public struct SystemMonotonicClock: MonotonicClock {
    private let origin = ContinuousClock.now
    public init() {}
    public func now() -> Duration { ContinuousClock.now - origin }
}

/// A monotonic clock that moves only when told to, for tests.
public final class ManualMonotonicClock: MonotonicClock {
    private let current = Mutex<Duration>(.zero)
    public init() {}
    public func now() -> Duration { current.withLock { $0 } }
    /// Moves the clock forward by `duration`.
    public func advance(by duration: Duration) { current.withLock { $0 += max(duration, .zero) } }
}
