import Foundation
import Hummingbird
import HummingbirdTesting
import SluiceClient
import SluiceCore
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
    /// Something else at the address is said to be something else: a page with 200, a redirect (not
    /// followed: it turned a POST into a GET), an HTML 404, a server that never answers. And a query
    /// value goes out encoded, `+` included (the server reads `+` as a space).
    @Test func answersThatAreNotSluicesAreSaidToBeSo() async throws {
        let router = Router()
        router.post("/page/v1/tasks") { _, _ in Response(status: .ok, headers: [.contentType: "text/html"], body: .init(byteBuffer: ByteBuffer(string: "<html>sign in</html>"))) }
        router.post("/moved/v1/tasks") { _, _ in Response(status: .movedPermanently, headers: [.location: "https://elsewhere.test/v1/tasks"]) }
        router.get("/missing/v1/tasks") { _, _ in Response(status: .notFound, headers: [.contentType: "text/html"], body: .init(byteBuffer: ByteBuffer(string: "<h1>404</h1>"))) }
        router.get("/silent/v1/tasks") { _, _ -> Response in
            try await Task.sleep(for: .seconds(20))
            return Response(status: .ok)
        }
        router.get("/echo/v1/tasks") { request, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: .init(byteBuffer: ByteBuffer(bytes: JSONValue.object(["query": .string(request.uri.query ?? "")]).jsonBytes())))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            func failure(_ base: String, _ method: String) async -> SluiceClient.Failure? {
                var sluice = SluiceClient(baseURL: URL(string: "http://127.0.0.1:\(port)/\(base)")!)
                sluice.patience = .seconds(1)
                do { _ = try await sluice.send(method, "/v1/tasks"); return nil } catch { return error as? SluiceClient.Failure }
            }
            let page = await failure("page", "POST")
            #expect(page?.code == "not_sluice" && page?.message.contains("is --url (or SLUICE_URL) a Sluice server?") == true, "\(String(describing: page))")
            let moved = await failure("moved", "POST")
            #expect(moved?.code == "redirect" && moved?.message.contains("redirected to https://elsewhere.test/v1/tasks") == true, "\(String(describing: moved))")
            #expect(await failure("missing", "GET")?.code == "not_sluice")
            let silent = await failure("silent", "GET")
            #expect(silent?.code == "timeout" && silent?.message.contains("gave no answer in time") == true, "\(String(describing: silent))")
            let echo = SluiceClient(baseURL: URL(string: "http://127.0.0.1:\(port)/echo")!)
            let query = try await echo.send("GET", "/v1/tasks", query: ["args.note": "a+b c&d=e/f"]).body["query"]
            #expect(query == "args.note=a%2Bb%20c%26d%3De%2Ff", "\(String(describing: query))")
        }
    }
}
