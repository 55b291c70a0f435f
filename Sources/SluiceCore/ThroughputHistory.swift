import Foundation
import Synchronization

/// Per queue, how many tasks were enqueued, started, succeeded and failed in each second of the
/// last hour, in ring buffers: fed by store events and pool callbacks as things happen, never by
/// scanning tasks. Covers what this process saw (its own enqueues and the tasks its store finished).
public final class ThroughputHistory: Sendable {
    /// What is counted.
    public enum Event: String, Sendable, CaseIterable {
        case enqueued, started, succeeded, failed
    }

    /// Seconds kept.
    public let capacity: Int
    private let clock: any WallClock
    private let buckets = Mutex<[String: Ring]>([:])

    /// One queue's counts: `counts[event][second % capacity]`, valid while `seconds[slot]` matches.
    struct Ring {
        var seconds: [Int64]
        var counts: [[Int]]
        init(capacity: Int) {
            seconds = Array(repeating: -1, count: capacity)
            counts = Array(repeating: Array(repeating: 0, count: capacity), count: Event.allCases.count)
        }
        mutating func add(_ n: Int, event: Int, second: Int64, slot: Int) {
            if seconds[slot] != second {
                seconds[slot] = second
                for e in counts.indices { counts[e][slot] = 0 }
            }
            counts[event][slot] += n
        }
    }

    public init(clock: any WallClock = SystemClock(), capacity: Int = 3600) {
        self.clock = clock
        self.capacity = max(1, capacity)
    }

    /// Counts `n` events of `queue` now.
    public func add(_ event: Event, queue: String, _ n: Int = 1) {
        guard n > 0 else { return }
        let second = Int64(clock.now().timeIntervalSince1970.rounded(.down))
        let slot = Int(second % Int64(capacity))
        let index = Event.allCases.firstIndex(of: event)!
        // In place: a copy out of the dictionary and back would copy the whole ring (an hour of
        // seconds) on every call, which was a measurable part of each HTTP enqueue.
        buckets.withLock { buckets in buckets[queue, default: Ring(capacity: capacity)].add(n, event: index, second: second, slot: slot) }
    }

    /// The queues seen so far, sorted.
    public var queues: [String] { buckets.withLock { $0.keys.sorted() } }

    /// Per second for the last `seconds` seconds up to now, oldest first: the second's start and each
    /// event's count, for `queue` or, with `nil`, every queue summed.
    public func series(queue: String?, seconds: Int) -> (start: Int64, counts: [Event: [Int]]) {
        let span = min(max(1, seconds), capacity)
        let now = Int64(clock.now().timeIntervalSince1970.rounded(.down))
        let start = now - Int64(span) + 1
        var result = Dictionary(uniqueKeysWithValues: Event.allCases.map { ($0, Array(repeating: 0, count: span)) })
        buckets.withLock { buckets in
            let rings = queue.map { buckets[$0].map { [$0] } ?? [] } ?? Array(buckets.values)
            for ring in rings {
                for offset in 0..<span {
                    let second = start + Int64(offset)
                    let slot = Int(second % Int64(capacity))
                    guard ring.seconds[slot] == second else { continue }
                    for (e, event) in Event.allCases.enumerated() { result[event]![offset] += ring.counts[e][slot] }
                }
            }
        }
        return (start, result)
    }
}
