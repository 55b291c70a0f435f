import Foundation
import Hummingbird
import HummingbirdTesting
import SluiceCore
import SluiceHTTP
import SluicePool
import SluiceStore
import SluiceTestSupport
import Testing

/// The operator verbs (pause, delete, bulk, search, throughput, the advisor) and the console's
/// pages, sessions and CSRF checks, through the router.
@Suite(.timeLimit(.minutes(4))) struct ConsoleTests {
    @Test func pausedQueueAcceptsTasksButNoneStartUntilResumed() async throws {
        try await Harness().test(pool: 2) { client, _ in
            let paused = try await client.send(.post, "/v1/queues/default/pause")
            #expect(paused.status == .ok && paused.json["paused"] == true)
            let queues = try await client.send(.get, "/v1/queues")
            #expect(queues.json["paused"] == ["default"])
            let created = try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#)
            #expect(created.status == .accepted)
            let id = try #require(created.json["id"]?.stringValue)
            // Held for the length of a few claim polls (50 ms each): still queued.
            let held = try await client.send(.get, "/v1/tasks/\(id)?wait=0.5")
            #expect(held.status == .accepted && held.json["state"] == "queued")
            #expect(try await client.send(.post, "/v1/queues/default/resume").status == .ok)
            let done = try await client.send(.get, "/v1/tasks/\(id)?wait=10")
            #expect(done.json["state"] == "succeeded")
        }
    }

    /// Names in paths are read percent-decoded, as clients encode them: a pause of `mail%3Ahigh`
    /// pauses the queue `mail:high` (it paused a queue named `mail%3Ahigh`), and a name no queue
    /// can have is refused instead of paused to no effect.
    @Test func namesInPathsArePercentDecoded() async throws {
        try await Harness().test { client, _ in
            let paused = try await client.send(.post, "/v1/queues/mail%3Ahigh/pause")
            #expect(paused.status == .ok && paused.json["queue"] == "mail:high")
            #expect(try await client.send(.get, "/v1/queues").json["paused"] == ["mail:high"])
            let bad = try await client.send(.post, "/v1/queues/a%20b/pause")
            #expect(bad.status == .badRequest && bad.errorField == "name", "\(bad.status)")
            // A task id that is no id, even one not validly percent-encoded, names no task.
            #expect(try await client.send(.get, "/v1/tasks/%ZZ").status == .notFound)
            // A name paused before that rule held can still be resumed.
            #expect(try await client.send(.post, "/v1/queues/a%20b/resume").status == .ok)
            let pool = try await client.send(.patch, "/v1/pools/x%3Ay", #"{"concurrency":2}"#)
            #expect(pool.status == .notFound && pool.json["error"]?["message"]?.stringValue?.contains("pool x:y") == true)
        }
    }

    @Test func deleteOnlyFinishedTasks() async throws {
        try await Harness().test { client, _ in
            let id = try #require(try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#).json["id"]?.stringValue)
            let live = try await client.send(.delete, "/v1/tasks/\(id)")
            #expect(live.status == .conflict && live.errorCode == "invalid_transition")
            _ = try await client.send(.post, "/v1/tasks/\(id)/cancel")
            let deleted = try await client.send(.delete, "/v1/tasks/\(id)")
            #expect(deleted.status == .ok && deleted.json["state"] == "cancelled")
            #expect(try await client.send(.get, "/v1/tasks/\(id)").status == .notFound)
        }
    }

    @Test func bulkActionsByFilterAndByIDs() async throws {
        try await Harness().test { client, _ in
            var ids: [String] = []
            for n in 0..<3 {
                ids.append(try #require(try await client.send(.post, "/v1/tasks", #"{"kind":"echo","queue":"bulk","args":{"n":\#(n)}}"#).json["id"]?.stringValue))
            }
            let cancelled = try await client.send(.post, "/v1/tasks/bulk", #"{"action":"cancel","filter":{"queue":"bulk","state":"queued"}}"#)
            #expect(cancelled.status == .ok && cancelled.json["matched"] == 3 && cancelled.json["changed"] == 3 && cancelled.json["more"] == false)
            let retried = try await client.send(.post, "/v1/tasks/bulk", #"{"action":"retry","ids":["\#(ids[0])","\#(ids[1])"]}"#)
            #expect(retried.json["changed"] == 2)
            // By filter, only the tasks the action can change are looked at: the two queued again
            // are not deleted, nor listed, so calling again would not find them again and again.
            let deleted = try await client.send(.post, "/v1/tasks/bulk", #"{"action":"delete","filter":{"queue":"bulk"}}"#)
            #expect(deleted.json["matched"] == 1 && deleted.json["changed"] == 1 && deleted.json["refused"] == [] && deleted.json["more"] == false)
            let again = try await client.send(.post, "/v1/tasks/bulk", #"{"action":"cancel","filter":{"queue":"bulk","state":"succeeded,cancelled"}}"#)
            #expect(again.json["matched"] == 0 && again.json["more"] == false, "\(again.json.jsonText())")
            // By ids, a task the action cannot change is refused, named.
            let byID = try await client.send(.post, "/v1/tasks/bulk", #"{"action":"delete","ids":["\#(ids[0])"]}"#)
            #expect(byID.json["matched"] == 1 && byID.json["changed"] == 0 && byID.json["refused"]?[0]?["id"] == .string(ids[0]))
            for (body, field) in [(#"{"action":"zap","ids":[]}"#, "action"), (#"{"action":"retry"}"#, "ids"),
                                  (#"{"action":"retry","filter":{"bogus":"1"}}"#, "filter.bogus"),
                                  (#"{"action":"retry","filter":{"state":"nope"}}"#, "filter.state"),
                                  (#"{"action":"retry","ids":["x"]}"#, "ids[0]"),
                                  (#"{"action":"delete","filter":{}}"#, "filter"),
                                  // No condition once parsed: an empty value is ignored, as in a search.
                                  (#"{"action":"delete","filter":{"state":""}}"#, "filter"),
                                  (#"{"action":"delete","filter":{"queue":"","durable":"true"}}"#, "filter")] {
                let refused = try await client.send(.post, "/v1/tasks/bulk", body)
                #expect(refused.status == .badRequest && refused.errorField == field, "\(body)")
            }
            // The refusals changed nothing: the two retried tasks are still there.
            #expect(try await client.send(.get, "/v1/tasks?queue=bulk").json["tasks"]?.arrayValue?.count == 2)

            // The console's "every task matching this search" follows the same rule: a search of
            // only a page size, `durable` or empty values is sent back to be narrowed.
            let page = try await client.send(.get, "/ui/tasks")
            let cookie = try #require(page.headers[values: .setCookie].first { $0.hasPrefix("sluice_csrf=") })
            let token = String(cookie.dropFirst("sluice_csrf=".count).prefix { $0 != ";" })
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded", .cookie: "sluice_csrf=\(token)"]
            for search in ["", "limit%3D20", "durable%3Dtrue%26state%3D", "queue%3D"] {
                let refused = try await client.send(.post, "/ui/tasks/bulk", "action=delete&scope=all&confirmed=yes&search=\(search)&csrf=\(token)", headers: form)
                #expect(refused.status == .seeOther && refused.headers[.location]?.contains("Narrow") == true, "\(search): \(refused.headers)")
            }
            #expect(try await client.send(.get, "/v1/tasks?queue=bulk").json["tasks"]?.arrayValue?.count == 2)
            let narrowed = try await client.send(.post, "/ui/tasks/bulk", "action=cancel&scope=all&confirmed=yes&search=queue%3Dbulk&csrf=\(token)", headers: form)
            #expect(narrowed.status == .seeOther && narrowed.headers[.location]?.contains("cancel") == true, "\(narrowed.headers)")
        }
    }

    @Test func searchByArgsIDAndTime() async throws {
        try await Harness().test { client, _ in
            let a = try #require(try await client.send(.post, "/v1/tasks", #"{"kind":"echo","args":{"customer":42,"note":"rush","to":"a b+c"}}"#).json["id"]?.stringValue)
            _ = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","args":{"customer":7}}"#)
            func ids(_ query: String) async throws -> [String] {
                let page = try await client.send(.get, "/v1/tasks?\(query)")
                guard case .array(let tasks)? = page.json["tasks"] else { return [] }
                return tasks.compactMap { $0["id"]?.stringValue }
            }
            #expect(try await ids("args.customer=42") == [a])
            #expect(try await ids("state=,").count == 2, "only commas name no state: any")
            #expect(try await ids("args=rush&kind=echo") == [a])
            // Form encoding, as Python's urlencode and browsers write a query: `+` is a space, `%2B` a plus.
            #expect(try await ids("args.to=a+b%2Bc") == [a])
            #expect(try await ids("args.to=a%20b%2Bc") == [a])
            #expect(try await ids("args.to=a+b+c").isEmpty)
            #expect(try await ids("id=\(a.prefix(25))") == [a])
            #expect(try await ids("created_after=2000-01-01T00:00:00Z&created_before=2001-01-01T00:00:00Z").isEmpty)
            #expect(try await ids("created_after=2000-01-01T00:00:00Z").count == 2)
            // An offset's + written unencoded, as curl users do, is still a +.
            #expect(try await ids("created_after=2000-01-01T02:00:00+02:00").count == 2)
            #expect(try await ids("created_after=2999-01-01T02:00:00+02:00").isEmpty)
            for (query, field) in [("created_after=yesterday", "created_after"), ("created_after=2027-02-30T03:04:05Z", "created_after"),
                                   ("created_before=2027-01-01T24:00:00Z", "created_before"), ("args.bad!name=1", "args.bad!name"),
                                   ("id=!!", "id"), ("limit=0", "limit")] {
                let refused = try await client.send(.get, "/v1/tasks?\(query)")
                #expect(refused.status == .badRequest && refused.errorField == field, "\(query)")
            }
        }
    }

    /// The search form as a browser sends it (GET, form-encoded: a space is `+`, a plus `%2B`,
    /// every field present even when empty).
    @Test func theSearchFormReadsSpacesAndShowsABadValueOnThePage() async throws {
        try await Harness().test { client, _ in
            let a = try #require(try await client.send(.post, "/v1/tasks", #"{"kind":"echo","args":{"customer":42,"note":"first order"}}"#).json["id"]?.stringValue)
            let b = try #require(try await client.send(.post, "/v1/tasks", #"{"kind":"echo","args":{"customer":42,"note":"a+b"}}"#).json["id"]?.stringValue)
            // Two conditions in the args field, separated by a space.
            let two = try await client.send(.get, "/ui/tasks?state=&args=&match=customer%3D42+note%3Drush&created_after=")
            #expect(two.status == .seeOther && two.headers[.location] == "/ui/tasks?args.customer=42&args.note=rush", "\(two.headers[.location] ?? "")")
            // Two words in "args contain": found as typed, and a plus stays a plus.
            let words = try await client.send(.get, "/ui/tasks?args=first+order&match=")
            let location = try #require(words.headers[.location])
            #expect(location == "/ui/tasks?args=first%20order", "\(location)")
            let page = String(buffer: try await client.send(.get, location).body)
            #expect(page.contains(a))
            let plus = String(buffer: try await client.send(.get, "/ui/tasks?args=a%2Bb").body)
            #expect(!plus.contains(a) && plus.contains(b))
            // A search the form cannot spell is kept in it, so searching again keeps it.
            let wide = String(buffer: try await client.send(.get, "/ui/tasks?state=failed,cancelled&limit=5&durable=false").body)
            #expect(wide.contains(#"<option value="failed,cancelled" selected>"#))
            #expect(wide.contains(#"<input type="hidden" name="limit" value="5">"#) && wide.contains(#"<input type="hidden" name="durable" value="false">"#))
            // A value the API refuses is shown in the console's page, not answered as JSON.
            let bad = try await client.send(.get, "/ui/tasks?created_after=yesterday&match=")
            #expect(bad.status == .badRequest && bad.headers[.contentType] == "text/html; charset=utf-8")
            #expect(String(buffer: bad.body).contains("class=\"error\"") && String(buffer: bad.body).contains("created_after"))
        }
    }

    @Test func poolsCarryTheAdvisorAndThroughputIsCounted() async throws {
        try await Harness().test(pool: 2) { client, _ in
            let done = try await client.send(.post, "/v1/tasks?wait=10", #"{"kind":"echo"}"#)
            #expect(done.json["state"] == "succeeded")
            let pools = try await client.send(.get, "/v1/pools")
            let advisor = pools.json["pools"]?[0]?["advisor"]
            #expect(["unknown", "ok", "idle", "saturated"].contains(advisor?["verdict"]?.stringValue ?? ""))
            #expect(advisor?["message"]?.stringValue?.isEmpty == false)
            let history = try await client.send(.get, "/v1/throughput?queue=default&seconds=60")
            func total(_ event: String) -> Int64 {
                guard case .array(let values)? = history.json["series"]?[event] else { return -1 }
                return values.compactMap(\.intValue).reduce(0, +)
            }
            #expect(total("enqueued") == 1 && total("started") == 1 && total("succeeded") == 1 && total("failed") == 0)
            #expect(try await client.send(.get, "/v1/throughput?seconds=0").errorField == "seconds")
        }
    }

    /// The resize form sets each process's size, so its hint is that size, not the pool's total
    /// (typing the total back into it grew the pool), and none when the processes differ.
    @Test func theResizeFormHintsTheSizeOfEachProcess() async throws {
        try await Harness().test(pool: 2) { client, _ in
            func form() async throws -> String {
                let page = String(buffer: try await client.send(.get, "/ui/pools").body)
                return String(page[try #require(page.range(of: "concurrency of each process"))!.upperBound...].prefix(200))
            }
            #expect(await eventually { (try? await form())?.contains(#"placeholder="2""#) == true })
            _ = try await client.send(.put, "/v1/workers/py-1", #"{"host":"h","pid":1,"kinds":["echo"],"pools":[{"name":"default","queues":["default"],"concurrency":1}]}"#)
            let mixed = try await form()
            #expect(!mixed.contains("placeholder="), "\(mixed)")
        }
    }

    @Test func pagesRenderAndRefreshFragmentsWithoutTokens() async throws {
        try await Harness().test(pool: 1) { client, _ in
            let id = try #require(try await client.send(.post, "/v1/tasks?wait=10", #"{"kind":"echo","args":{"customer":42}}"#).json["id"]?.stringValue)
            for path in ["/ui/", "/ui/queues", "/ui/pools", "/ui/tasks", "/ui/tasks?args.customer=42&state=succeeded", "/ui/tasks/\(id)", "/ui/workers", "/ui/schedules"] {
                let page = try await client.send(.get, path)
                #expect(page.status == .ok, "\(path)")
                #expect(page.headers[.contentType] == "text/html; charset=utf-8")
                #expect(String(buffer: page.body).hasPrefix("<!doctype html>"), "\(path)")
            }
            let search = String(buffer: try await client.send(.get, "/ui/tasks?args.customer=42").body)
            #expect(search.contains(id))
            let fragment = try await client.send(.get, "/ui/", headers: [.init("X-Sluice-Fragment")!: "1"])
            #expect(fragment.status == .ok && !String(buffer: fragment.body).contains("<!doctype") && String(buffer: fragment.body).contains("Throughput"))
            #expect(try await client.send(.get, "/ui/assets/console.js").status == .ok)
            // An error page, not a crash, with the status the API would answer.
            let missing = try await client.send(.get, "/ui/tasks/01JXT21Q00YJWX718ZW3PPVMD1")
            #expect(missing.status == .notFound && String(buffer: missing.body).contains("class=\"error\""))
        }
    }

    @Test func changesNeedTheCSRFToken() async throws {
        try await Harness().test { client, _ in
            let page = try await client.send(.get, "/ui/queues")
            let cookie = try #require(page.headers[values: .setCookie].first { $0.hasPrefix("sluice_csrf=") })
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
            let token = String(cookie.dropFirst("sluice_csrf=".count).prefix { $0 != ";" })
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded", .cookie: "sluice_csrf=\(token)"]
            let refused = try await client.send(.post, "/ui/queues/pause", "queue=mail&paused=true&csrf=wrong", headers: form)
            #expect(refused.status == .forbidden)
            let done = try await client.send(.post, "/ui/queues/pause", "queue=mail&paused=true&csrf=\(token)", headers: form)
            #expect(done.status == .seeOther && done.headers[.location]?.hasPrefix("/ui/queues?notice=") == true)
            #expect(try await client.send(.get, "/v1/queues").json["paused"] == ["mail"])
        }
    }

    /// The notice box shows only what this server's redirect put there: a link made elsewhere
    /// (`?notice=Your session expired, sign in at …`) cannot speak in the console's voice.
    @Test func onlyTheServersOwnNoticesAreShown() async throws {
        try await Harness().test { client, _ in
            let page = try await client.send(.get, "/ui/queues")
            let cookie = try #require(page.headers[values: .setCookie].first { $0.hasPrefix("sluice_csrf=") })
            let token = String(cookie.dropFirst("sluice_csrf=".count).prefix { $0 != ";" })
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded", .cookie: "sluice_csrf=\(token)"]
            let done = try await client.send(.post, "/ui/queues/pause", "queue=mail&paused=true&csrf=\(token)", headers: form)
            let location = try #require(done.headers[.location])
            let shown = String(buffer: try await client.send(.get, location).body)
            #expect(shown.contains("class=\"notice\"") && shown.contains("Queue mail paused"))
            let forged = ["/ui/queues?notice=Session%20expired%3A%20sign%20in%20at%20evil.example",
                          "/ui/queues?notice=Session%20expired&notice_mac=AAAA",
                          location.replacingOccurrences(of: "Queue%20mail", with: "Queue%20post")]
            for link in forged {
                let body = String(buffer: try await client.send(.get, link).body)
                #expect(!body.contains("class=\"notice\""), "\(link) showed a notice")
            }
        }
    }

    @Test func schedulesPageShowsEverySchedulesStateAndLastTask() async throws {
        let harness = try Harness()
        try await harness.test { client, _ in
            #expect(try await client.send(.post, "/v1/schedules", ScheduleRoutesTests.nightly).status == .created)
            let heartbeat = #"{"name":"heartbeat","cron":"@every 30s","task":{"kind":"echo"},"enabled":false}"#
            #expect(try await client.send(.post, "/v1/schedules", heartbeat).status == .created)
            // Fire nightly-report's next slot as the leader's scheduler would: its task becomes the last task.
            let stored = try #require(try await harness.store.schedule("nightly-report"))
            guard case .fired(let task) = try await harness.store.fire(ScheduleFire(schedule: stored, slot: try #require(stored.nextFire))) else {
                Issue.record("the slot did not fire"); return
            }
            let api = try await client.send(.get, "/v1/schedules/nightly-report").json
            guard case .array(let next)? = api["next_fires"], let lastSlot = api["last_slot"]?.stringValue else { Issue.record("no firing state"); return }

            let page = String(buffer: try await client.send(.get, "/ui/schedules").body)
            #expect(page.contains(#"<a href="/ui/schedules" class="active" aria-current="page">Schedules</a>"#))
            let nightly = try #require(Self.row(page, "nightly-report"))
            for part in [#"<div class="mono cron">30 2 * * *</div><div class="muted zone">Europe/Paris</div>"#,
                         #"<span class="badge ok">enabled</span>"#, #"<span class="misfire">latest</span>"#,
                         #"<span class="overlap">no</span>"#, #"<div class="last-fire"><time datetime="\#(lastSlot)">"#,
                         #"<a class="mono" href="/ui/tasks/\#(task.id)">\#(task.id)</a> <span class="badge queued">queued</span>"#,
                         #"value="nightly-report"><button type="submit" class="primary">Run now</button>"#,
                         #"<input type="hidden" name="enabled" value="false"><button type="submit" class="">Disable</button>"#] {
                #expect(nightly.contains(part), "\(part)")
            }
            // The next three fires, the API's own, after the slot just fired.
            let shown = nightly.components(separatedBy: "<li><time datetime=\"").dropFirst().map { String($0.prefix { $0 != "\"" }) }
            #expect(shown == next.prefix(3).compactMap(\.stringValue) && shown.count == 3)
            #expect(shown.allSatisfy { $0 > lastSlot })

            let off = try #require(Self.row(page, "heartbeat"))
            for part in [#"<span class="badge paused">disabled</span>"#, "none while disabled", "none yet", "@every 30s",
                         #"<input type="hidden" name="enabled" value="true"><button type="submit" class="">Enable</button>"#] {
                #expect(off.contains(part), "\(part)")
            }
            #expect(!off.contains("<li>"))

            // The live refresh: only the table, without the layout.
            let fragment = String(buffer: try await client.send(.get, "/ui/schedules", headers: [.init("X-Sluice-Fragment")!: "1"]).body)
            #expect(!fragment.contains("<!doctype") && fragment.contains(#"data-schedule="nightly-report""#))
        }
    }

    @Test func scheduleButtonsNeedTheCSRFTokenAndActAsTheAPI() async throws {
        try await Harness().test { client, _ in
            #expect(try await client.send(.post, "/v1/schedules", ScheduleRoutesTests.nightly).status == .created)
            let page = try await client.send(.get, "/ui/schedules")
            let cookie = try #require(page.headers[values: .setCookie].first { $0.hasPrefix("sluice_csrf=") })
            let token = String(cookie.dropFirst("sluice_csrf=".count).prefix { $0 != ";" })
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded", .cookie: "sluice_csrf=\(token)"]
            func tasks() async throws -> Int {
                guard case .array(let all)? = try await client.send(.get, "/v1/tasks").json["tasks"] else { return -1 }
                return all.count
            }

            for body in ["schedule=nightly-report&enabled=false", "schedule=nightly-report&enabled=false&csrf=wrong"] {
                #expect(try await client.send(.post, "/ui/schedules/enable", body, headers: form).status == .forbidden, "\(body)")
            }
            #expect(try await client.send(.post, "/ui/schedules/run", "schedule=nightly-report", headers: form).status == .forbidden)
            #expect(try await client.send(.get, "/v1/schedules/nightly-report").json["enabled"] == true)
            #expect(try await tasks() == 0)

            let disabled = try await client.send(.post, "/ui/schedules/enable", "schedule=nightly-report&enabled=false&csrf=\(token)", headers: form)
            #expect(disabled.status == .seeOther && disabled.headers[.location]?.hasPrefix("/ui/schedules?notice=") == true)
            let after = try await client.send(.get, "/v1/schedules/nightly-report").json
            #expect(after["enabled"] == false && after["next_fires"] == [] && after["revision"] == 2)

            let run = try await client.send(.post, "/ui/schedules/run", "schedule=nightly-report&csrf=\(token)", headers: form)
            let location = try #require(run.headers[.location])
            #expect(run.status == .seeOther && location.hasPrefix("/ui/tasks/"))
            let id = String(location.dropFirst("/ui/tasks/".count).prefix { $0 != "?" })
            let task = try await client.send(.get, "/v1/tasks/\(id)").json
            // Run now fires outside the slots: the schedule's task, with no slot's idempotency key.
            #expect(task["kind"] == "echo" && task["queue"] == "reports" && task["idempotency_key"] == .null)
            #expect(try await client.send(.get, "/v1/schedules/nightly-report").json["last_task"] == .null)

            let missing = try await client.send(.post, "/ui/schedules/run", "schedule=nope&csrf=\(token)", headers: form)
            #expect(missing.status == .notFound && String(buffer: missing.body).contains("no schedule is called nope"))
            let bad = try await client.send(.post, "/ui/schedules/enable", "schedule=nightly-report&enabled=maybe&csrf=\(token)", headers: form)
            #expect(bad.status == .badRequest)
        }
    }

    /// The `<tr>` of schedule `name` in a schedules page.
    static func row(_ page: String, _ name: String) -> String? {
        guard let start = page.range(of: "<tr data-schedule=\"\(name)\">") else { return nil }
        guard let end = page.range(of: "</tr>", range: start.upperBound..<page.endIndex) else { return nil }
        return String(page[start.lowerBound..<end.upperBound])
    }

    @Test func withTokensTheConsoleNeedsASignIn() async throws {
        try await Harness().test(tokens: ["s3cret"]) { client, _ in
            let page = try await client.send(.get, "/ui/")
            #expect(page.status == .seeOther && page.headers[.location] == "/ui/sign-in")
            #expect(try await client.send(.get, "/ui/", headers: [.init("X-Sluice-Fragment")!: "1"]).status == .unauthorized)
            let signIn = try await client.send(.get, "/ui/sign-in")
            let csrf = try #require(signIn.headers[values: .setCookie].first { $0.hasPrefix("sluice_csrf=") }).dropFirst(12).prefix { $0 != ";" }
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded", .cookie: "sluice_csrf=\(csrf)"]
            let wrong = try await client.send(.post, "/ui/sign-in", "token=guess&csrf=\(csrf)", headers: form)
            #expect(wrong.status == .unauthorized)
            let right = try await client.send(.post, "/ui/sign-in", "token=s3cret&csrf=\(csrf)", headers: form)
            #expect(right.status == .seeOther)
            let session = try #require(right.headers[values: .setCookie].first { $0.hasPrefix("sluice_session=") })
            #expect(session.contains("HttpOnly") && session.contains("SameSite=Strict") && session.contains("Max-Age=43200") && !session.contains("s3cret"))
            #expect(!session.contains("Secure"), "over plain HTTP a Secure cookie would never come back")
            // Behind a proxy that serves HTTPS, the cookies are Secure: never sent over plain HTTP.
            var proxied = form
            proxied[HTTPFields.Element.Name("X-Forwarded-Proto")!] = "https"
            let secure = try await client.send(.post, "/ui/sign-in", "token=s3cret&csrf=\(csrf)", headers: proxied)
            #expect(secure.headers[values: .setCookie].first { $0.hasPrefix("sluice_session=") }?.hasSuffix("; Secure; Max-Age=43200") == true,
                    "\(secure.headers[values: .setCookie])")
            let value = session.dropFirst("sluice_session=".count).prefix { $0 != ";" }
            let signedIn = try await client.send(.get, "/ui/", headers: [.cookie: "sluice_session=\(value); sluice_csrf=\(csrf)"])
            #expect(signedIn.status == .ok)
            let forged = try await client.send(.get, "/ui/", headers: [.cookie: "sluice_session=forged"])
            #expect(forged.status == .seeOther)
            // The API itself still wants the bearer token; the cookie is the console's.
            #expect(try await client.send(.get, "/v1/pools", headers: [.cookie: "sluice_session=\(value)"]).status == .unauthorized)
        }
    }
}
