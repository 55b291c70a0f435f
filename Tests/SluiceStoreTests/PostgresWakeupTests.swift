import Foundation
import SluiceCore
@testable import SluicePostgres
import SluiceStore
import SluiceTestSupport
import Synchronization
import Testing

/// LISTEN/NOTIFY between processes: each `PostgresTaskStore` here stands for one process (its own
/// pool and its own listening connection), as `sluice worker` on another host would.
@Suite(.timeLimit(.minutes(4))) struct PostgresWakeupTests {
    /// The queues a store's events announced.
    final class Heard: Sendable {
        private let queues = Mutex<[String]>([])
        init(_ store: PostgresTaskStore) { store.events.onEnqueue { queues in self.queues.withLock { $0 += queues.sorted() } } }
        func contains(_ queue: String) -> Bool { queues.withLock { $0.contains(queue) } }
        func count(_ queue: String) -> Int { queues.withLock { $0.filter { $0 == queue }.count } }
    }

    /// The tasks of `ids` found final by a read made on each finish notice `store` hears.
    final class Seen: Sendable {
        private let state = Mutex<(finished: Set<TaskID>, reads: [Task<Void, Never>])>(([], []))
        init(_ store: PostgresTaskStore, _ ids: [TaskID]) {
            store.events.onFinishElsewhere {
                let read = Task { if let found = try? await store.tasks(ids, onlyFinal: true) { self.state.withLock { $0.finished.formUnion(found.keys) } } }
                self.state.withLock { $0.reads.append(read) }
            }
        }
        var finished: Set<TaskID> { state.withLock { $0.finished } }
        func settle() async { for read in state.withLock({ $0.reads }) { await read.value } }
    }

    @Test func anEnqueueWakesTheOtherProcessesOfItsSchemaOnly() async throws {
        try await TestPostgres.withSchema { configuration in
            try await TestPostgres.withSchema { elsewhere in
                try await PostgresTaskStore.withStore(configuration) { producer in
                    try await PostgresTaskStore.withStore(configuration) { worker in
                        try await PostgresTaskStore.withStore(elsewhere) { stranger in
                            let heardByWorker = Heard(worker), heardByProducer = Heard(producer), heardByStranger = Heard(stranger)
                            #expect(await eventually { worker.hearsEveryEnqueue && stranger.hearsEveryEnqueue && producer.hearsEveryEnqueue })
                            _ = try await producer.enqueue(EnqueueRequest(kind: "k", queue: "mail"))
                            #expect(await eventually { heardByWorker.contains("mail") })
                            // The stranger's schema has its own channel; the producer announced its
                            // own enqueue once, locally, and ignores the echo of its notify.
                            _ = try await stranger.enqueue(EnqueueRequest(kind: "k", queue: "marker"))
                            #expect(await eventually { heardByStranger.contains("marker") })
                            #expect(!heardByStranger.contains("mail"))
                            #expect(!heardByWorker.contains("marker"))
                            #expect(heardByProducer.count("mail") == 1)
                        }
                    }
                }
            }
        }
    }

    /// Tasks that become ready without an enqueue are announced to the other processes as
    /// enqueues are: staged when due (by the leader's stager or a claim), handed back by a
    /// stopping worker, retried by hand. Before, the other hosts' pools found them at their next
    /// backstop poll, up to a second later.
    @Test func tasksThatBecomeReadyWithoutAnEnqueueWakeTheOtherProcesses() async throws {
        try await TestPostgres.withSchema { configuration in
            let clock = ManualClock()
            var actorConfiguration = configuration
            actorConfiguration.clock = clock
            try await PostgresTaskStore.withStore(actorConfiguration) { actor in
                try await PostgresTaskStore.withStore(configuration) { listener in
                    let heard = Heard(listener)
                    #expect(await eventually { listener.hearsEveryEnqueue })
                    // Past the 5 ms between two notices of one queue from one process.
                    func settle() async throws { try await Task.sleep(for: .milliseconds(20)) }
                    _ = try await actor.enqueue(EnqueueRequest(kind: "k", queue: "later", runAt: clock.now().addingTimeInterval(60)))
                    let id = try await actor.enqueue(EnqueueRequest(kind: "k", queue: "back", maxAttempts: 1)).task.id
                    #expect(await eventually { heard.count("back") == 1 })
                    let before = heard.count("later")
                    try await settle()
                    clock.advance(by: .seconds(61))
                    #expect(try await actor.stageDue(limit: 10) == 1)
                    #expect(await eventually { heard.count("later") == before + 1 }, "staged")
                    try await settle()
                    let claimed = try await actor.claim(queues: ["back"], limit: 1, owner: "w", leaseDuration: .seconds(30))
                    try await actor.release(claimed.compactMap(\.lease))
                    #expect(await eventually { heard.count("back") == 2 }, "released")
                    try await settle()
                    let again = try await actor.claim(queues: ["back"], limit: 1, owner: "w", leaseDuration: .seconds(30))
                    #expect(try await actor.fail(again[0].lease!, failure: TaskFailure("boom")).state == .failed)
                    #expect(try await actor.retry(id).state == .queued)
                    #expect(await eventually { heard.count("back") == 3 }, "retried by hand")
                }
            }
        }
    }

    @Test func aStoreThatStartsListeningWakesThePoolsOfQueuesWithReadyTasks() async throws {
        try await TestPostgres.withSchema { configuration in
            try await PostgresTaskStore.withStore(configuration) { producer in
                _ = try await producer.enqueue(EnqueueRequest(kind: "k", queue: "early"))
                _ = try await producer.enqueue(EnqueueRequest(kind: "k", queue: "later", runAt: Date().addingTimeInterval(3600)))
            }
            // Enqueued before it listened: no notify reaches it, the poll after connecting does.
            let worker = PostgresTaskStore(configuration)
            let heard = Heard(worker)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await worker.run() }
                defer { group.cancelAll() }
                try await worker.open()
                #expect(await eventually { heard.contains("early") })
                #expect(!heard.contains("later"), "a queue with only scheduled tasks has nothing ready")
            }
        }
    }

    /// A store stopped just after opening stops, whenever the stop lands: while its listener
    /// connects, polls or listens. A run that does not end is reported here and left behind,
    /// instead of hanging the test. (It passes with the listener's poll on the pool too: it guards
    /// the stop, and is no proof of what hung a CI run.)
    @Test func aStoreStoppedJustAfterOpeningStopsPromptly() async throws {
        try await TestPostgres.withSchema { configuration in
            for round in 0..<40 {
                let store = PostgresTaskStore(configuration)
                let stopped = Atomic<Bool>(false)
                let runner = Task {
                    try? await store.run()
                    stopped.store(true, ordering: .relaxed)
                }
                try await store.open()
                // The listener waits up to 20 ms for the open, then connects, LISTENs and polls.
                try await Task.sleep(for: .milliseconds(round % 20 * 3))
                runner.cancel()
                let ended = await eventually(timeout: .seconds(10)) { stopped.load(ordering: .relaxed) }
                try #require(ended, "round \(round): the store's run() did not end within 10 s of being cancelled")
            }
        }
    }

    /// A listening connection that goes silent without closing (a NAT or load balancer forgot it)
    /// is found out by its probe and given up, so pools go back to polling and the listener tries
    /// again: the listener's traffic runs through a proxy that, on cue, passes nothing more and
    /// closes nothing. (Before the probe the store went on believing it heard every enqueue.)
    @Test func aListeningConnectionThatGoesSilentIsGivenUp() async throws {
        try await TestPostgres.withSchema { configuration in
            guard case .tcp(let host, let port) = configuration.endpoint else { Issue.record("a TCP server expected"); return }
            let dir = try TempDir()
            defer { dir.remove() }
            let cue = dir.path("silent")
            let proxy = try ChildProcess(executable: "/usr/bin/python3", ["-c", Self.silentProxy, host, String(port), cue])
            defer { proxy.kill9() }
            let line = try #require(await proxy.line(startingWith: "port "))
            var probed = configuration
            probed.endpoint = .tcp(host: "127.0.0.1", port: Int(line.dropFirst(5))!)
            probed.listenProbeInterval = .milliseconds(300)
            probed.listenProbeTimeout = .milliseconds(500)
            probed.connectTimeout = .seconds(2)
            try await PostgresTaskStore.withStore(probed) { store in
                #expect(await eventually { store.hearsEveryEnqueue }, "listening through the proxy")
                FileManager.default.createFile(atPath: cue, contents: nil)
                #expect(await eventually(timeout: .seconds(10)) { !store.hearsEveryEnqueue }, "the silent connection was given up")
                try? FileManager.default.removeItem(atPath: cue)
                proxy.kill9()  // the store's own connections, silent too, now end at once
            }
        }
    }

    /// A TCP proxy to HOST PORT that prints `port N`, then passes bytes both ways until the file CUE
    /// exists, and from then on drops them, closing nothing.
    static let silentProxy = """
        import os, socket, sys, threading
        host, port, cue = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(64)
        print("port", server.getsockname()[1], flush=True)
        def pump(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data: return
                    if not os.path.exists(cue): b.sendall(data)
            except OSError: return
        while True:
            client, _ = server.accept()
            upstream = socket.create_connection((host, port))
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        """

    @Test func pollOnlyOpensNoListeningConnection() async throws {
        try await TestPostgres.withSchema { configuration in
            var pollOnly = configuration
            pollOnly.listen = false
            try await PostgresTaskStore.withStore(pollOnly) { store in
                try await Task.sleep(for: .milliseconds(300))
                #expect(!store.hearsEveryEnqueue)
            }
        }
    }

    /// A finish in one process is announced to the others after its commit, the last of a burst
    /// too: notices are sent at most once per interval (20 ms; 10 s here), and the finishes
    /// skipped meanwhile get one at its end. Without that one the last two completions here, made
    /// within 10 s after the first, would never be heard.
    @Test func finishesAreHeardByTheOtherProcessesTheLastOfABurstToo() async throws {
        try await TestPostgres.withSchema { configuration in
            var slow = configuration
            slow.finishNoticeInterval = .seconds(10)
            try await PostgresTaskStore.withStore(configuration) { server in
                try await PostgresTaskStore.withStore(slow) { worker in
                    #expect(await eventually { server.hearsEveryEnqueue && worker.hearsEveryEnqueue })
                    var ids: [TaskID] = []
                    for _ in 0..<3 { ids.append(try await worker.enqueue(EnqueueRequest(kind: "k", maxAttempts: 1)).task.id) }
                    let claimed = try await worker.claim(queues: ["default"], limit: 3, owner: "w", leaseDuration: .seconds(30))
                    #expect(claimed.count == 3)
                    // What a server's waiting requests do on each notice: read the awaited tasks.
                    let seen = Seen(server, ids)
                    let started = ContinuousClock.now
                    _ = try await worker.complete(claimed[0].lease!, result: nil)
                    #expect(await eventually { seen.finished == [claimed[0].id] })
                    await seen.settle()
                    for task in claimed.dropFirst() { _ = try await worker.complete(task.lease!, result: nil) }
                    #expect(ContinuousClock.now - started < .seconds(10), "the last two finished within the interval")
                    #expect(await eventually(timeout: .seconds(60)) { seen.finished == Set(ids) })
                    await seen.settle()
                }
            }
        }
    }

    /// A worker that stops within its notice interval announces the finishes of that interval as
    /// it stops, instead of leaving other processes' waiters to their polls.
    @Test func finishesJustBeforeAStoreStopsAreAnnouncedAsItStops() async throws {
        try await TestPostgres.withSchema { configuration in
            var slow = configuration
            slow.finishNoticeInterval = .seconds(60)
            try await PostgresTaskStore.withStore(configuration) { server in
                let seen = try await PostgresTaskStore.withStore(slow) { worker in
                    #expect(await eventually { server.hearsEveryEnqueue && worker.hearsEveryEnqueue })
                    var ids: [TaskID] = []
                    for _ in 0..<2 { ids.append(try await worker.enqueue(EnqueueRequest(kind: "k", maxAttempts: 1)).task.id) }
                    let claimed = try await worker.claim(queues: ["default"], limit: 2, owner: "w", leaseDuration: .seconds(30))
                    #expect(claimed.count == 2)
                    let seen = Seen(server, ids)
                    _ = try await worker.complete(claimed[0].lease!, result: nil)
                    #expect(await eventually { seen.finished == [claimed[0].id] })
                    await seen.settle()
                    // Inside the interval: announced only at its end, a minute away.
                    _ = try await worker.complete(claimed[1].lease!, result: nil)
                    return (seen, Set(ids))
                }
                #expect(await eventually(timeout: .seconds(10)) { seen.0.finished == seen.1 }, "the stopping store announced its last finish")
                await seen.0.settle()
            }
        }
    }

    @Test func notifiesAreThrottledPerQueue() {
        let wakeups = PostgresWakeups(schema: "s")
        #expect(wakeups.payloads(for: ["a", "b"]).count == 2)
        #expect(wakeups.payloads(for: ["a", "c"]).map { wakeups.notice(heard: $0) } == [nil], "own payloads are ignored")
        let other = PostgresWakeups(schema: "s")
        #expect(other.payloads(for: ["a"]).map { wakeups.notice(heard: $0) } == [.enqueued(queue: "a")])
        #expect(wakeups.notice(heard: other.finishedPayload) == .finished && wakeups.notice(heard: wakeups.finishedPayload) == nil)
        #expect(PostgresWakeups.channel(schema: nil) == "sluice")
        #expect(PostgresWakeups.channel(schema: "jobs") == "sluice.jobs")
        let long = PostgresWakeups.channel(schema: String(repeating: "x", count: 63))
        #expect(long.utf8.count <= 63 && long == PostgresWakeups.channel(schema: String(repeating: "x", count: 63)))
        #expect(PostgresWakeups.channel(schema: "Odd \"name\"") != "sluice.Odd \"name\"")
    }
}
