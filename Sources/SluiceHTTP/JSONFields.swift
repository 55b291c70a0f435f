import SluiceCore

/// Reads one JSON object of a request strictly: unknown members and wrong types are refused with a
/// 400 that names the member by its path in the body (`pools[2].queues`).
struct JSONFields {
    let object: [String: JSONValue]
    /// Where the object sits in the body, with a trailing dot (`pools[2].`), or empty at the top.
    let prefix: String

    /// `value` as an object whose members are all in `known`.
    init(_ value: JSONValue, at prefix: String = "", known: Set<String>) throws(APIError) {
        guard let object = value.objectValue else { throw .badRequest(prefix.isEmpty ? "body" : String(prefix.dropLast()), "must be a JSON object") }
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw .badRequest(prefix + unknown, "is not a known field; known fields: \(known.sorted().joined(separator: ", "))")
        }
        self.object = object
        self.prefix = prefix
    }

    /// The path of member `name`, for messages.
    func path(_ name: String) -> String { prefix + name }

    /// A member, or nil when absent or null.
    subscript(name: String) -> JSONValue? {
        guard let value = object[name], value != .null else { return nil }
        return value
    }

    func string(_ name: String) throws(APIError) -> String? {
        guard let value = self[name] else { return nil }
        guard let text = value.stringValue else { throw .badRequest(path(name), "must be a string") }
        return text
    }

    /// A whole number (within `range`, when given), or nil when absent.
    func integer(_ name: String, in range: ClosedRange<Int>? = nil) throws(APIError) -> Int? {
        guard let value = self[name] else { return nil }
        guard let number = value.intValue, let int = Int(exactly: number), range?.contains(int) ?? true else {
            throw .badRequest(path(name), "must be a whole number" + (range.map { " from \($0.lowerBound) to \($0.upperBound)" } ?? ""))
        }
        return int
    }

    /// A finite number (within `range`, when given), or nil when absent.
    func number(_ name: String, in range: ClosedRange<Double>? = nil) throws(APIError) -> Double? {
        guard let value = self[name] else { return nil }
        guard let number = value.doubleValue, number.isFinite, range?.contains(number) ?? true else {
            throw .badRequest(path(name), "must be a number" + (range.map { " from \($0.lowerBound.formatted()) to \($0.upperBound.formatted())" } ?? ""))
        }
        return number
    }

    func bool(_ name: String) throws(APIError) -> Bool? {
        guard let value = self[name] else { return nil }
        guard case .bool(let flag) = value else { throw .badRequest(path(name), "must be true or false") }
        return flag
    }

    /// An array of at most `limit` elements, or nil when absent.
    func array(_ name: String, limit: Int) throws(APIError) -> [JSONValue]? {
        guard let value = self[name] else { return nil }
        guard case .array(let items) = value, items.count <= limit else { throw .badRequest(path(name), "must be an array of at most \(limit) elements") }
        return items
    }

    /// A queue, kind or pool name (see `EnqueueRequest.checkName`).
    func name(_ name: String) throws(APIError) -> String? {
        guard let text = try string(name) else { return nil }
        try Self.checkName(text, at: path(name))
        return text
    }

    /// Refuses a name that is not 1 to 128 of letters, digits and `_ - . :`, naming where it was.
    static func checkName(_ text: String, at path: String) throws(APIError) {
        do {
            try EnqueueRequest.checkName(text, field: path)
        } catch {
            throw .badRequest(path, String(error.message.drop(while: { $0 != ":" }).dropFirst(2)))
        }
    }

    /// Member `name`, or a 400 saying it is required.
    func required<T>(_ name: String, _ read: (String) throws(APIError) -> T?) throws(APIError) -> T {
        guard let value = try read(name) else { throw .badRequest(path(name), "is required") }
        return value
    }
}
