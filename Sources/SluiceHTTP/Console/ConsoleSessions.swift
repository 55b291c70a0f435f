import Crypto
import Foundation
import Hummingbird

/// The console's sign-in, without server-side state (so a session outlives a restart): the
/// session cookie is its time of issue and an HMAC of it keyed by one of the API tokens, so it
/// proves the token was known without holding it, and stops working after `lifetime` or when that
/// token is removed, whichever comes first. Without state, signing out cannot revoke a copy of the
/// cookie: the lifetime bounds what a copy is worth. Forms carry a
/// CSRF token from a second cookie (double submit); SameSite=Strict and the origin guard already
/// refuse cross-site posts, the token is a second lock.
struct ConsoleSessions: Sendable {
    /// One key per configured token; empty when the server runs without tokens.
    private let keys: [SymmetricKey]
    /// Signs the notices a change's redirect carries, so that a link made elsewhere cannot put
    /// its own words in the console's notice box. This process's own: a notice shown by another
    /// server process behind the same address is dropped, which costs only the notice.
    private let noticeKey = SymmetricKey(size: .bits256)

    init(tokens: [String]) {
        keys = tokens.map { SymmetricKey(data: Data($0.utf8)) }
    }

    static let noticeParameter = "notice"
    static let noticeMACParameter = "notice_mac"

    /// The query that carries `notice` and its signature.
    func noticeQuery(_ notice: String) -> String {
        "\(Self.noticeParameter)=\(TaskQuery.escape(notice))&\(Self.noticeMACParameter)=\(noticeMAC(notice))"
    }

    private func noticeMAC(_ notice: String) -> String {
        Self.base64URL(HMAC<SHA256>.authenticationCode(for: Data(notice.utf8), using: noticeKey))
    }

    /// The notice among `parameters`, when this process signed it.
    func notice(in parameters: [(String, String)]) -> String? {
        guard let notice = parameters.last(where: { $0.0 == Self.noticeParameter })?.1,
              let mac = parameters.last(where: { $0.0 == Self.noticeMACParameter })?.1 else { return nil }
        let expected = noticeMAC(notice)
        return BearerAuth<SluiceRequestContext>.constantTimeEqual(Array(mac.utf8), Array(expected.utf8)) ? notice : nil
    }

    private static func base64URL(_ code: HMAC<SHA256>.MAC) -> String {
        Data(code).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Whether signing in is required (the server has tokens).
    var required: Bool { !keys.isEmpty }

    static let sessionCookie = "sluice_session"
    /// How long a sign-in lasts.
    static let lifetime: Int64 = 12 * 3600
    static let csrfCookie = "sluice_csrf"
    static let csrfField = "csrf"

    private static func mac(_ key: SymmetricKey, issued: Int64) -> String {
        base64URL(HMAC<SHA256>.authenticationCode(for: Data("sluice console session v2 \(issued)".utf8), using: key))
    }

    /// The session cookie's value for `token`, issued `now`, or `nil` when it is not one of the server's tokens.
    func session(for token: String, now: Date) -> String? {
        let given = Array(token.utf8)
        let issued = Int64(now.timeIntervalSince1970)
        var found: String?
        // Every token is checked, whatever matches, so timing tells nothing.
        for key in keys {
            let candidate = key.withUnsafeBytes { Array($0) }
            if BearerAuth<SluiceRequestContext>.constantTimeEqual(given, candidate) { found = "\(issued).\(Self.mac(key, issued: issued))" }
        }
        return found
    }

    /// Whether `cookie` is a session of one of the server's tokens, issued within `lifetime` of `now`.
    func isValid(session cookie: String, now: Date) -> Bool {
        let parts = cookie.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let issued = Int64(parts[0]) else { return false }
        let age = Int64(now.timeIntervalSince1970) - issued
        guard age >= -60, age < Self.lifetime else { return false }
        let given = Array(parts[1].utf8)
        var matched = false
        for key in keys { matched = BearerAuth<SluiceRequestContext>.constantTimeEqual(given, Array(Self.mac(key, issued: issued).utf8)) || matched }
        return matched
    }

    /// A fresh CSRF token.
    static func newCSRF() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
