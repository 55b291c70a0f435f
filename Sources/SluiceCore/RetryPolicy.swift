/// Exponential backoff with full jitter and a cap: the delay before attempt n+1 is drawn uniformly
/// from [0, min(cap, base × 2^(n-1))]. Full jitter spreads a burst of failures out instead of
/// retrying them in lockstep.
public struct RetryPolicy: Sendable, Hashable, Codable {
    /// The upper bound of the first retry's delay.
    public var base: Duration
    /// No delay is ever longer than this.
    public var cap: Duration

    public init(base: Duration = .seconds(1), cap: Duration = .seconds(600)) {
        self.base = base
        self.cap = cap
    }

    /// The longest delay after `attempt` (1-based) failed.
    public func ceiling(afterAttempt attempt: Int) -> Duration {
        let exponent = min(max(attempt - 1, 0), 40)
        let grown = base.seconds * Double(UInt64(1) << exponent)
        return .milliseconds(Int64(min(cap.seconds, grown) * 1000))
    }

    /// The delay after `attempt` failed, given a uniform draw `unit` in [0, 1].
    public func delay(afterAttempt attempt: Int, unit: Double) -> Duration {
        let ceiling = ceiling(afterAttempt: attempt).seconds
        return .milliseconds(Int64(ceiling * min(max(unit, 0), 1) * 1000))
    }
}
