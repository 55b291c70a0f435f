import Foundation
import Hummingbird
import HummingbirdTesting
import SluiceCore
import SluiceHTTP
import SluiceStore
import SluiceTestSupport
import Testing

@Suite(.timeLimit(.minutes(4))) struct ScheduleRoutesTests {
    static let nightly = #"{"name":"nightly-report","cron":"30 2 * * *","timezone":"Europe/Paris","task":{"kind":"echo","args":{"to":"ops"},"queue":"reports","priority":2,"max_attempts":4,"timeout":60},"misfire":"latest","overlap":false}"#

    @Test func createShowPatchRunDelete() async throws {
        try await Harness().test { client, _ in
            let created = try await client.send(.post, "/v1/schedules", Self.nightly)
            #expect(created.status == .created && created.json["change"] == "created")
            #expect(created.headers[.location] == "/v1/schedules/nightly-report")
            #expect(created.json["task"]?["kind"] == "echo" && created.json["task"]?["args"] == ["to": "ops"] && created.json["misfire"] == "latest")
            #expect(created.json["overlap"] == false && created.json["enabled"] == true && created.json["last_task"] == .null)
            guard case .array(let next)? = created.json["next_fires"] else { Issue.record("no next_fires"); return }
            #expect(next.count == 5 && next.allSatisfy { $0.stringValue?.contains(":30:00.000Z") == true })
            let again = try await client.send(.post, "/v1/schedules", Self.nightly)
            #expect(again.status == .ok && again.json["change"] == "unchanged")

            let patched = try await client.send(.patch, "/v1/schedules/nightly-report", #"{"enabled":false,"task":{"priority":9}}"#)
            #expect(patched.status == .ok && patched.json["change"] == "updated" && patched.json["enabled"] == false)
            #expect(patched.json["task"]?["priority"] == 9 && patched.json["task"]?["kind"] == "echo" && patched.json["cron"] == "30 2 * * *")
            #expect(patched.json["next_fires"] == [])

            let run = try await client.send(.post, "/v1/schedules/nightly-report/run")
            #expect(run.status == .accepted && run.json["kind"] == "echo" && run.json["queue"] == "reports" && run.json["priority"] == 9)

            let list = try await client.send(.get, "/v1/schedules")
            guard case .array(let all)? = list.json["schedules"] else { Issue.record("no schedules"); return }
            #expect(all.count == 1 && all[0]["name"] == "nightly-report")

            #expect(try await client.send(.delete, "/v1/schedules/nightly-report").status == .noContent)
            #expect(try await client.send(.get, "/v1/schedules/nightly-report").status == .notFound)
            #expect(try await client.send(.delete, "/v1/schedules/nightly-report").status == .notFound)
        }
    }

    /// Two PATCHes at once, each of its own field: both changes stay (each used to save the whole
    /// schedule as it read it, so the later undid the other's change).
    @Test func concurrentPatchesEachKeepTheirChange() async throws {
        try await Harness().test { client, _ in
            for round in 0..<25 {
                _ = try await client.send(.post, "/v1/schedules", Self.nightly)
                _ = try await client.send(.patch, "/v1/schedules/nightly-report", #"{"enabled":true,"task":{"priority":0}}"#)
                async let paused = client.send(.patch, "/v1/schedules/nightly-report", #"{"enabled":false}"#)
                async let raised = client.send(.patch, "/v1/schedules/nightly-report", #"{"task":{"priority":\#(round + 1)}}"#)
                let (first, second) = try await (paused, raised)
                #expect(first.status == .ok && second.status == .ok)
                let stored = try await client.send(.get, "/v1/schedules/nightly-report").json
                #expect(stored["enabled"] == false && stored["task"]?["priority"] == .int(Int64(round + 1)), "round \(round): \(stored.jsonText())")
            }
            // A PATCH of a schedule deleted meanwhile is a 404; it does not make it again.
            #expect(try await client.send(.delete, "/v1/schedules/nightly-report").status == .noContent)
            #expect(try await client.send(.patch, "/v1/schedules/nightly-report", #"{"enabled":false}"#).status == .notFound)
            #expect(try await client.send(.get, "/v1/schedules/nightly-report").status == .notFound)
        }
    }

    @Test(arguments: [
        (#"{"name":"a","cron":"61 * * * *","task":{"kind":"echo"}}"#, "cron", "minute field at position 1"),
        (#"{"name":"a","cron":"* * * * *","timezone":"Mars/Olympus","task":{"kind":"echo"}}"#, "timezone", "IANA"),
        (#"{"name":"a","cron":"* * * * *","misfire":"sometimes","task":{"kind":"echo"}}"#, "misfire", "skip, latest or all"),
        (#"{"name":"a","cron":"* * * * *","task":{"kind":"echo","priority":5000}}"#, "task.priority", "between"),
        (#"{"name":"a","cron":"* * * * *","task":{"kind":"echo","colour":1}}"#, "task.colour", "not a known field"),
        (#"{"name":"a","cron":"* * * * *"}"#, "task.kind", "is required"),
        (#"{"name":"a b","cron":"* * * * *","task":{"kind":"echo"}}"#, "name", "letters"),
        (#"{"cron":"* * * * *","task":{"kind":"echo"}}"#, "name", "is required"),
        (#"{"name":"a","task":{"kind":"echo"}}"#, "cron", "is required"),
        (#"{"name":"a","cron":"* * * * *","overlap":"no","task":{"kind":"echo"}}"#, "overlap", "true or false"),
    ])
    func badInputIs400NamingTheField(body: String, field: String, message: String) async throws {
        try await Harness().test { client, _ in
            let response = try await client.send(.post, "/v1/schedules", body)
            #expect(response.status == .badRequest)
            #expect(response.json["error"]?["field"] == .string(field), "\(response.json.jsonText())")
            #expect(response.json["error"]?["message"]?.stringValue?.contains(message) == true, "\(response.json.jsonText())")
        }
    }
}
