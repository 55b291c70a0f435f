import Foundation
import Hummingbird
import HummingbirdTesting
import SluiceClient
import Testing

/// The Swift client against servers that misbehave, which a live Sluice server never does on cue.
@Suite(.timeLimit(.minutes(2))) struct SluiceClientTests {
    @Test func aServerThatStopsHalfwayThroughItsAnswerIsGivenUpOnAtTheDeadline() async throws {
        // The answer's head and first bytes go out; the rest waits until the test lets it go.
        let (release, releaser) = AsyncStream<Void>.makeStream()
        let router = Router()
        router.get("/v1/tasks/stalled") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(contentLength: 64) { writer in
                try await writer.write(ByteBuffer(string: #"{"id": "stalled", "#))
                for await _ in release { break }
                try await writer.write(ByteBuffer(string: String(repeating: " ", count: 45) + "}"))
                try await writer.finish(nil)
            })
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            var sluice = SluiceClient(baseURL: URL(string: "http://127.0.0.1:\(try #require(client.port))")!)
            sluice.patience = .seconds(1)
            let started = ContinuousClock.now
            await #expect {
                try await sluice.send("GET", "/v1/tasks/stalled")
            } throws: { error in
                (error as? SluiceClient.Failure)?.code == "timeout"
            }
            // Well inside the old 30 s, and not waiting for the body the server still holds.
            #expect(ContinuousClock.now - started < .seconds(10))
            releaser.yield()
            releaser.finish()
        }
    }
}
