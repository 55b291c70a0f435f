import Foundation
import Hummingbird
import HummingbirdTesting
import SluiceCore
import SluiceHTTP
import SluiceTestSupport
import Testing

/// Shutdown does not wait for long polls: requests waiting with ?wait= answer at once.
@Suite(.timeLimit(.minutes(4))) struct ShutdownTests {
    @Test func waitingRequestsAreAnsweredWhenShutdownBegins() async throws {
        try await Harness().testAPI { client, _, api in
            // No pool here: a task delayed ten minutes stays scheduled for the whole test.
            let created = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","delay":600}"#)
            let id = try #require(created.json["id"]?.stringValue)
            async let waiting = within(.seconds(60)) { try await client.send(.get, "/v1/tasks/\(id)?wait=300") }
            #expect(await eventually { api.waitingRequests == 1 })
            api.beginShutdown()
            let answer = try #require(try await waiting, "the waiting request was not answered within 60 s of shutdown")
            #expect(answer.status == .accepted && answer.json["state"] == "scheduled")
            #expect(api.waitingRequests == 0)
            // A wait that starts after shutdown began answers at once too.
            let later = try #require(try await within(.seconds(60)) { try await client.send(.post, "/v1/tasks?wait=300", #"{"kind":"echo","delay":600}"#) })
            #expect(later.status == .accepted && later.json["state"] == "scheduled")
        }
    }
}
