import Foundation
import Hummingbird
import SluiceCore

/// An error as the API answers it: a status, and `{"error": {"code", "message", "field"?}}`.
public struct APIError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var field: String?
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, field: String? = nil, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var body: [String: JSONValue] = ["code": .string(code), "message": .string(message)]
        if let field { body["field"] = .string(field) }
        return jsonResponse(["error": .object(body)], status: status, headers: headers)
    }

    /// The answer for an error the store or the model raised.
    public init(_ error: SluiceError) {
        switch error.code {
        case .notFound: self.init(.notFound, error.code.rawValue, error.message)
        case .invalidTransition, .leaseLost: self.init(.conflict, error.code.rawValue, error.message)
        case .invalidArgument: self.init(.badRequest, error.code.rawValue, error.message, field: error.field)
        case .idempotencyConflict: self.init(.conflict, error.code.rawValue, error.message, field: error.field ?? "idempotency_key")
        case .overloaded: self.init(.serviceUnavailable, error.code.rawValue, error.message, field: error.field, headers: [.retryAfter: "1"])
        case .storage, .closed:
            self.init(.serviceUnavailable, error.code.rawValue, "the task store cannot take this now: \(error.message)",
                      headers: [.retryAfter: "1"])
        default: self.init(.internalServerError, error.code.rawValue, error.message)
        }
    }

    static func badRequest(_ field: String, _ message: String) -> APIError {
        APIError(.badRequest, "invalid_argument", "\(field): \(message)", field: field)
    }
}
