import Foundation

/// The names a server answers to, and the loopback test the CLI applies before listening without a
/// token. Hosts are compared without their port, case-insensitively, without a trailing dot.
public struct HostNames: Sendable, Hashable {
    /// Names (or addresses) besides the loopback ones: the address bound and `--public-host` names.
    public let names: Set<String>
    /// The `--public-host` names: a proxy in front may serve this server's pages on them with any
    /// scheme and port, so a page there is not another origin. The address bound is not one: a page
    /// on another port of 127.0.0.1 (a developer's other web app) is another origin.
    public let publicNames: Set<String>

    /// The loopback names and addresses, plus `names` (the address bound) and `publicNames`.
    public init(_ names: [String] = [], public publicNames: [String] = []) {
        self.publicNames = Set(publicNames.map(Self.normalize).filter { !$0.isEmpty })
        self.names = Set(names.map(Self.normalize).filter { !$0.isEmpty }).union(self.publicNames)
    }

    /// Whether a `Host` value (`name`, `name:port`, `[v6]:port`) names this server: a loopback name
    /// or address, one of `names`, or any IP literal. An IP literal cannot be a DNS-rebinding attempt
    /// (that needs a name the attacker controls), and a request that reached this socket by address
    /// came from a page served by this very address.
    public func allows(authority: String) -> Bool {
        let host = Self.hostPart(of: authority)
        return Self.isLoopback(host) || Self.isIPAddress(host) || names.contains(Self.normalize(host))
    }

    /// Whether `host` is `localhost`, an IPv4 address in 127.0.0.0/8, or `::1` (brackets allowed).
    /// `127.example.com` is a name like any other, not a loopback address.
    public static func isLoopback(_ host: String) -> Bool {
        let host = normalize(host)
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { bytes in bytes.dropLast().allSatisfy { $0 == 0 } && bytes.last == 1 }
        }
        return false
    }

    /// Whether `host` is an IPv4 or IPv6 address literal (brackets allowed), not a name.
    public static func isIPAddress(_ host: String) -> Bool {
        let host = normalize(host)
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// Whether `host` is the any-address (`0.0.0.0`, `::`), which binds every interface.
    public static func isWildcard(_ host: String) -> Bool {
        let host = normalize(host)
        return host == "0.0.0.0" || host == "::" || host == "0:0:0:0:0:0:0:0"
    }

    /// The host of an authority, without its port: `[::1]:80` → `[::1]`, `a.b:80` → `a.b`.
    static func hostPart(of authority: String) -> String {
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            return String(authority[...close])
        }
        // One colon: a port. More than one without brackets: an IPv6 address as given.
        let colons = authority.filter { $0 == ":" }.count
        if colons == 1, let colon = authority.lastIndex(of: ":") { return String(authority[..<colon]) }
        return authority
    }

    /// Lower case, without brackets and without one trailing dot.
    static func normalize(_ host: String) -> String {
        var host = host.lowercased()
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.hasSuffix(".") { host.removeLast() }
        return host
    }
}
