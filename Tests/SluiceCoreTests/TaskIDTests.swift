import Foundation
import SluiceCore
import Testing

@Suite(.timeLimit(.minutes(4))) struct TaskIDTests {
    @Test func idsSortByCreationEvenWithinOneMillisecondAndWhenTheClockStepsBack() {
        let clock = ManualClock()
        let generator = TaskIDGenerator(clock: clock)
        var ids: [TaskID] = []
        for step in 0..<2000 {
            ids.append(generator.next())
            if step % 100 == 99 { clock.advance(by: .milliseconds(1)) }
            if step == 1500 { clock.advance(by: .seconds(-60)) }
        }
        #expect(ids == ids.sorted())
        #expect(Set(ids).count == ids.count)
    }

    @Test func idEncodesItsTime() {
        let clock = ManualClock(Date(timeIntervalSince1970: 1_750_000_123.456))
        let id = TaskIDGenerator(clock: clock).next()
        #expect(abs(id.timestamp.timeIntervalSince1970 - 1_750_000_123.456) < 0.001)
    }

    @Test(arguments: ["", "x", "01ARZ3NDEKTSV4RRFFQ69G5FA", "01ARZ3NDEKTSV4RRFFQ69G5FAVV", "' OR 1=1 --xxxxxxxxxxxxxxxxx",
                      "../../etc/passwd000000000", "01ARZ3NDEKTSV4RRFFQ69G5FAU", "81ARZ3NDEKTSV4RRFFQ69G5FAV"])
    func malformedIDsAreRejected(text: String) {
        #expect(TaskID(text) == nil)
    }

    @Test func canonicalIDsParseCaseInsensitively() {
        #expect(TaskID("01arz3ndektsv4rrffq69g5fav")?.rawValue == "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    }
}

@Suite(.timeLimit(.minutes(4))) struct JSONTextTests {
    static let samples: [JSONValue] = [
        .null, true, false, 0, -42, .int(Int64.max), .int(Int64.min), 0.5, -1e-7, 1e300, 3.0, 12345678.25,
        "", "plain", "quote \" backslash \\ slash /", "lines\nand\ttabs\r", "\u{0}\u{1}\u{1F}\u{7F}", "ünïcødé 🚀 \u{2028}",
        [], [:], [1, "two", [3.5, nil], ["k": false]], ["b": 1, "a": ["z": [], "y": "é"], "": .null, "\"": "\\"],
    ]

    @Test(arguments: samples)
    func roundTripsThroughFoundationsDecoder(value: JSONValue) throws {
        let text = value.jsonText()
        let decoded = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        // Doubles that are whole numbers may come back as ints; compare by value.
        #expect(decoded.normalized == value.normalized, "\(text)")
        #expect(!text.contains("\n") && !text.unicodeScalars.contains { $0.value < 0x20 })
    }

    /// Sluice's own parser gives back exactly what was written: `3.0` a double, `3` an int, `true` a bool.
    /// (Not `Int64.min`: Foundation's JSONSerialization reads -9223372036854775808 as a double, in
    /// every store alike.)
    @Test(arguments: samples.filter { $0 != .int(.min) })
    func roundTripsThroughItsOwnParserKeepingEachKind(value: JSONValue) throws {
        let back = try JSONValue(jsonText: value.jsonText())
        #expect(back == value, "\(value.jsonText()) came back as \(back)")
    }

    @Test func wholeDoublesKeepAFraction() {
        #expect(JSONValue.double(3).jsonText() == "3.0" && JSONValue.double(-2).jsonText() == "-2.0")
        #expect(JSONValue.double(-0.0).jsonText() == "-0.0" && JSONValue.double(1e14).jsonText() == "100000000000000.0")
        #expect(JSONValue.double(1e16).jsonText() == "1e+16")
    }

    @Test func keysAreSortedAndOutputIsCompact() {
        let value: JSONValue = ["b": 1, "a": ["d": true, "c": nil]]
        #expect(value.jsonText() == #"{"a":{"c":null,"d":true},"b":1}"#)
        #expect(JSONValue.double(.nan).jsonText() == "null" && JSONValue.double(.infinity).jsonText() == "null")
        #expect(JSONValue.string("\u{8}\u{C}").jsonText() == #""\b\f""#)
    }
}

extension JSONValue {
    /// Whole doubles as ints, recursively, for comparing values across a round trip.
    var normalized: JSONValue {
        switch self {
        case .double(let d) where d == d.rounded() && abs(d) < 9e15: return .int(Int64(d))
        case .array(let items): return .array(items.map(\.normalized))
        case .object(let members): return .object(members.mapValues(\.normalized))
        default: return self
        }
    }
}
