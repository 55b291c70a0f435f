import Foundation
import Hummingbird
import HummingbirdTesting
import SluiceCore
import SluiceHTTP
import SluiceTestSupport
import Testing

/// What a web page can make a browser send, refused; what curl and programs send, answered.
@Suite(.timeLimit(.minutes(4))) struct OriginGuardTests {
    static let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

    static func with(_ headers: HTTPFields, origin: String) -> HTTPFields {
        var headers = headers
        headers[.origin] = origin
        return headers
    }

    @Test func pagesOfAnotherOriginAreRefused() async throws {
        try await Harness().test { client, _ in
            // curl: no Origin; its default form type is still read as JSON.
            #expect(try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#, headers: Self.form).status == .accepted)
            for origin in ["http://evil.example", "https://evil.example", "http://localhost:9999", "https://localhost", "http://127.0.0.1",
                           "http://localhost.evil.example", "http://localhost/path", "null", "file://", ""] {
                // A cross-site form post (no preflight) and a cross-site fetch with JSON.
                for headers in [Self.with(Self.form, origin: origin), Self.with([.contentType: "application/json"], origin: origin)] {
                    let refused = try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#, headers: headers)
                    #expect(refused.status == .forbidden && refused.errorCode == "forbidden_origin", "\(origin)")
                }
                let read = try await client.send(.get, "/v1/tasks", headers: [.origin: origin])
                #expect(read.status == .forbidden && read.errorCode == "forbidden_origin", "\(origin)")
            }
            // The test client's Host is localhost (port 80): a page of that origin is same-origin.
            for origin in ["http://localhost", "http://LOCALHOST:80"] {
                let same = try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#, headers: Self.with([.contentType: "application/json"], origin: origin))
                #expect(same.status == .accepted, "\(origin)")
            }
            // A page, even of this origin, must send JSON as JSON: a form body is not read as JSON when Origin is present.
            let sameForm = try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#, headers: Self.with(Self.form, origin: "http://localhost"))
            #expect(sameForm.status == .unsupportedMediaType)
            #expect(try await harnessCount(client) == 3, "the curl post and the two same-origin posts; nothing refused was stored")
        }
    }

    @Test func originIsCheckedWithTokensToo() async throws {
        try await Harness().test(tokens: ["t"]) { client, _ in
            var headers: HTTPFields = [.contentType: "application/json", .authorization: "Bearer t"]
            #expect(try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#, headers: headers).status == .accepted)
            headers[.origin] = "http://evil.example"
            let refused = try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#, headers: headers)
            #expect(refused.status == .forbidden && refused.errorCode == "forbidden_origin")
        }
    }

    @Test func foreignHostNamesAreRefused() async throws {
        try await Harness().testAPI(hosts: HostNames(["127.0.0.1"], public: ["sluice.example.com"]), live: true) { client, _, _ in
            for host in ["localhost:8000", "LocalHost", "127.0.0.1:1", "127.9.8.7", "[::1]:8000", "sluice.example.com", "Sluice.Example.Com.:443",
                         "10.1.2.3:8000", "[fe80::1]:80"] {
                let answered = try await client.send(host: host, .get, "/v1/tasks")
                #expect(answered.status == .ok, "\(host) → \(answered.status)")
            }
            for host in ["evil.example", "evil.example:8000", "127.example.com", "localhost.evil.example", "sluice.example.com.evil.example"] {
                let refused = try await client.send(host: host, .get, "/v1/tasks")
                #expect(refused.status == .forbidden && refused.errorCode == "forbidden_host", "\(host) → \(refused.status)")
            }
            // DNS rebinding: the attacker's page is same-origin with its own name, which now points here.
            let rebound = try await client.send(host: "evil.example:8000", .post, "/v1/tasks", #"{"kind":"echo"}"#,
                                                headers: [.contentType: "application/json", .origin: "http://evil.example:8000"])
            #expect(rebound.status == .forbidden && rebound.errorCode == "forbidden_host")
            // Probes may use any name; /healthz tells nothing about tasks.
            #expect(try await client.send(host: "probe.internal", .get, "/healthz").status == .ok)
            // A proxy on a public name may rewrite Host; its pages are not another origin.
            let proxied = try await client.send(host: "127.0.0.1:8000", .post, "/v1/tasks", #"{"kind":"echo"}"#,
                                                headers: [.contentType: "application/json", .origin: "https://sluice.example.com"])
            #expect(proxied.status == .accepted)
            // The address bound is not a public name: a page on another port of it (a developer's
            // other web app, or a dev server) is another origin; the same port is this one.
            for origin in ["http://127.0.0.1:3000", "https://127.0.0.1:5173", "https://127.0.0.1:8000"] {
                let other = try await client.send(host: "127.0.0.1:8000", .post, "/v1/tasks", #"{"kind":"echo"}"#,
                                                  headers: [.contentType: "application/json", .origin: origin])
                #expect(other.status == .forbidden && other.errorCode == "forbidden_origin", "\(origin) → \(other.status)")
            }
            let own = try await client.send(host: "127.0.0.1:8000", .post, "/v1/tasks", #"{"kind":"echo"}"#,
                                            headers: [.contentType: "application/json", .origin: "http://127.0.0.1:8000"])
            #expect(own.status == .accepted)
        }
    }

    @Test(arguments: [
        ("localhost", true), ("LOCALHOST", true), ("127.0.0.1", true), ("127.255.0.9", true), ("::1", true), ("[::1]", true),
        ("0:0:0:0:0:0:0:1", true), ("127.example.com", false), ("127.0.0.1.nip.io", false), ("128.0.0.1", false),
        ("0.0.0.0", false), ("::", false), ("example.com", false), ("", false), ("127.1", false),
    ])
    func loopbackIsAnAddressOrLocalhostNeverAName(host: String, loopback: Bool) {
        #expect(HostNames.isLoopback(host) == loopback, "\(host)")
    }

    func harnessCount(_ client: any TestClientProtocol) async throws -> Int {
        guard case .array(let tasks)? = try await client.send(.get, "/v1/tasks").json["tasks"] else { return -1 }
        return tasks.count
    }
}
