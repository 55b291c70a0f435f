import Foundation
import Synchronization

/// A task's identifier: a ULID (48-bit millisecond time + 80 random bits, Crockford base32), so ids
/// sort by creation as plain strings, in SQL and in Swift alike.
public struct TaskID: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// The 26-character canonical form.
    public let rawValue: String

    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// Parses a canonical id; `nil` for anything that is not 26 characters of Crockford base32
    /// (such ids can never exist, so callers can answer "not found" without a query).
    public init?(_ text: String) {
        let upper = text.uppercased()
        guard upper.utf8.count == 26, upper.utf8.allSatisfy({ TaskID.alphabet.contains($0) }),
              let first = upper.utf8.first, first <= UInt8(ascii: "7") else { return nil }
        rawValue = upper
    }

    init(unchecked: String) { rawValue = unchecked }

    public var description: String { rawValue }
    public static func < (a: TaskID, b: TaskID) -> Bool { a.rawValue < b.rawValue }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = TaskID(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a task id: \(text)"))
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    /// The creation time encoded in the id.
    public var timestamp: Date {
        var ms: UInt64 = 0
        for byte in rawValue.utf8.prefix(10) {
            ms = ms << 5 | UInt64(TaskID.alphabet.firstIndex(of: byte)!)
        }
        return Date(timeIntervalSince1970: Double(ms) / 1000)
    }

    /// The smallest id that could be made at `date`: ids sort by creation, so a time range is an id
    /// range, which every store answers from its primary key.
    public static func lowerBound(at date: Date) -> TaskID {
        var ms = UInt64(max(0, min(date.timeIntervalSince1970 * 1000, Double(UInt64(1) << 48 - 1))).rounded(.down))
        var time = [UInt8](repeating: 0, count: 10)
        for i in (0..<10).reversed() {
            time[i] = alphabet[Int(ms & 31)]
            ms >>= 5
        }
        return TaskID(unchecked: String(decoding: time, as: UTF8.self) + String(repeating: "0", count: 16))
    }

    /// The ids that begin with `prefix` (case-insensitive), as a closed range; `nil` when no id can
    /// (a character outside Crockford base32, or longer than an id).
    public static func range(prefix: String) -> ClosedRange<TaskID>? {
        let upper = prefix.uppercased()
        guard upper.utf8.count <= 26, upper.utf8.allSatisfy({ alphabet.contains($0) }) else { return nil }
        let pad = 26 - upper.utf8.count
        guard let low = TaskID(upper + String(repeating: "0", count: pad)) else { return nil }
        return low...TaskID(unchecked: upper + String(repeating: "Z", count: pad))
    }
}

/// Makes ids that increase strictly within a process, even within one millisecond and even when
/// the clock steps backwards (the random part is incremented instead).
public final class TaskIDGenerator: Sendable {
    private struct Last { var millis: UInt64 = 0; var high: UInt16 = 0; var low: UInt64 = 0 }
    private let last = Mutex(Last())
    private let clock: any WallClock

    public init(clock: any WallClock) { self.clock = clock }

    /// The next id.
    public func next() -> TaskID {
        let now = UInt64(max(0, clock.now().timeIntervalSince1970 * 1000))
        let (millis, high, low): (UInt64, UInt16, UInt64) = last.withLock { last in
            if now > last.millis {
                last = Last(millis: now, high: .random(in: 0 ... .max), low: .random(in: 0 ... .max))
            } else {
                // Same millisecond or the clock went back: keep the old time, count up.
                let (sum, overflow) = last.low.addingReportingOverflow(1)
                last.low = sum
                if overflow { last.high &+= 1 }
            }
            return (last.millis, last.high, last.low)
        }
        var out = [UInt8](repeating: 0, count: 26)
        var time = millis
        for i in stride(from: 9, through: 0, by: -1) {
            out[i] = TaskID.alphabet[Int(time & 31)]
            time >>= 5
        }
        // 80 random bits: 16 high + 64 low, written as 16 base32 digits.
        var bits = (UInt128(high) << 64) | UInt128(low)
        for i in stride(from: 25, through: 10, by: -1) {
            out[i] = TaskID.alphabet[Int(bits & 31)]
            bits >>= 5
        }
        return TaskID(unchecked: String(decoding: out, as: UTF8.self))
    }
}
