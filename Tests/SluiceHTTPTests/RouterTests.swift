import Foundation
import Hummingbird
import HummingbirdTesting
import SluiceCore
import SluiceHTTP
import SluicePool
import SluiceStore
import SluiceTestSupport
import Testing

@Suite(.timeLimit(.minutes(4))) struct RouterTests {
    /// A delay is counted from when the store takes the task, by the store's clock: a front whose
    /// clock runs an hour ahead does not push the task an hour further (on PostgreSQL the store's
    /// clock is the database's, shared by every host).
    @Test func aDelayIsCountedByTheStoresClock() async throws {
        let ahead = ManualClock(Date().addingTimeInterval(3600))
        try await Harness().testAPI(clock: ahead) { client, _, _ in
            let task = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","delay":2}"#).json
            let format = ISO8601DateFormatter()
            format.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let runAt = try #require(task["run_at"]?.stringValue.flatMap(format.date(from:)))
            let createdAt = try #require(task["created_at"]?.stringValue.flatMap(format.date(from:)))
            #expect(abs(runAt.timeIntervalSince(createdAt) - 2) < 0.01 && abs(createdAt.timeIntervalSinceNow) < 60, "\(task)")
            #expect(task["state"] == "scheduled")
        }
    }

    @Test func enqueueThenRead() async throws {
        try await Harness().test { client, _ in
            let created = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","args":{"x":1},"queue":"mail","priority":7,"max_attempts":5,"timeout":2.5}"#)
            #expect(created.status == .accepted)
            let id = try #require(created.json["id"]?.stringValue)
            #expect(created.headers[.location] == "/v1/tasks/\(id)")
            #expect(created.json["state"] == "queued" && created.json["durable"] == true && created.json["priority"] == 7)
            #expect(created.json["max_attempts"] == 5 && created.json["timeout"] == 2.5 && created.json["queue"] == "mail")
            let read = try await client.send(.get, "/v1/tasks/\(id)")
            #expect(read.status == .ok && read.json["id"] == .string(id) && read.json["args"] == ["x": 1])
            // Rounded up to the millisecond, but a decimal's binary noise is not a millisecond more.
            for (given, kept) in [("2.007", 2.007), ("0.0001", 0.001), ("1.0005", 1.001)] {
                let timed = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","timeout":\#(given)}"#)
                #expect(timed.json["timeout"]?.doubleValue == kept, "\(given): \(timed.json["timeout"]?.jsonText() ?? "")")
            }
        }
    }

    @Test func delayedAndScheduledTasks() async throws {
        try await Harness().test { client, _ in
            let delayed = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","delay":60}"#)
            #expect(delayed.json["state"] == "scheduled")
            let at = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","run_at":"2099-01-01T00:00:00Z"}"#)
            #expect(at.status == .badRequest && at.errorField == "run_at", "more than a year ahead")
            let soon = Date().addingTimeInterval(3600).formatted(.iso8601)
            let ok = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","run_at":"\#(soon)"}"#)
            #expect(ok.status == .accepted && ok.json["state"] == "scheduled")
            // Times come back in RFC 3339 with milliseconds, UTC, exactly as sent in that form.
            let precise = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
                .format(Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + 7200).rounded(.down) + 0.045))
            let exact = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","run_at":"\#(precise)"}"#)
            #expect(exact.json["run_at"] == .string(precise) && precise.hasSuffix(".045Z"), "\(precise)")
        }
    }

    @Test func idempotencyKeyInBodyOrHeader() async throws {
        try await Harness().test { client, _ in
            let first = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","idempotency_key":"order-1"}"#)
            let again = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","idempotency_key":"order-1"}"#)
            #expect(first.status == .accepted && again.status == .ok && again.json["id"] == first.json["id"])
            var headers: HTTPFields = [.contentType: "application/json"]
            headers.append(.init(name: .init("Idempotency-Key")!, value: "order-1"))
            let viaHeader = try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#, headers: headers)
            #expect(viaHeader.status == .ok && viaHeader.json["id"] == first.json["id"])
        }
    }

    @Test(arguments: [
        (#"{"kind":"echo""#, 400, "malformed_json", nil),
        (#"[1,2]"#, 400, "invalid_argument", "body"),
        (#"{"args":{}}"#, 400, "invalid_argument", "kind"),
        (#"{"kind":"echo","bogus":1}"#, 400, "invalid_argument", "bogus"),
        (#"{"kind":"echo","priority":"high"}"#, 400, "invalid_argument", "priority"),
        (#"{"kind":"echo","priority":1.5}"#, 400, "invalid_argument", "priority"),
        (#"{"kind":"echo","priority":100000}"#, 400, "invalid_argument", "priority"),
        (#"{"kind":"echo","max_attempts":0}"#, 400, "invalid_argument", "max_attempts"),
        (#"{"kind":"echo","timeout":-1}"#, 400, "invalid_argument", "timeout"),
        (#"{"kind":"echo","delay":-5}"#, 400, "invalid_argument", "delay"),
        (#"{"kind":"echo","delay":1e300}"#, 400, "invalid_argument", "delay"),
        (#"{"kind":"echo","delay":1,"run_at":"2030-01-01T00:00:00Z"}"#, 400, "invalid_argument", "delay"),
        (#"{"kind":"echo","run_at":"tomorrow"}"#, 400, "invalid_argument", "run_at"),
        // Times that do not exist, which the parser would roll over into others.
        (#"{"kind":"echo","run_at":"2027-02-30T03:04:05Z"}"#, 400, "invalid_argument", "run_at"),
        (#"{"kind":"echo","run_at":"2027-04-31T00:00:00Z"}"#, 400, "invalid_argument", "run_at"),
        (#"{"kind":"echo","run_at":"2027-02-29T00:00:00Z"}"#, 400, "invalid_argument", "run_at"),
        (#"{"kind":"echo","run_at":"2027-01-01T25:00:00Z"}"#, 400, "invalid_argument", "run_at"),
        (#"{"kind":"echo","run_at":"2027-01-01T03:61:00Z"}"#, 400, "invalid_argument", "run_at"),
        (#"{"kind":"echo","run_at":"2027-01-01T03:04:75Z"}"#, 400, "invalid_argument", "run_at"),
        (#"{"kind":"echo","run_at":"2027-01-01T03:04:05+24:00"}"#, 400, "invalid_argument", "run_at"),
        (#"{"kind":"echo","args":[1]}"#, 400, "invalid_argument", "args"),
        (#"{"kind":"echo","durable":"yes"}"#, 400, "invalid_argument", "durable"),
        (#"{"kind":"echo","queue":"bad queue!"}"#, 400, "invalid_argument", "queue"),
        (#"{"kind":"echo","args":{"a":["x\u0000"]}}"#, 400, "invalid_argument", "args"),
        (#"{"kind":"echo","idempotency_key":"a\u0000"}"#, 400, "invalid_argument", "idempotency_key"),
        (#"{"kind":"echo","idempotency_key":"schedule:nightly@2030-01-01T00:00:00Z"}"#, 400, "invalid_argument", "idempotency_key"),
        (#"{"kind":"","idempotency_key":"schedule:nightly@2030-01-01T00:00:00Z"}"#, 400, "invalid_argument", "kind"),
        (#"{"kind":"nope"}"#, 422, "unknown_kind", "kind"),
    ] as [(String, Int, String, String?)])
    func badInputIsRefusedNamingTheField(body: String, status: Int, code: String, field: String?) async throws {
        try await Harness().test { client, _ in
            let response = try await client.send(.post, "/v1/tasks", body)
            #expect(response.status.code == status, "\(body) → \(response.status)")
            #expect(response.errorCode == code)
            #expect(response.errorField == field)
            #expect(response.json["error"]?["message"]?.stringValue?.isEmpty == false)
        }
    }

    @Test func unknownKindListsTheKnownOnes() async throws {
        try await Harness().test { client, _ in
            let response = try await client.send(.post, "/v1/tasks", #"{"kind":"nope"}"#)
            #expect(response.json["error"]?["message"] == "no handler for kind nope; known kinds: cpu, echo, exec, fail, sleep")
        }
    }

    @Test func limitsAndTransport() async throws {
        var limits = SluiceAPI.Limits()
        limits.maxBody = 2048
        limits.maxWait = 0.5
        try await Harness().test(limits: limits) { client, _ in
            let longWait = try await client.send(.get, "/v1/tasks/01JY3R8M4S7K2Q9ZB6XW5T0N1C?wait=1")
            #expect(longWait.errorField == "wait" && longWait.json["error"]?["message"] == "wait: must be a number of seconds from 0 to 0.5", "\(longWait.json)")
            let huge = #"{"kind":"echo","args":{"x":""# + String(repeating: "a", count: 4096) + #""}}"#
            let tooBig = try await client.send(.post, "/v1/tasks", huge)
            #expect(tooBig.status == .contentTooLarge && tooBig.errorCode == "body_too_large")
            let lookalike = try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#, headers: [.contentType: "application/jsonp"])
            #expect(lookalike.status == .unsupportedMediaType)
            let charset = try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#, headers: [.contentType: "application/json; charset=utf-8"])
            #expect(charset.status == .accepted)
            let spaced = try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#, headers: [.contentType: " Application/Problem+JSON ;charset=utf-8"])
            #expect(spaced.status == .accepted)
            let xml = try await client.send(.post, "/v1/tasks", "<task/>", headers: [.contentType: "text/xml"])
            #expect(xml.status == .unsupportedMediaType && xml.errorCode == "unsupported_media_type")
            let curlDefault = try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#, headers: [.contentType: "application/x-www-form-urlencoded"])
            #expect(curlDefault.status == .accepted)
            let nowhere = try await client.send(.get, "/v2/nothing")
            #expect(nowhere.status == .notFound && nowhere.errorCode == "not_found")
            let badUTF8 = try await client.execute(uri: "/v1/tasks", method: .post, headers: [.contentType: "application/json"],
                                                   body: ByteBuffer(bytes: Array(#"{"kind":"echo","args":{"s":""#.utf8) + [0xff, 0xfe] + Array(#""}}"#.utf8)))
            #expect(badUTF8.status == .badRequest && badUTF8.errorCode == "malformed_json")
            let deep = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
            let nested = try await client.send(.post, "/v1/tasks", deep)
            #expect(nested.status == .badRequest)
        }
    }

    @Test func unknownTasksAreNotFoundNeverMadeUp() async throws {
        try await Harness().test { client, _ in
            for id in ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "1%27%20OR%20%271%27%3D%271", "..%2F..%2Fetc%2Fpasswd", "x"] {
                let response = try await client.send(.get, "/v1/tasks/\(id)")
                #expect(response.status == .notFound && response.errorCode == "not_found", "\(id)")
            }
            let wait = try await client.send(.get, "/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV?wait=-1")
            #expect(wait.status == .badRequest && wait.errorField == "wait")
        }
    }

    @Test func cancelAndRetryAnswer409WhereTheStateForbids() async throws {
        try await Harness().test { client, _ in
            let id = try #require(try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#).json["id"]?.stringValue)
            let retryQueued = try await client.send(.post, "/v1/tasks/\(id)/retry")
            #expect(retryQueued.status == .conflict && retryQueued.errorCode == "invalid_transition")
            let cancelled = try await client.send(.post, "/v1/tasks/\(id)/cancel")
            #expect(cancelled.status == .ok && cancelled.json["state"] == "cancelled")
            let retried = try await client.send(.post, "/v1/tasks/\(id)/retry")
            #expect(retried.status == .ok && retried.json["state"] == "queued")
            let unknown = try await client.send(.post, "/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV/cancel")
            #expect(unknown.status == .notFound)
        }
    }

    @Test func listFiltersAndPages() async throws {
        try await Harness().test { client, _ in
            for i in 0..<5 { _ = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","queue":"\#(i < 3 ? "a" : "b")"}"#) }
            var seen: [String] = []
            var cursor = ""
            repeat {
                let page = try await client.send(.get, "/v1/tasks?limit=2\(cursor.isEmpty ? "" : "&cursor=\(cursor)")")
                #expect(page.status == .ok)
                guard case .array(let tasks)? = page.json["tasks"] else { Issue.record("no tasks"); return }
                seen += tasks.compactMap { $0["id"]?.stringValue }
                cursor = page.json["next_cursor"]?.stringValue ?? ""
            } while !cursor.isEmpty
            #expect(seen.count == 5 && seen == seen.sorted().reversed())
            let inA = try await client.send(.get, "/v1/tasks?queue=a&state=queued,running")
            if case .array(let tasks)? = inA.json["tasks"] { #expect(tasks.count == 3) } else { Issue.record("no tasks") }
            #expect(try await client.send(.get, "/v1/tasks?state=sleeping").errorField == "state")
            #expect(try await client.send(.get, "/v1/tasks?limit=0").errorField == "limit")
            #expect(try await client.send(.get, "/v1/tasks?cursor=zzz").errorField == "cursor")
            #expect(try await client.send(.get, "/v1/tasks?durable=nope").errorField == "durable")
            let memoryOnly = try await client.send(.get, "/v1/tasks?durable=false")
            #expect(memoryOnly.status == .ok && memoryOnly.json["tasks"] == [], "no in-process pool: no fire-and-forget tasks")
        }
    }

    @Test func batchIsOneTransaction() async throws {
        let harness = try Harness()
        try await harness.test { client, _ in
            let ok = try await client.send(.post, "/v1/tasks/batch", #"[{"kind":"echo"},{"kind":"sleep","args":{"seconds":0}},{"kind":"echo","queue":"q"}]"#)
            #expect(ok.status == .accepted)
            if case .array(let tasks)? = ok.json["tasks"] { #expect(tasks.count == 3) } else { Issue.record("no tasks") }
            let bad = try await client.send(.post, "/v1/tasks/batch", #"[{"kind":"echo"},{"kind":7}]"#)
            #expect(bad.status == .badRequest && bad.errorField == "[1].kind")
            let unknown = try await client.send(.post, "/v1/tasks/batch", #"[{"kind":"echo"},{"kind":"nope"}]"#)
            #expect(unknown.status == .unprocessableContent && unknown.errorField == "[1].kind")
            let mixed = try await client.send(.post, "/v1/tasks/batch", #"[{"kind":"echo"},{"kind":"echo","durable":false}]"#)
            #expect(mixed.status == .badRequest && mixed.errorField == "durable")
            // A key repeated in one batch for another task names the place, not a task never stored.
            let repeated = try await client.send(.post, "/v1/tasks/batch",
                                                 #"[{"kind":"echo","idempotency_key":"k"},{"kind":"echo","queue":"q","idempotency_key":"k"},{"kind":"sleep","idempotency_key":"k"}]"#)
            #expect(repeated.status == .conflict && repeated.errorCode == "idempotency_conflict" && repeated.errorField == "[2].idempotency_key")
            #expect(repeated.json["error"]?["message"]?.stringValue?.contains("[0]") == true, "\(repeated.json)")
            #expect(try await harness.store.counts().reduce(0) { $0 + $1.counts.values.reduce(0, +) } == 3)
            // The same task twice under one key is one task.
            let same = try await client.send(.post, "/v1/tasks/batch", #"[{"kind":"echo","idempotency_key":"s"},{"kind":"echo","idempotency_key":"s"}]"#)
            #expect(same.status == .accepted && same.json["tasks"]?[0]?["id"] == same.json["tasks"]?[1]?["id"])
        }
    }

    @Test func fireAndForgetNeedsALocalPool() async throws {
        try await Harness().test { client, _ in
            let refused = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","durable":false}"#)
            #expect(refused.status == .unprocessableContent && refused.errorCode == "no_local_pool" && refused.errorField == "durable")
        }
        let harness = try Harness()
        try await harness.test(pool: 2) { client, _ in
            let created = try await client.send(.post, "/v1/tasks?wait=10", #"{"kind":"echo","args":{"v":1},"durable":false}"#)
            #expect(created.status == .ok && created.json["state"] == "succeeded" && created.json["durable"] == false)
            let id = try #require(created.json["id"]?.stringValue)
            let read = try await client.send(.get, "/v1/tasks/\(id)")
            #expect(read.json["result"] == ["v": 1] && read.json["durable"] == false)
            #expect(try await harness.store.counts().isEmpty, "nothing written to SQLite")
            let otherQueue = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","durable":false,"queue":"elsewhere"}"#)
            #expect(otherQueue.status == .unprocessableContent)
        }
    }

    @Test func waitHoldsTheRequestUntilTheTaskIsFinal() async throws {
        try await Harness().test(pool: 4) { client, _ in
            let done = try await client.send(.post, "/v1/tasks?wait=10", #"{"kind":"sleep","args":{"seconds":0.2}}"#)
            #expect(done.status == .ok && done.json["state"] == "succeeded" && done.json["result"] == ["slept": 0.2])
            // Not final within the wait: 202 with the state as it stands (queued or, usually, running
            // already; a loaded machine may not have started it within 0.2 s).
            let pending = try await client.send(.post, "/v1/tasks?wait=0.2", #"{"kind":"sleep","args":{"seconds":5}}"#)
            #expect(pending.status == .accepted && (pending.json["state"] == "running" || pending.json["state"] == "queued"))
            let id = try #require(pending.json["id"]?.stringValue)
            let still = try await client.send(.get, "/v1/tasks/\(id)?wait=0.1")
            #expect(still.status == .accepted)
            _ = try await client.send(.post, "/v1/tasks/\(id)/cancel")
            let cancelled = try await client.send(.get, "/v1/tasks/\(id)?wait=10")
            #expect(cancelled.status == .ok && cancelled.json["state"] == "cancelled")
        }
    }

    @Test func aBatchWaitHoldsTheRequestUntilEveryTaskIsFinal() async throws {
        try await Harness().test(pool: 4) { client, _ in
            let body = #"[{"kind":"sleep","args":{"seconds":0.2}},{"kind":"echo","args":{"n":2}},{"kind":"sleep","args":{"seconds":0.1}}]"#
            let done = try await client.send(.post, "/v1/tasks/batch?wait=10", body)
            guard case .array(let tasks)? = done.json["tasks"] else { Issue.record("no tasks: \(done.json)"); return }
            #expect(done.status == .ok && tasks.map { $0["state"] } == ["succeeded", "succeeded", "succeeded"])
            #expect(tasks.map { $0["result"] } == [["slept": 0.2], ["n": 2], ["slept": 0.1]], "in the order given")
            // Not all final within the wait: 202, each task as it stands. (The wait leaves the echo
            // time to finish on a machine loaded by the other tests: 0.5 s once did not.)
            let pending = try await client.send(.post, "/v1/tasks/batch?wait=2", #"[{"kind":"echo"},{"kind":"sleep","args":{"seconds":30}}]"#)
            guard case .array(let mixed)? = pending.json["tasks"] else { Issue.record("no tasks: \(pending.json)"); return }
            #expect(pending.status == .accepted && mixed[0]["state"] == "succeeded")
            #expect(mixed[1]["state"] == "running" || mixed[1]["state"] == "queued")
            _ = try await client.send(.post, "/v1/tasks/\(mixed[1]["id"]?.stringValue ?? "")/cancel")
            let bad = try await client.send(.post, "/v1/tasks/batch?wait=301", #"[{"kind":"echo"}]"#)
            #expect(bad.status == .badRequest && bad.errorField == "wait")
        }
    }

    @Test func poolsShowCapacityAndResizeApplies() async throws {
        try await Harness().test(pool: 3) { client, worker in
            let pools = try await client.send(.get, "/v1/pools")
            guard case .array(let list)? = pools.json["pools"], let pool = list.first else { Issue.record("no pools"); return }
            #expect(pool["name"] == "default" && pool["target"] == 3 && pool["queues"] == ["default"])
            if case .array(let processes)? = pool["processes"] {
                #expect(processes.count == 1 && processes[0]["worker"] == .string(worker!.id) && processes[0]["target"] == 3)
            } else { Issue.record("no per-process breakdown") }
            let resized = try await client.send(.patch, "/v1/pools/default", #"{"concurrency":9}"#)
            #expect(resized.status == .ok && resized.json["capacity"]?["target"] == 9)
            #expect(worker?.pool("default")?.capacity().target == 9)
            let auto = try await client.send(.patch, "/v1/pools/default", #"{"autoscale":{"min":2,"max":6}}"#)
            #expect(auto.status == .ok && worker?.pool("default")?.capacity().autoscale == AutoscaleRange(min: 2, max: 6))
            #expect(try await client.send(.patch, "/v1/pools/nope", #"{"concurrency":2}"#).status == .notFound)
            #expect(try await client.send(.patch, "/v1/pools/default", #"{"concurrency":0}"#).errorField == "concurrency")
            #expect(try await client.send(.patch, "/v1/pools/default", #"{"size":2}"#).errorField == "size")
            #expect(try await client.send(.patch, "/v1/pools/default", #"{"autoscale":{"min":5,"max":2}}"#).errorField == "autoscale")
            #expect(try await client.send(.patch, "/v1/pools/default?worker=someone-else", #"{"concurrency":2}"#).status == .notFound)
        }
    }

    @Test func workersQueuesHealthAndMetrics() async throws {
        try await Harness().testAPI(pool: 2, metrics: true) { client, worker, _ in
            let before = try await client.send(.get, "/metrics")
            let succeededBefore = sample(String(buffer: before.body), "sluice_task_attempts_total", ["pool": "default", "outcome": "succeeded"]) ?? 0
            #expect(try await client.send(.post, "/v1/tasks?wait=5", #"{"kind":"echo"}"#).json["state"] == "succeeded")
            let workers = try await client.send(.get, "/v1/workers")
            #expect(await eventually {
                guard case .array(let list)? = (try? await client.send(.get, "/v1/workers"))?.json["workers"] else { return false }
                return list.contains { $0["id"] == .string(worker!.id) }
            })
            #expect(workers.status == .ok)
            let queues = try await client.send(.get, "/v1/queues")
            #expect(queues.status == .ok)
            if case .array(let list)? = queues.json["durable"] {
                #expect(list.first?["queue"] == "default" && list.first?["counts"]?["succeeded"] == 1)
            } else { Issue.record("no durable counts") }
            let health = try await client.send(.get, "/healthz")
            #expect(health.status == .ok && health.json["status"] == "ok" && health.json["pools"] == ["default"])
            let metrics = try await client.send(.get, "/metrics")
            let text = String(buffer: metrics.body)
            #expect(metrics.status == .ok && metrics.headers[.contentType] == "text/plain; version=0.0.4")
            #expect(sample(text, "sluice_queue_tasks", ["queue": "default", "state": "succeeded"]) == 1)
            #expect(sample(text, "sluice_pool_target", ["pool": "default"]) == 2)
            #expect(sample(text, "sluice_http_waiting_requests") == 0)
            // Other tests' pools named default share the process's registry: the counter moved by at least this task.
            #expect((sample(text, "sluice_task_attempts_total", ["pool": "default", "outcome": "succeeded"]) ?? 0) >= succeededBefore + 1)
            #expect((sample(text, "sluice_task_run_seconds_count", ["pool": "default"]) ?? 0) >= 1)
            #expect(text.contains("# HELP sluice_task_attempts_total ") && text.contains("# HELP sluice_queue_tasks "))
        }
        try await Harness().test { client, _ in
            let off = try await client.send(.get, "/metrics")
            #expect(off.status == .notFound, "no registry given: metrics off")
        }
    }

    @Test func tokensAreRequiredExceptForHealth() async throws {
        try await Harness().test(tokens: ["s3cret", "other"]) { client, _ in
            let none = try await client.send(.get, "/v1/pools")
            #expect(none.status == .unauthorized && none.errorCode == "unauthorized" && none.headers[.wwwAuthenticate] != nil)
            let wrong = try await client.send(.get, "/v1/pools", headers: [.authorization: "Bearer s3cre"])
            #expect(wrong.status == .unauthorized)
            let basic = try await client.send(.get, "/v1/pools", headers: [.authorization: "Basic czNjcmV0"])
            #expect(basic.status == .unauthorized)
            #expect(try await client.send(.get, "/v1/pools", headers: [.authorization: "Bearer s3cret"]).status == .ok)
            #expect(try await client.send(.get, "/v1/pools", headers: [.authorization: "Bearer other"]).status == .ok)
            #expect(try await client.send(.get, "/v1/pools", headers: [.authorization: "bearer other"]).status == .ok)
            #expect(try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#).status == .unauthorized)
            #expect(try await client.send(.get, "/healthz").status == .ok)
        }
    }

    @Test func queueDepthBoundAnswers503WithRetryAfter() async throws {
        var limits = SluiceAPI.Limits()
        limits.maxQueueDepth = 2
        limits.queueDepthRefresh = .zero
        try await Harness().test(limits: limits) { client, _ in
            #expect(try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#).status == .accepted)
            #expect(try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#).status == .accepted)
            let full = try await client.send(.post, "/v1/tasks", #"{"kind":"echo"}"#)
            #expect(full.status == .serviceUnavailable && full.errorCode == "queue_full" && full.headers[.retryAfter] == "1")
            #expect(try await client.send(.post, "/v1/tasks", #"{"kind":"echo","queue":"other"}"#).status == .accepted)
        }
    }
}

/// Fire-and-forget tasks live only in this process: their number is bounded, and they count
/// towards the queue-depth bound like durable ones.
@Suite(.timeLimit(.minutes(4))) struct FireAndForgetBoundTests {
    @Test func unfinishedTasksInMemoryAreBounded() async throws {
        var limits = SluiceAPI.Limits()
        limits.maxMemoryTasks = 3
        limits.queueDepthRefresh = .zero
        let harness = try Harness()
        try await harness.test(pool: 1, limits: limits) { client, _ in
            // Delayed ten minutes: unfinished for the whole test.
            let later = #"{"kind":"echo","durable":false,"delay":600}"#
            var accepted: [String] = []
            for _ in 0..<3 {
                let created = try await client.send(.post, "/v1/tasks", later)
                #expect(created.status == .accepted)
                accepted.append(try #require(created.json["id"]?.stringValue))
            }
            let full = try await client.send(.post, "/v1/tasks", later)
            #expect(full.status == .serviceUnavailable && full.errorCode == "overloaded" && full.headers[.retryAfter] == "1")
            #expect(full.json["error"]?["message"]?.stringValue?.contains("--max-memory-tasks") == true)
            let batch = try await client.send(.post, "/v1/tasks/batch", "[\(later)]")
            #expect(batch.status == .serviceUnavailable && batch.errorCode == "overloaded")
            // Durable tasks are not bounded by memory.
            #expect(try await client.send(.post, "/v1/tasks", #"{"kind":"echo","delay":600}"#).status == .accepted)
            // Nothing accepted was lost, nothing refused was kept.
            for id in accepted { #expect(try await client.send(.get, "/v1/tasks/\(id)").json["state"] == "scheduled") }
            #expect(try await harness.memory.counts().first?.counts[.scheduled] == 3)
            // A finished task makes room.
            #expect(try await client.send(.post, "/v1/tasks/\(accepted[0])/cancel").json["state"] == "cancelled")
            #expect(try await client.send(.post, "/v1/tasks", later).status == .accepted)
        }
    }

    /// Between two counts of memory, tasks admitted since the last one are added to it: a burst
    /// cannot slip past the bound while the count is reused.
    @Test func theBoundHoldsBetweenCounts() async throws {
        var limits = SluiceAPI.Limits()
        limits.maxMemoryTasks = 2
        limits.queueDepthRefresh = .seconds(3600)
        try await Harness().test(pool: 1, limits: limits) { client, _ in
            let later = #"{"kind":"echo","durable":false,"delay":600}"#
            #expect(try await client.send(.post, "/v1/tasks/batch", "[\(later),\(later)]").status == .accepted)
            let full = try await client.send(.post, "/v1/tasks", later)
            #expect(full.status == .serviceUnavailable && full.errorCode == "overloaded")
        }
    }

    @Test func queueDepthCountsTasksInMemory() async throws {
        var limits = SluiceAPI.Limits()
        limits.maxQueueDepth = 2
        limits.queueDepthRefresh = .zero
        try await Harness().test(pool: 1, limits: limits) { client, _ in
            // The pool's one slot is held, so the next fire-and-forget tasks stay queued in memory.
            let blocker = try #require(try await client.send(.post, "/v1/tasks", #"{"kind":"sleep","args":{"seconds":60},"durable":false}"#).json["id"]?.stringValue)
            #expect(await eventually { (try? await client.send(.get, "/v1/tasks/\(blocker)"))?.json["state"] == "running" })
            for _ in 0..<2 { #expect(try await client.send(.post, "/v1/tasks", #"{"kind":"echo","durable":false}"#).status == .accepted) }
            for durable in [false, true] {
                let full = try await client.send(.post, "/v1/tasks", #"{"kind":"echo","durable":\#(durable)}"#)
                #expect(full.status == .serviceUnavailable && full.errorCode == "queue_full", "durable: \(durable)")
            }
            _ = try await client.send(.post, "/v1/tasks/\(blocker)/cancel")
        }
    }
}
