import Foundation
import Hummingbird
import HummingbirdTesting
import SluiceCore
import SluiceHTTP
import SluicePool
import SluiceSQLite
import SluiceStore
import SluiceTestSupport

/// An API over a fresh SQLite store, optionally with a running worker, for router-level tests.
struct Harness: Sendable {
    let store: SQLiteTaskStore
    let memory: MemoryTaskStore
    let dir: TempDir

    init() throws {
        dir = try TempDir()
        store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: dir.path("api.db")))
        memory = MemoryTaskStore()
    }

    /// Runs `body` against the router; with `pool`, a worker runs the tasks meanwhile.
    func test(pool: Int? = nil, tokens: [String] = [], limits: SluiceAPI.Limits = SluiceAPI.Limits(),
              _ body: @escaping @Sendable (any TestClientProtocol, Worker?) async throws -> Void) async throws {
        defer { dir.remove() }
        let registry = HandlerRegistry.builtin()
        var options = WorkerOptions()
        options.heartbeatInterval = .milliseconds(100)
        options.registrationInterval = .milliseconds(100)
        let worker = try pool.map {
            try Worker(store: store, ephemeral: memory, pools: [PoolConfiguration(name: "default", queues: ["default"], concurrency: $0)],
                       registry: registry, options: options)
        }
        let api = SluiceAPI(store: store, memory: worker == nil ? nil : memory, worker: worker, kinds: registry.kinds, tokens: tokens, limits: limits)
        let app = Application(router: api.router())
        try await withThrowingTaskGroup(of: Void.self) { group in
            if let worker { group.addTask { try await worker.run() } }
            do {
                try await app.test(.router) { client in try await body(client, worker) }
            } catch {
                worker?.beginShutdown()
                throw error
            }
            worker?.beginShutdown()
            try await group.waitForAll()
        }
    }
}

extension TestResponse {
    /// The body as JSON.
    var json: JSONValue { (try? JSONValue(jsonText: String(buffer: body))) ?? .null }
    /// The error code of an error body.
    var errorCode: String? { json["error"]?["code"]?.stringValue }
    var errorField: String? { json["error"]?["field"]?.stringValue }
}

extension TestClientProtocol {
    /// Sends a JSON body (a string, so tests can send broken JSON too).
    func send(_ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil, headers: HTTPFields = [.contentType: "application/json"]) async throws -> TestResponse {
        try await execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
    }
}
