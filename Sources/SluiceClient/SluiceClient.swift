import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SluiceCore

/// A client for the Sluice HTTP API (what `sluice enqueue`, `status`, `tasks`, `pools` and `cancel`
/// use). Errors come back as `SluiceClient.Failure` carrying the server's status, code and message.
/// Built on AsyncHTTPClient (NIO, already in the binary for `serve`) rather than URLSession, whose
/// libcurl and TLS libraries cost every `sluice` process about 4 MB of resident memory.
public struct SluiceClient: Sendable {
    /// An error answer from the server, or no answer.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var status: Int
        public var code: String
        public var message: String
        public var field: String?
        public var description: String { status == 0 ? message : "\(message) (HTTP \(status), \(code))" }

        public init(status: Int, code: String, message: String, field: String? = nil) {
            self.status = status
            self.code = code
            self.message = message
            self.field = field
        }
    }

    public let baseURL: URL
    public let token: String?
    /// How long a server may take to answer beyond the `?wait` a request asked for, before the
    /// request fails with code `timeout`.
    public var patience: Duration = .seconds(30)
    private let http: HTTPClient

    /// With `failFast`, a refused connection fails the request at once, as curl does: for the
    /// command line, whose one request is aimed at a server that may not be running. Otherwise
    /// connecting is retried with a backoff until the request's deadline, which rides out a
    /// transient failure under load for a program sending many requests at once.
    public init(baseURL: URL, token: String? = nil, failFast: Bool = false) {
        self.baseURL = baseURL
        self.token = token
        http = failFast ? Self.failingFast : Self.retrying
    }

    /// `HTTPClient.shared`'s settings but with no bound per read: the server answers a `?wait=`
    /// only when the task ends, and the request's own deadline bounds that (`exchange`). Both live
    /// as long as the process, like the shared client, and are never shut down.
    private static let retrying = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration(retrying: true))
    private static let failingFast = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration(retrying: false))

    private static func configuration(retrying: Bool) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration.singletonConfiguration
        configuration.connectionPool.retryConnectionEstablishment = retrying
        configuration.timeout = .init(connect: .seconds(10), read: nil)
        // A redirect is reported, not followed: following a 301 turns a POST into a GET, and a
        // proxy's sign-in page is no answer from Sluice.
        configuration.redirectConfiguration = .disallow
        return configuration
    }

    /// `text` as one percent-encoded path segment or query part: everything but RFC 3986's
    /// unreserved characters is encoded, `/`, `+`, `&` and `=` included (the server reads a `+` in a
    /// query as a space, as forms send it).
    public static func encoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }

    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// Sends a request; returns the status and JSON body of a 2xx answer, throws `Failure` otherwise.
    /// `path` is sent as it is: a name in it must be `encoded` first. `query` is encoded here.
    @discardableResult
    public func send(_ method: String, _ path: String, query: [String: String] = [:], body: JSONValue? = nil) async throws -> (status: Int, body: JSONValue) {
        var components = URLComponents(url: baseURL, resolvingAgainstBaseURL: false)!
        var base = components.percentEncodedPath
        while base.hasSuffix("/") { base.removeLast() }
        components.percentEncodedPath = base + path
        if !query.isEmpty { components.percentEncodedQuery = query.keys.sorted().map { "\(Self.encoded($0))=\(Self.encoded(query[$0]!))" }.joined(separator: "&") }
        var request = HTTPClientRequest(url: components.url!.absoluteString)
        request.method = HTTPMethod(rawValue: method)
        if let body {
            request.body = .bytes(ByteBuffer(bytes: body.jsonBytes()))
            request.headers.add(name: "Content-Type", value: "application/json")
        }
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        // A server that stops answering is given up on: `patience` beyond any ?wait the request asked for.
        // (A wait the server will refuse, NaN or past its --max-wait, must not break the arithmetic.)
        let asked = query["wait"].flatMap(Double.init).flatMap { $0.isFinite ? min(max($0, 0), 86_400) : nil } ?? 0
        let limit = patience + .milliseconds(Int64(asked * 1000))
        let (response, data) = try await exchange(request, timeout: .nanoseconds(limit.components.seconds * 1_000_000_000 + limit.components.attoseconds / 1_000_000_000))
        let status = Int(response.status.code)
        let json = try? JSONCoders.decoder.decode(JSONValue.self, from: data)
        if (300..<400).contains(status) {
            let location = response.headers.first(name: "location").map { " to \($0)" } ?? ""
            throw Failure(status: status, code: "redirect", message: "\(baseURL.absoluteString) redirected\(location); give the address Sluice answers at with --url or SLUICE_URL")
        }
        // Sluice answers JSON (an object), or nothing at all with 204: anything else came from
        // something else at that address (a proxy's page, another program).
        guard status == 204 || json?.objectValue != nil else {
            let type = response.headers.first(name: "content-type").map { ", \($0)" } ?? ""
            throw Failure(status: status, code: "not_sluice", message: "\(baseURL.absoluteString) answered HTTP \(status) with \(data.count) bytes that are not Sluice's JSON\(type); is --url (or SLUICE_URL) a Sluice server?")
        }
        let answer = json ?? .null
        guard (200..<300).contains(status) else {
            var message = answer["error"]?["message"]?.stringValue ?? "HTTP \(status)"
            if status == 401 { message += "; give the server's token with --token or SLUICE_TOKEN" }
            throw Failure(status: status, code: answer["error"]?["code"]?.stringValue ?? "http_\(status)", message: message,
                          field: answer["error"]?["field"]?.stringValue)
        }
        return (status, answer)
    }

    /// One request and its whole answer. A pooled keep-alive connection can be closed by the
    /// server's idle timeout just as it is reused; the request is then sent once more on a new
    /// connection when that is safe: a read always, and any request whose write found the channel
    /// already closed (it reached nobody). A write the server may have taken is not sent again.
    private func exchange(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> (HTTPClientResponse, Data) {
        var mayRetry = true
        let deadline = NIODeadline.now() + timeout
        while true {
            do {
                // The deadline covers the answer's head; its body, which the server writes at
                // once after the head, gets what is left of it too.
                let response = try await http.execute(request, deadline: deadline)
                let body = try await Self.collect(response, by: deadline)
                return (response, body)
            } catch let error as HTTPClientError where error == .remoteConnectionClosed && mayRetry && request.method == .GET {
                mayRetry = false
            } catch let error as IOError where error.errnoCode == ECONNRESET && mayRetry && request.method == .GET {
                mayRetry = false  // the same race, when the server's close came as a reset
            } catch let error as ChannelError where error == .ioOnClosedChannel && mayRetry {
                mayRetry = false
            } catch let failure as Failure {
                throw failure
            } catch let error as IOError where error.errnoCode == ECONNREFUSED {
                throw Failure(status: 0, code: "unreachable", message: "cannot reach \(baseURL.absoluteString): connection refused, "
                              + "nothing listens there; start the server (sluice serve) or give its address with --url or SLUICE_URL")
            } catch let error as HTTPClientError where error == .deadlineExceeded {
                throw Failure(status: 0, code: "timeout", message: "\(baseURL.absoluteString) took the request but gave no answer in time; "
                              + "is the server overloaded, or is something else listening there?")
            } catch {
                throw Failure(status: 0, code: "unreachable", message: "cannot reach \(baseURL.absoluteString): \(error)")
            }
        }
    }

    /// The answer's body, or `Failure` once `deadline` passes (cancelling the read).
    private static func collect(_ response: HTTPClientResponse, by deadline: NIODeadline) async throws -> Data {
        try await withThrowingTaskGroup(of: Data?.self) { group in
            group.addTask { Data(try await response.body.collect(upTo: 64 << 20).readableBytesView) }
            group.addTask {
                let left = deadline - NIODeadline.now()
                try await Task.sleep(for: .nanoseconds(max(0, left.nanoseconds)))
                return nil
            }
            defer { group.cancelAll() }
            guard let body = try await group.next() ?? nil else {
                throw Failure(status: 0, code: "timeout", message: "the server sent the start of its answer but not the rest in time")
            }
            return body
        }
    }

    /// Enqueues a task described by `body` (the API's POST /v1/tasks fields).
    public func enqueue(_ body: JSONValue, wait: Double? = nil) async throws -> JSONValue {
        try await send("POST", "/v1/tasks", query: wait.map { ["wait": String($0)] } ?? [:], body: body).body
    }

    /// A task, optionally waiting up to `wait` seconds for it to finish.
    public func task(_ id: String, wait: Double? = nil) async throws -> JSONValue {
        try await send("GET", "/v1/tasks/\(Self.encoded(id))", query: wait.map { ["wait": String($0)] } ?? [:]).body
    }
}
