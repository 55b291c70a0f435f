import Hummingbird

/// Refuses what a web browser can be made to send: a request from a page of another origin (a
/// cross-site form post or fetch: the `Origin` header names another scheme, host or port), and a
/// request whose `Host` is not one of this server's names (DNS rebinding: a page whose name the
/// attacker points at 127.0.0.1 is same-origin with itself, but its `Host` is the attacker's name).
/// Requests without `Origin` (curl, programs) and without `Host` (HTTP/1.0 tools) are not browsers'
/// cross-site requests and pass. Applied with and without tokens; `/healthz` skips the `Host` check
/// only, so that probes may use any name.
struct OriginGuard<Context: RequestContext>: RouterMiddleware {
    let hosts: HostNames

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let authority = request.head.authority
        if let authority, request.uri.path != "/healthz", !hosts.allows(authority: authority) {
            throw APIError(.forbidden, "forbidden_host",
                           "Host \(authority.prefix(100)) is not a name of this server; start it with --public-host NAME to answer to that name")
        }
        if let origin = request.headers[.origin], !Self.sameOrigin(origin, authority: authority, hosts: hosts) {
            throw APIError(.forbidden, "forbidden_origin",
                           "requests from pages of another origin (\(origin.prefix(100))) are refused; call the API from a program, or name the page's host with --public-host")
        }
        return try await next(request, context)
    }

    /// Whether `origin` (`scheme://host[:port]`) is the origin of this request, `http://` and its
    /// `Host` (this server speaks plain HTTP), or a page on one of the `--public-host` names, with any
    /// scheme and port: a proxy in front may terminate TLS and rewrite `Host`. `null` is never.
    static func sameOrigin(_ origin: String, authority: String?, hosts: HostNames) -> Bool {
        let parts = origin.split(separator: "://", maxSplits: 1)
        guard parts.count == 2, parts[0] == "http" || parts[0] == "https", !parts[1].contains("/") else { return false }
        let originAuthority = String(parts[1])
        let originHost = HostNames.hostPart(of: originAuthority)
        if hosts.publicNames.contains(HostNames.normalize(originHost)) { return true }
        guard parts[0] == "http", let authority else { return false }
        return HostNames.normalize(originHost) == HostNames.normalize(HostNames.hostPart(of: authority))
            && port(originAuthority) == port(authority)
    }

    /// The port of an `http://` authority: the one given, or 80.
    static func port(_ authority: String) -> Int? {
        let host = HostNames.hostPart(of: authority)
        let rest = authority.dropFirst(host.count)
        guard rest.hasPrefix(":") else { return 80 }
        return Int(rest.dropFirst())
    }
}
