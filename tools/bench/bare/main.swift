// sluice-bench-bare: a bare Hummingbird JSON endpoint, the HTTP ceiling that Sluice's enqueue is
// compared with. It parses the body as JSON and answers 202 with a small JSON object, no storage.
//   sluice-bench-bare PORT
import Foundation
import Hummingbird
import SluiceCore

let port = Int(CommandLine.arguments.dropFirst().first ?? "8100") ?? 8100
let router = Router()
router.post("/v1/tasks") { request, _ -> Response in
    let body = try await request.body.collect(upTo: 1 << 20)
    let json = try JSONCoders.decoder.decode(JSONValue.self, from: Data(buffer: body))
    let answer: JSONValue = ["kind": json["kind"] ?? .null, "state": "queued"]
    return Response(status: .accepted, headers: [.contentType: "application/json"],
                    body: ResponseBody(byteBuffer: ByteBuffer(string: answer.jsonText())))
}
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
