import Foundation
import Hummingbird
import HummingbirdTesting
import SluiceCore
import SluiceHTTP
import SluiceStore
import Testing

/// The remote worker protocol (docs/WORKER-PROTOCOL.md) through the router: register, long-poll
/// claim, heartbeat, outcomes and release, over the same store verbs `sluice worker` uses.
@Suite(.timeLimit(.minutes(4))) struct RemoteWorkerTests {
    static let register = #"{"host":"py-1","pid":42,"kinds":["resize"],"pools":[{"name":"py","queues":["images"],"concurrency":4}]}"#
    static let claim = #"{"pools":[{"name":"py","queues":["images"],"free":4}],"wait":5}"#

    @Test func aRegisteredWorkerShowsLikeAnyProcessAndItsKindsAreAccepted() async throws {
        try await Harness().test { client, _ in
            let unknown = try await client.send(.post, "/v1/tasks", #"{"kind":"resize","queue":"images"}"#)
            #expect(unknown.status == .unprocessableContent, "no process runs resize yet")
            let registered = try await client.send(.put, "/v1/workers/py-1", Self.register)
            #expect(registered.status == .ok && registered.json["id"] == "py-1" && registered.json["lease"] == 30.0)
            #expect(registered.json["heartbeat_interval"] == 1.0 && registered.json["pools"] == [])
            let workers = try await client.send(.get, "/v1/workers").json["workers"]
            #expect(workers?[0]?["id"] == "py-1" && workers?[0]?["pid"] == 42 && workers?[0]?["this_server"] == false)
            let accepted = try await client.send(.post, "/v1/tasks", #"{"kind":"resize","queue":"images"}"#)
            #expect(accepted.status == .accepted, "registration makes the kind known at once: \(accepted.json)")
            _ = try await client.send(.put, "/v1/workers/py-1", Self.register)  // the next heartbeat counts what waits
            let pool = try await client.send(.get, "/v1/pools").json["pools"]?[0]
            #expect(pool?["name"] == "py" && pool?["target"] == 4 && pool?["free"] == 4 && pool?["waiting"] == 1)
            #expect(pool?["processes"]?[0]?["worker"] == "py-1")
            #expect(try await client.send(.delete, "/v1/workers/py-1").status == .noContent)
            #expect(try await client.send(.get, "/v1/workers").json["workers"] == [])
        }
    }

    @Test func aClaimWaitsForAnEnqueueThenTheOutcomeIsFencedByItsToken() async throws {
        try await Harness().test { client, _ in
            _ = try await client.send(.put, "/v1/workers/py-1", Self.register)
            let started = ContinuousClock.now
            // A long poll of 20 s: answered well before it ends only if the enqueue woke it (a CI
            // run under load took 3.1 s to answer, so the margin is wide).
            let claim = Self.claim.replacingOccurrences(of: #""wait":5"#, with: #""wait":20"#)
            async let claimed = client.send(.post, "/v1/workers/py-1/claim", claim)
            try await Task.sleep(for: .milliseconds(300))
            let enqueued = try await client.send(.post, "/v1/tasks", #"{"kind":"resize","queue":"images","args":{"w":3}}"#)
            let answer = try await claimed
            let waited = ContinuousClock.now - started
            #expect(answer.status == .ok && waited >= .milliseconds(250) && waited < .seconds(12), "woken by the enqueue: \(waited)")
            let task = try #require(answer.json["tasks"]?[0])
            #expect(task["id"] == enqueued.json["id"] && task["pool"] == "py" && task["kind"] == "resize" && task["args"] == ["w": 3])
            #expect(task["attempt"] == 1 && task["timeout"]?.doubleValue != nil && task["lease_expires_at"]?.stringValue != nil)
            let id = try #require(task["id"]?.stringValue), token = try #require(task["token"]?.stringValue)
            #expect(Int64(token) != nil, "the token is a string of digits")
            let beat = try await client.send(.post, "/v1/workers/py-1/heartbeat", #"{"host":"py-1","leases":[{"id":"\#(id)","token":"\#(token)"}]}"#)
            #expect(beat.json["leases"] == [["id": .string(id), "status": "held"]])
            let forged = try await client.send(.post, "/v1/workers/py-1/heartbeat", #"{"leases":[{"id":"\#(id)","token":"1"}]}"#)
            #expect(forged.json["leases"] == [["id": .string(id), "status": "lost"]], "a wrong token renews nothing")
            let doubled = try await client.send(.post, "/v1/workers/py-1/heartbeat", #"{"leases":[{"id":"\#(id)","token":"\#(token)"},{"id":"\#(id)","token":"1"}]}"#)
            #expect(doubled.status == .badRequest && doubled.errorField == "leases[1].id")
            let wrong = try await client.send(.post, "/v1/workers/py-2/outcomes", #"{"outcomes":[{"id":"\#(id)","token":"\#(token)","result":1}]}"#)
            #expect(wrong.json["outcomes"]?[0]?["error"]?["code"] == "lease_lost", "another worker's name does not hold the lease")
            let done = try await client.send(.post, "/v1/workers/py-1/outcomes", #"{"outcomes":[{"id":"\#(id)","token":"\#(token)","result":{"ok":true}}]}"#)
            #expect(done.status == .ok && done.json["outcomes"] == [["id": .string(id), "state": "succeeded"]])
            let twice = try await client.send(.post, "/v1/workers/py-1/outcomes", #"{"outcomes":[{"id":"\#(id)","token":"\#(token)","result":2}]}"#)
            #expect(twice.json["outcomes"]?[0]?["error"]?["code"] == "lease_lost", "completing twice changes nothing")
            let read = try await client.send(.get, "/v1/tasks/\(id)")
            #expect(read.json["state"] == "succeeded" && read.json["result"] == ["ok": true] && read.json["worker"] == "py-1")
        }
    }

    @Test func aClaimWithNothingReadyAnswersEmptyAfterItsWait() async throws {
        try await Harness().test { client, _ in
            let started = ContinuousClock.now
            let answer = try await client.send(.post, "/v1/workers/py-1/claim", #"{"pools":[{"name":"py","queues":["images"],"free":2}],"wait":0.3}"#)
            #expect(answer.status == .ok && answer.json["tasks"] == [] && ContinuousClock.now - started >= .milliseconds(300))
        }
    }

    @Test func shutdownAnswersAWaitingClaimAtOnce() async throws {
        try await Harness().testAPI { client, _, api in
            let started = ContinuousClock.now
            async let claimed = client.send(.post, "/v1/workers/py-1/claim", #"{"pools":[{"name":"py","queues":["images"],"free":2}],"wait":30}"#)
            let holding = ContinuousClock.now + .seconds(10)
            while api.waitingRequests == 0 && ContinuousClock.now < holding { try await Task.sleep(for: .milliseconds(20)) }
            #expect(api.waitingRequests == 1, "the claim is being held")
            let shutdownAt = ContinuousClock.now
            api.beginShutdown()
            let answer = try await claimed
            #expect(answer.status == .ok && answer.json["tasks"] == [] && ContinuousClock.now - shutdownAt < .seconds(2),
                    "a long poll must not hold up the drain (\(ContinuousClock.now - started) after it began)")
        }
    }

    @Test func failuresRetryLaterOrNotAtAllAndCancelsReachTheWorker() async throws {
        try await Harness().test { client, _ in
            _ = try await client.send(.put, "/v1/workers/py-1", Self.register)
            for _ in 0..<4 { _ = try await client.send(.post, "/v1/tasks", #"{"kind":"resize","queue":"images","max_attempts":3}"#) }
            let tasks = try #require(try await client.send(.post, "/v1/workers/py-1/claim", Self.claim).json["tasks"]?.arrayValue)
            #expect(tasks.count == 4)
            func ref(_ i: Int) -> String { #""id":"\#(tasks[i]["id"]!.stringValue!)","token":"\#(tasks[i]["token"]!.stringValue!)""# }
            let cancel = try await client.send(.post, "/v1/tasks/\(tasks[3]["id"]!.stringValue!)/cancel")
            #expect(cancel.json["cancel_requested"] == true)
            let beat = try await client.send(.post, "/v1/workers/py-1/heartbeat", #"{"leases":[{\#(ref(3))}]}"#)
            #expect(beat.json["leases"]?[0]?["status"] == "cancel_requested")
            let answer = try await client.send(.post, "/v1/workers/py-1/outcomes", """
                {"outcomes":[{\(ref(0)),"error":"Traceback: boom","retry_after":120},{\(ref(1)),"error":"bad input","retry":false},
                {\(ref(2)),"error":"flaky"},{\(ref(3)),"error":"stopped","cancel":true}]}
                """)
            #expect(answer.json["outcomes"]?.arrayValue?.compactMap { $0["state"]?.stringValue } == ["retrying", "failed", "retrying", "cancelled"])
            let later = try await client.send(.get, "/v1/tasks/\(tasks[0]["id"]!.stringValue!)").json
            #expect(later["attempt_errors"]?[0]?["message"] == "Traceback: boom")
            let runAt = try #require(later["run_at"]?.stringValue.flatMap { try? Date($0, strategy: .iso8601) })
            #expect(runAt.timeIntervalSinceNow > 100, "retried after the 120 s asked for")
        }
    }

    @Test func outcomesRefillTheFreedSlotsInTheSameRequest() async throws {
        try await Harness().test { client, _ in
            _ = try await client.send(.put, "/v1/workers/py-1", Self.register)
            for _ in 0..<3 { _ = try await client.send(.post, "/v1/tasks", #"{"kind":"resize","queue":"images"}"#) }
            let first = try #require(try await client.send(.post, "/v1/workers/py-1/claim", #"{"pools":[{"name":"py","queues":["images"],"free":1}]}"#).json["tasks"]?[0])
            let refill = #""claim":{"pools":[{"name":"py","queues":["images"],"free":3}]}"#
            let answer = try await client.send(.post, "/v1/workers/py-1/outcomes", """
                {"outcomes":[{"id":"\(first["id"]!.stringValue!)","token":"\(first["token"]!.stringValue!)","result":1}],\(refill)}
                """)
            #expect(answer.json["outcomes"]?[0]?["state"] == "succeeded")
            let refilled = try #require(answer.json["tasks"]?.arrayValue)
            #expect(refilled.count == 2 && refilled.allSatisfy { $0["pool"] == "py" && $0["token"]?.stringValue != nil })
            let empty = try await client.send(.post, "/v1/workers/py-1/outcomes", #"{"outcomes":[],\#(refill)}"#)
            #expect(empty.json == ["outcomes": [], "tasks": []], "nothing left: answered at once, never held")
        }
    }

    /// A paused queue gives remote workers nothing, as it gives `sluice worker` nothing: not to a
    /// claim, not to an outcome batch's refill.
    @Test func pausedQueuesGiveRemoteWorkersNothing() async throws {
        try await Harness().test { client, _ in
            _ = try await client.send(.put, "/v1/workers/py-1", Self.register)
            _ = try await client.send(.post, "/v1/tasks", #"{"kind":"resize","queue":"images"}"#)
            _ = try await client.send(.post, "/v1/tasks", #"{"kind":"resize","queue":"bulk"}"#)
            #expect(try await client.send(.post, "/v1/queues/images/pause").status == .ok)
            let both = #"{"pools":[{"name":"py","queues":["images"],"free":2},{"name":"bulk","queues":["bulk"],"free":2}]}"#
            let claimed = try #require(try await client.send(.post, "/v1/workers/py-1/claim", both).json["tasks"]?.arrayValue)
            #expect(claimed.map { $0["queue"] } == ["bulk"], "\(claimed)")
            let refill = try await client.send(.post, "/v1/workers/py-1/outcomes", #"{"outcomes":[],"claim":{"pools":[{"name":"py","queues":["images"],"free":2}]}}"#)
            #expect(refill.json["tasks"] == [])
            #expect(try await client.send(.post, "/v1/queues/images/resume").status == .ok)
            let resumed = try await client.send(.post, "/v1/workers/py-1/claim", #"{"pools":[{"name":"py","queues":["images"],"free":2}]}"#)
            #expect(resumed.json["tasks"]?.arrayValue?.map { $0["queue"] } == ["images"])
        }
    }

    /// A task whose cancel was asked for while its worker held it unstarted must not run after all:
    /// handed back, it ends cancelled, not queued for someone else.
    @Test func aReleasedTaskWhoseCancelWasAskedForEndsCancelled() async throws {
        try await Harness().test { client, _ in
            _ = try await client.send(.put, "/v1/workers/py-1", Self.register)
            _ = try await client.send(.post, "/v1/tasks", #"{"kind":"resize","queue":"images"}"#)
            let task = try #require(try await client.send(.post, "/v1/workers/py-1/claim", Self.claim).json["tasks"]?[0])
            let id = try #require(task["id"]?.stringValue), token = try #require(task["token"]?.stringValue)
            #expect(try await client.send(.post, "/v1/tasks/\(id)/cancel").json["cancel_requested"] == true)
            _ = try await client.send(.post, "/v1/workers/py-1/release", #"{"leases":[{"id":"\#(id)","token":"\#(token)"}]}"#)
            let read = try await client.send(.get, "/v1/tasks/\(id)").json
            #expect(read["state"] == "cancelled" && read["attempt"] == 0 && read["error"] == "cancelled by request before it started", "\(read.jsonText())")
        }
    }

    @Test func aReleasedTaskIsQueuedAgainAndAVanishedWorkersTasksAreRescued() async throws {
        var limits = SluiceAPI.Limits()
        limits.remoteLease = .milliseconds(500)
        let harness = try Harness()
        try await harness.test(limits: limits) { client, _ in
            _ = try await client.send(.put, "/v1/workers/py-1", Self.register)
            for _ in 0..<2 { _ = try await client.send(.post, "/v1/tasks", #"{"kind":"resize","queue":"images"}"#) }
            let tasks = try #require(try await client.send(.post, "/v1/workers/py-1/claim", Self.claim).json["tasks"]?.arrayValue)
            #expect(tasks.count == 2)
            let first = tasks[0]
            let released = try await client.send(.post, "/v1/workers/py-1/release",
                                                 #"{"leases":[{"id":"\#(first["id"]!.stringValue!)","token":"\#(first["token"]!.stringValue!)"}]}"#)
            #expect(released.json["released"] == 1)
            #expect(try await client.send(.get, "/v1/tasks/\(first["id"]!.stringValue!)").json["state"] == "queued")
            try await Task.sleep(for: .milliseconds(700))
            let rescued = try await harness.store.rescueExpiredLeases()
            #expect(rescued.requeued.map(\.rawValue) == [tasks[1]["id"]!.stringValue!], "the lease lapsed without a heartbeat")
        }
    }

    /// A heartbeat that sends only its leases keeps the kinds and pools the worker registered:
    /// before, it recorded none, so enqueues of its kinds were refused as unknown a second later
    /// and its pools vanished from `GET /v1/pools`.
    @Test func aHeartbeatOfLeasesAloneKeepsTheRegisteredKindsAndPools() async throws {
        let harness = try Harness()
        try await harness.test { client, _ in
            _ = try await client.send(.put, "/v1/workers/py-1", Self.register)
            #expect(try await client.send(.post, "/v1/tasks", #"{"kind":"resize","queue":"images"}"#).status == .accepted)
            _ = try await client.send(.patch, "/v1/pools/py", #"{"concurrency":6}"#)
            let beat = try await client.send(.post, "/v1/workers/py-1/heartbeat", #"{"leases":[]}"#)
            #expect(beat.status == .ok && beat.json["pools"]?[0]?["concurrency"] == 6, "the operator's change still reaches it: \(beat.json)")
            let recorded = try await harness.store.workers(seenWithin: .seconds(15)).first { $0.id == "py-1" }
            #expect(recorded?.kinds == ["resize"] && recorded?.host == "py-1" && recorded?.pid == 42)
            let pool = try await client.send(.get, "/v1/pools").json["pools"]?[0]
            #expect(pool?["name"] == "py" && pool?["target"] == 4 && pool?["waiting"] == 1, "\(String(describing: pool))")
            // A registration says everything: one without kinds or pools has none.
            _ = try await client.send(.put, "/v1/workers/py-1", #"{"host":"py-1","pid":42}"#)
            let bare = try await harness.store.workers(seenWithin: .seconds(15)).first { $0.id == "py-1" }
            #expect(bare?.kinds == [] && bare?.pools == [])
        }
    }

    /// A worker id registered again from another host or process shows the new one (a restart, a
    /// move), not the first registration's forever.
    @Test func registeringAgainShowsTheNewHostAndPid() async throws {
        let harness = try Harness()
        try await harness.test { client, _ in
            _ = try await client.send(.put, "/v1/workers/py-1", Self.register)
            let first = try #require(try await harness.store.workers(seenWithin: .seconds(15)).first { $0.id == "py-1" })
            try await Task.sleep(for: .milliseconds(20))
            _ = try await client.send(.post, "/v1/workers/py-1/heartbeat", Self.register)
            let beat = try await harness.store.workers(seenWithin: .seconds(15)).first { $0.id == "py-1" }
            #expect(beat?.startedAt == first.startedAt, "the same process: its start stays")
            _ = try await client.send(.put, "/v1/workers/py-1", Self.register.replacingOccurrences(of: #""host":"py-1","pid":42"#, with: #""host":"py-2","pid":7"#))
            let moved = try await client.send(.get, "/v1/workers").json["workers"]?[0]
            #expect(moved?["host"] == "py-2" && moved?["pid"] == 7, "\(String(describing: moved))")
            let again = try await harness.store.workers(seenWithin: .seconds(15)).first { $0.id == "py-1" }
            #expect(again.map { $0.startedAt > first.startedAt } == true, "another process: a new start")
        }
    }

    /// The advisor reads a remote worker's pool from its heartbeats and claims, as it reads a
    /// `sluice worker`'s from its own figures: a pool whose 4 slots are all busy is not "unknown"
    /// (it was, for good) and its claimed task's wait is measured.
    @Test func theAdvisorMeasuresARemoteWorkersPool() async throws {
        try await Harness().test { client, _ in
            let busy = Self.register.replacingOccurrences(of: #""concurrency":4}"#, with: #""concurrency":4,"busy":4,"processed":10}"#)
            _ = try await client.send(.put, "/v1/workers/py-1", busy)
            _ = try await client.send(.post, "/v1/tasks", #"{"kind":"resize","queue":"images"}"#)
            #expect(try await client.send(.post, "/v1/workers/py-1/claim", Self.claim).json["tasks"]?.arrayValue?.count == 1)
            try await Task.sleep(for: .milliseconds(100))
            _ = try await client.send(.post, "/v1/workers/py-1/heartbeat", busy)
            let pool = try await client.send(.get, "/v1/pools").json["pools"]?[0]
            let advisor = pool?["advisor"]
            #expect(advisor?["verdict"] == "ok" && advisor?["utilisation"] == 1.0 && advisor?["wait_p50"]?.doubleValue != nil, "\(String(describing: advisor))")
            #expect(pool?["processes"]?[0]?["utilisation"] == 1.0)
        }
    }

    /// The pool's run time for the advisor weighs each process's median by the tasks it finishes:
    /// one process that reported a 20,000 s median and finishes nothing does not stand for a pool
    /// whose other process finishes tasks of 0.1 s.
    @Test func theAdvisorsRunTimeWeighsProcessesByTheirWork() async throws {
        try await Harness().test { client, _ in
            func pool(_ processed: Int, _ p50: Double) -> String {
                #"{"host":"h","pid":1,"kinds":["resize"],"pools":[{"name":"py","queues":["images"],"concurrency":4,"processed":\#(processed),"run_time_p50":\#(p50)}]}"#
            }
            _ = try await client.send(.put, "/v1/workers/fast", pool(10, 0.1))
            _ = try await client.send(.put, "/v1/workers/slow", pool(0, 20_000))
            try await Task.sleep(for: .milliseconds(100))
            _ = try await client.send(.post, "/v1/workers/fast/heartbeat", pool(30, 0.1))
            _ = try await client.send(.post, "/v1/workers/slow/heartbeat", pool(0, 20_000))
            let pools = try await client.send(.get, "/v1/pools").json["pools"]
            #expect(pools?[0]?["run_time_p50"] == 20_000.0, "the pool's own figure stays the largest, as documented")
            #expect(pools?[0]?["advisor"]?["service_time"] == 0.1, "\(String(describing: pools?[0]?["advisor"]))")
        }
    }

    @Test func anOperatorsResizeReachesTheWorkerInItsNextHeartbeat() async throws {
        try await Harness().test { client, _ in
            _ = try await client.send(.put, "/v1/workers/py-1", Self.register)
            let resized = try await client.send(.patch, "/v1/pools/py", #"{"concurrency":20}"#)
            #expect(resized.status == .ok && resized.json["applied_to"] == ["py-1"])
            let beat = try await client.send(.post, "/v1/workers/py-1/heartbeat", Self.register)
            #expect(beat.json["pools"]?[0]?["name"] == "py" && beat.json["pools"]?[0]?["concurrency"] == 20)
            #expect(beat.json["pools"]?[0]?["updated_at"]?.stringValue != nil)
        }
    }

    /// A token that is there but no token says what a token is, not that it is missing; a lease
    /// refused names no attempt the worker never sent.
    @Test func tokenMessagesSayWhatIsWrong() async throws {
        try await Harness().test { client, _ in
            for token in [#""0""#, #""-5""#, #""12.0""#, #""99999999999999999999""#] {
                let refused = try await client.send(.post, "/v1/workers/py-1/outcomes", #"{"outcomes":[{"id":"01JD0000000000000000000000","token":\#(token),"result":1}]}"#)
                #expect(refused.errorField == "outcomes[0].token" && refused.json["error"]?["message"]?.stringValue?.contains("digits, from 1 to") == true, "\(token): \(refused.json)")
            }
            let id = try #require(try await client.send(.post, "/v1/tasks", #"{"kind":"echo","queue":"images"}"#).json["id"]?.stringValue)
            let lost = try await client.send(.post, "/v1/workers/py-1/outcomes", #"{"outcomes":[{"id":"\#(id)","token":"7","result":1}]}"#)
            let message = lost.json["outcomes"]?[0]?["error"]?["message"]?.stringValue ?? ""
            #expect(message.contains("the lease of py-1 is no longer held"), "\(message)")
        }
    }

    @Test(arguments: [
        ("/v1/workers/py-1", #"{"pools":[{"name":"py","queues":["images"]}]}"#, "pools[0].concurrency"),
        ("/v1/workers/py-1", #"{"pools":[{"name":"py","queues":[],"concurrency":2}]}"#, "pools[0].queues"),
        ("/v1/workers/py-1", #"{"pools":[{"name":"bad name","queues":["a"],"concurrency":2}]}"#, "pools[0].name"),
        ("/v1/workers/py-1", #"{"kinds":["ok",3]}"#, "kinds[1]"),
        ("/v1/workers/py-1", #"{"leases":[]}"#, "leases"),
        ("/v1/workers/bad%20id", #"{}"#, "id"),
        ("/v1/workers/py-1/claim", #"{"pools":[{"name":"py","queues":["a"]}]}"#, "pools[0].free"),
        ("/v1/workers/py-1/claim", #"{"pools":[{"name":"py","queues":["a"],"free":1}],"wait":-1}"#, "wait"),
        ("/v1/workers/py-1/claim", #"{"wait":1}"#, "pools"),
        ("/v1/workers/py-1/outcomes", #"{"outcomes":[{"id":"nope","token":"1","result":1}]}"#, "outcomes[0].id"),
        ("/v1/workers/py-1/outcomes", #"{"outcomes":[{"id":"01JD0000000000000000000000","result":1}]}"#, "outcomes[0].token"),
        ("/v1/workers/py-1/outcomes", #"{"outcomes":[{"id":"01JD0000000000000000000000","token":"1"}]}"#, "outcomes[0].result"),
        ("/v1/workers/py-1/outcomes", #"{"outcomes":[{"id":"01JD0000000000000000000000","token":"1","result":1,"error":"x"}]}"#, "outcomes[0].error"),
        ("/v1/workers/py-1/outcomes", #"{"outcomes":[{"id":"01JD0000000000000000000000","token":"1","error":"x","retry":false,"retry_after":3}]}"#, "outcomes[0].retry_after"),
        ("/v1/workers/py-1/outcomes", #"{"outcomes":[{"id":"01JD0000000000000000000000","token":"1","result":1,"retry":false}]}"#, "outcomes[0].retry"),
        ("/v1/workers/py-1/release", #"{"leases":[{"id":"01JD0000000000000000000000","token":"x"}]}"#, "leases[0].token"),
        ("/v1/workers/py-1/outcomes", #"{"outcomes":[],"claim":{"pools":[{"name":"py","queues":["a"],"free":1}],"wait":1}}"#, "claim.wait"),
        ("/v1/workers/py-1/outcomes", #"{"outcomes":[],"claim":{"pools":[{"name":"py","queues":["a"]}]}}"#, "claim.pools[0].free"),
    ] as [(String, String, String)])
    func badInputIsRefusedNamingTheField(path: String, body: String, field: String) async throws {
        try await Harness().test { client, _ in
            let method: HTTPRequest.Method = path.hasSuffix("py-1") || path.hasSuffix("id") ? .put : .post
            let response = try await client.send(method, path, body)
            #expect(response.status == .badRequest, "\(path) \(body) → \(response.status) \(response.json)")
            #expect(response.errorField == field, "\(body): \(response.json)")
        }
    }
}

extension JSONValue {
    var arrayValue: [JSONValue]? { if case .array(let items) = self { items } else { nil } }
}
