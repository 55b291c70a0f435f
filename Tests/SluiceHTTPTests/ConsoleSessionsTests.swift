import Foundation
@testable import SluiceHTTP
import Testing

/// The console's stateless sessions, on injected times.
@Suite struct ConsoleSessionsTests {
    @Test func aSessionLastsTwelveHoursAndOnlyWhileItsTokenIsKept() throws {
        let sessions = ConsoleSessions(tokens: ["s3cret", "other"])
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let cookie = try #require(sessions.session(for: "s3cret", now: now))
        #expect(!cookie.contains("s3cret"))
        #expect(sessions.isValid(session: cookie, now: now))
        #expect(sessions.isValid(session: cookie, now: now.addingTimeInterval(12 * 3600 - 1)))
        #expect(!sessions.isValid(session: cookie, now: now.addingTimeInterval(12 * 3600)))
        #expect(!sessions.isValid(session: cookie, now: now.addingTimeInterval(-3600)), "issued in the future")
        // The time of issue is signed: a later one with the same code is refused.
        let code = try #require(cookie.split(separator: ".").last)
        #expect(!sessions.isValid(session: "\(1_800_000_000 + 100).\(code)", now: now.addingTimeInterval(200)))
        // Its token removed, it no longer opens the console.
        #expect(!ConsoleSessions(tokens: ["other"]).isValid(session: cookie, now: now))
        #expect(sessions.session(for: "guess", now: now) == nil)
        #expect(!sessions.isValid(session: "forged", now: now))
    }
}
