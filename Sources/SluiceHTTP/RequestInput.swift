import Foundation
import Hummingbird
import SluiceCore

/// Reading request input: JSON bodies and `?wait=`.
extension SluiceAPI {
    /// The body as JSON, within the body limit, refusing media types that are not JSON.
    func readJSON(_ request: Request) async throws -> JSONValue {
        // JSON, or curl's default for `-d` (form-urlencoded), read as JSON too; anything else is refused.
        // Form-urlencoded only without an Origin header: a browser sends Origin with every cross-site
        // POST, and a form is the one body a page of another origin can post without asking first.
        if let header = request.headers[.contentType]?.lowercased(),
           case let type = Self.mediaType(header),
           type != "application/json", type != "application/x-www-form-urlencoded" || request.headers[.origin] != nil,
           !(type.hasPrefix("application/") && type.hasSuffix("+json")) {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "send JSON with Content-Type: application/json, not \(header.prefix(100))")
        }
        let buffer = try await request.body.collect(upTo: limits.maxBody)
        let data = Data(buffer: buffer)
        do {
            // Depth-first parsing of hostile nesting is bounded by the body limit and the parser's own limit.
            return try JSONValue(parsing: data)
        } catch {
            throw APIError(.badRequest, "malformed_json", "the body is not valid JSON: \(Self.describe(error))")
        }
    }

    /// The media type of a Content-Type value, parameters and spaces dropped: `application/json` for
    /// `application/json; charset=utf-8`. (Foundation's `trimmingCharacters` went through NSString.)
    static func mediaType(_ header: String) -> Substring {
        if header == "application/json" { return header[...] }
        var type = header.prefix { $0 != ";" }
        while let first = type.first, first == " " || first == "\t" { type.removeFirst() }
        while let last = type.last, last == " " || last == "\t" { type.removeLast() }
        return type
    }

    /// A short description of a JSON parse error.
    static func describe(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error {
            return (context.underlyingError.map { "\($0)" } ?? context.debugDescription).prefix(200).description
        }
        return "\(error)".prefix(200).description
    }

    /// `?wait=SECONDS`, checked against the limit; nil without it.
    func waitSeconds(_ request: Request) throws -> Duration? {
        guard let text = request.uri.queryParameters.get("wait") else { return nil }
        guard let seconds = Double(text), seconds.isFinite, seconds >= 0, seconds <= limits.maxWait else {
            let most = limits.maxWait == limits.maxWait.rounded() ? String(Int(limits.maxWait)) : String(limits.maxWait)
            throw APIError.badRequest("wait", "must be a number of seconds from 0 to \(most)")
        }
        return .milliseconds(Int64(seconds * 1000))
    }
}

extension RequestContext {
    /// Path parameter `key` percent-decoded, as clients encode a name (`mail%3Ahigh` is the queue
    /// `mail:high`): read raw, a pause of `mail%3Ahigh` paused a queue of that name instead.
    func pathParameter(_ key: String) throws(APIError) -> String {
        let raw = parameters.get(key) ?? ""
        guard let decoded = raw.removingPercentEncoding else { throw APIError.badRequest(key, "is not valid percent-encoding") }
        return decoded
    }
}
