import Foundation

/// A JSON document: task arguments, results and anything else users hand us as JSON.
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// The members of an object, or `nil`.
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { o } else { nil } }
    /// A string, or `nil`.
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    /// A number as a `Double`, or `nil`.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }
    /// An integral number, or `nil`.
    public var intValue: Int64? {
        switch self {
        case .int(let i): i
        case .double(let d) where d.rounded() == d && abs(d) < 9e15: Int64(d)
        default: nil
        }
    }

    /// Member lookup on an object; `nil` elsewhere.
    public subscript(key: String) -> JSONValue? { objectValue?[key] }

    /// Equal as JSON: numbers by value, so `1e16` and `10000000000000000` are one number (a
    /// database's JSON type may read back either); everything else as `==`.
    public func sameJSON(as other: JSONValue) -> Bool {
        switch (self, other) {
        case let (.int(a), .double(b)), let (.double(b), .int(a)): return Double(a) == b
        case let (.array(a), .array(b)): return a.count == b.count && zip(a, b).allSatisfy { $0.sameJSON(as: $1) }
        case let (.object(a), .object(b)):
            return a.count == b.count && a.allSatisfy { key, value in b[key].map { value.sameJSON(as: $0) } ?? false }
        default: return self == other
        }
    }

    /// Why a store could not keep this value, if it could not: a NUL character in a string or key
    /// (JSON allows `"\u0000"`, PostgreSQL's text and jsonb refuse it), or arrays and objects nested more than `nesting` levels (the
    /// JSON readers that read it back stop at 512, and a row that cannot be read back strands
    /// every claim and rescue that meets it). One pass over the value.
    public func unstorable(nesting: Int) -> Unstorable? {
        switch self {
        case .null, .bool, .int, .double: return nil
        case .string(let s): return s.utf8.contains(0) ? .nul : nil
        case .array(let a):
            guard nesting > 0 else { return .tooDeep }
            for item in a { if let issue = item.unstorable(nesting: nesting - 1) { return issue } }
            return nil
        case .object(let o):
            guard nesting > 0 else { return .tooDeep }
            for (key, value) in o {
                if key.utf8.contains(0) { return .nul }
                if let issue = value.unstorable(nesting: nesting - 1) { return issue }
            }
            return nil
        }
    }

    /// See `unstorable(nesting:)`.
    public enum Unstorable: Sendable, Hashable {
        case nul, tooDeep
    }

    /// How deep arrays and objects may nest in args and results.
    public static let maxNesting = 100

    /// Element lookup in an array; `nil` elsewhere or out of range.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }

    /// Compact JSON text (RFC 8259) with object keys sorted, so equal documents have equal text.
    ///
    /// Written directly rather than through `JSONEncoder`: every response and every stored task is
    /// encoded here, and the Codable path took a fifth of the server's CPU under load (measured with
    /// perf; see docs/BENCHMARKS.md). Decoding still goes through `JSONDecoder`.
    public func jsonText() -> String { String(decoding: jsonBytes(), as: UTF8.self) }

    /// The compact JSON text as UTF-8 bytes, ready for a response body.
    public func jsonBytes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(to: &out)
        return out
    }

    /// Appends the compact JSON text (keys sorted) to `out`. Writes UTF-8 bytes: appending to a
    /// String scalar by scalar cost a fifth of the server's CPU.
    public func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): out.append(contentsOf: String(i).utf8)
        case .double(let d):
            // JSON has no NaN or infinity; integral values keep a fraction so they read back as doubles.
            // (`String(format:)` cost more than the rest of a task's encoding together.)
            if !d.isFinite {
                out.append(contentsOf: "null".utf8)
            } else if d == d.rounded() && abs(d) < 1e15 {
                if d == 0 && d.sign == .minus { out.append(UInt8(ascii: "-")) }
                out.append(contentsOf: String(Int64(d)).utf8)
                out.append(contentsOf: ".0".utf8)
            } else {
                out.append(contentsOf: "\(d)".utf8)
            }
        case .string(let text): JSONValue.writeString(text, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                item.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            // Sorted as pairs: looking each value up again by its key hashed every key twice.
            for (index, member) in members.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(member.key, to: &out)
                out.append(UInt8(ascii: ":"))
                member.value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// Appends `text` as a JSON string. Only ASCII bytes ever need escaping, so bytes of multi-byte
    /// UTF-8 sequences are copied as they are.
    public static func writeString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            var plainStart = 0
            for (index, byte) in bytes.enumerated() where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                out.append(contentsOf: bytes[plainStart..<index])
                switch byte {
                case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
                case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
                case UInt8(ascii: "\n"): out.append(contentsOf: "\\n".utf8)
                case UInt8(ascii: "\r"): out.append(contentsOf: "\\r".utf8)
                case UInt8(ascii: "\t"): out.append(contentsOf: "\\t".utf8)
                case 0x08: out.append(contentsOf: "\\b".utf8)
                case 0x0C: out.append(contentsOf: "\\f".utf8)
                default: out.append(contentsOf: "\\u00".utf8 + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
                }
                plainStart = index + 1
            }
            out.append(contentsOf: bytes[plainStart...])
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Parses JSON text, keeping numbers as written (see `init(parsing:)`).
    public init(jsonText: String) throws {
        switch jsonText {
        case "null": self = .null
        case "{}": self = [:]
        case "[]": self = []
        default: self = try JSONValue(parsing: Data(jsonText.utf8))
        }
    }

    /// Parses JSON, keeping numbers as written: `3.0` stays a double and `3` an int. (Foundation's
    /// `JSONDecoder` reads `3.0` as an int when asked for one first, so a task's args would come
    /// back from one store as `3` and from another as `3.0`.) Malformed input throws the decoder's
    /// error, which says where.
    public init(parsing data: Data) throws {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            // The decoder's message names the position; it fails on the same input.
            self = try JSONCoders.decoder.decode(JSONValue.self, from: data)
            return
        }
        self = try JSONValue(foundation: object)
    }

    private init(foundation object: Any) throws {
        // Containers and strings first: testing a Swift dictionary against a class (`is NSNull`,
        // `as NSNumber`) bridges the whole dictionary to Foundation just to say no.
        switch object {
        case let members as [String: Any]: self = .object(try members.mapValues(JSONValue.init(foundation:)))
        case let string as String: self = .string(string)
        case let items as [Any]: self = .array(try items.map(JSONValue.init(foundation:)))
        case is NSNull: self = .null
        case let number as NSNumber:
            // JSONSerialization keeps the kind in the number's type code: c is a boolean, d a number
            // written with a fraction or exponent, Q an integer beyond Int64.
            switch String(cString: number.objCType) {
            case "c", "B": self = .bool(number.boolValue)
            case "d", "f": self = .double(number.doubleValue)
            case "Q" where number.uint64Value > UInt64(Int64.max): self = .double(number.doubleValue)
            default: self = .int(number.int64Value)
            }
        default: throw SluiceError(.invalidArgument, "a JSON value of an unknown kind: \(type(of: object))")
        }
    }
}

extension JSONValue: ExpressibleByDictionaryLiteral, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByFloatLiteral, ExpressibleByNilLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { $1 }))
    }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(nilLiteral: ()) { self = .null }
}

/// Shared, immutable coders: making one per call cost more than the encoding itself. Both are
/// documented as safe to use from several threads at once.
public enum JSONCoders {
    /// Compact output with sorted keys, so equal documents have equal text.
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
    public static let decoder = JSONDecoder()
}
