import Hummingbird

/// Requires `Authorization: Bearer TOKEN` with one of the configured tokens on every route but
/// `/healthz` and the console (`/ui/`, which signs in with a cookie of its own: `ConsoleSessions`).
/// Tokens are compared in constant time and never logged.
struct BearerAuth<Context: RequestContext>: RouterMiddleware {
    let tokens: [[UInt8]]

    init(tokens: [String]) {
        self.tokens = tokens.map { Array($0.utf8) }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path == "/healthz" || request.uri.path == "/ui" || request.uri.path.hasPrefix("/ui/") {
            return try await next(request, context)
        }
        // The scheme name is case-insensitive (RFC 7235); the token is not.
        guard let header = request.headers[.authorization], header.prefix(7).lowercased() == "bearer " else {
            throw APIError(.unauthorized, "unauthorized", "send Authorization: Bearer TOKEN", headers: [.wwwAuthenticate: "Bearer"])
        }
        let given = Array(header.utf8.dropFirst(7))
        // Check every token, whatever matches, so timing tells nothing about which or how much.
        var matched = false
        for token in tokens { matched = Self.constantTimeEqual(given, token) || matched }
        guard matched else {
            throw APIError(.unauthorized, "unauthorized", "the bearer token is not valid", headers: [.wwwAuthenticate: "Bearer error=\"invalid_token\""])
        }
        return try await next(request, context)
    }

    /// Equal bytes, in time that depends only on the lengths.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
