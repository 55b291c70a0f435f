import Foundation
import SluiceCore
import SluiceStore
import Testing

/// The store verbs behind the console, on every store: search, bounded scans with cursors,
/// deleting finished tasks, and pausing queues.
@Suite(.timeLimit(.minutes(4))) struct ConsoleStoreTests {
    let lease = Duration.seconds(30)

    func withStore(_ kind: StoreKind, _ body: (any TaskStore & WorkerDirectory, ManualClock) async throws -> Void) async throws {
        let clock = ManualClock()
        try await SluiceStoreTests.withStore(kind, clock: clock) { store in
            try await body(store as! any TaskStore & WorkerDirectory, clock)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func searchByArgsIDPrefixAndTime(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let a = try await store.enqueue(EnqueueRequest(kind: "bill", args: ["customer": 42, "note": "first order"])).task
            clock.advance(by: .seconds(10))
            let b = try await store.enqueue(EnqueueRequest(kind: "bill", args: ["customer": "42", "vip": true])).task
            clock.advance(by: .seconds(10))
            let c = try await store.enqueue(EnqueueRequest(kind: "mail", queue: "mail", args: ["customer": 7, "note": "second"])).task

            func ids(_ filter: TaskFilter) async throws -> [TaskID] { try await store.list(filter, limit: 50, after: nil).tasks.map(\.id) }
            // A number and its text both match `customer=42`; newest first.
            #expect(try await ids(TaskFilter(argsFields: [.init(name: "customer", value: "42")])) == [b.id, a.id])
            #expect(try await ids(TaskFilter(argsFields: [.init(name: "vip", value: "true")])) == [b.id])
            #expect(try await ids(TaskFilter(argsFields: [.init(name: "missing", value: "1")])) == [])
            #expect(try await ids(TaskFilter(argsContains: "order")) == [a.id])
            #expect(try await ids(TaskFilter(queue: "mail", argsContains: "second")) == [c.id])
            #expect(try await ids(TaskFilter(kind: "bill", argsFields: [.init(name: "customer", value: "42")])) == [b.id, a.id])
            // An id prefix, and a creation-time range (an id range: ids sort by creation).
            let prefix = String(b.id.rawValue.prefix(24))
            #expect(try await ids(TaskFilter(ids: TaskID.range(prefix: prefix.lowercased())!)) == [b.id])
            let middle = TaskID.lowerBound(at: b.createdAt)...TaskID.lowerBound(at: c.createdAt)
            #expect(try await ids(TaskFilter(ids: middle)) == [b.id])
            #expect(try await ids(TaskFilter(states: [.queued], ids: TaskID.lowerBound(at: a.createdAt)...TaskID.range(prefix: "")!.upperBound)) == [c.id, b.id, a.id])
        }
    }

    /// `args.NAME=VALUE` follows one rule in every store: a string by its value, a number or
    /// boolean by its JSON text as stored, null, objects and arrays never. (SQLite matched
    /// `args.x=null` to a null and `args.x={"a":1}` to an object, PostgreSQL objects by jsonb's
    /// text, and the memory store took 3.0 for `3` where the others took it for `3.0`.)
    @Test(arguments: StoreKind.allCases)
    func anArgsFieldMatchesByOneRuleInEveryStore(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            let values: [String: JSONValue] = [
                "int": 42, "text": "42", "float": .double(3.0), "fraction": .double(2.5), "yes": true, "null": .null,
                "object": ["a": 1], "array": [1], "word": "null", "negative": -7,
            ]
            var ids: [String: TaskID] = [:]
            for (name, value) in values { ids[name] = try await store.enqueue(EnqueueRequest(kind: "k", args: ["x": value])).task.id }
            func matched(_ value: String) async throws -> Set<String> {
                let found = Set(try await store.list(TaskFilter(argsFields: [.init(name: "x", value: value)]), limit: 50, after: nil).tasks.map(\.id))
                return Set(ids.filter { found.contains($0.value) }.keys)
            }
            #expect(try await matched("42") == ["int", "text"])
            #expect(try await matched("3.0") == ["float"])
            #expect(try await matched("3") == [])
            #expect(try await matched("2.5") == ["fraction"])
            #expect(try await matched("-7") == ["negative"])
            #expect(try await matched("true") == ["yes"])
            #expect(try await matched("null") == ["word"], "only the string \"null\"")
            #expect(try await matched(#"{"a":1}"#) == [])
            #expect(try await matched(#"{"a": 1}"#) == [])
            #expect(try await matched("[1]") == [])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func boundedScansAnswerPartialPagesWithACursor(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            var made: [TaskID] = []
            for n in 0..<12 {
                made.append(try await store.enqueue(EnqueueRequest(kind: n == 1 || n == 10 ? "rare" : "common")).task.id)
            }
            var filter = TaskFilter(kind: "rare")
            filter.scanLimit = 5
            // Newest first: rows 11…7 are examined, only 10 is rare: a partial page.
            let first = try await store.list(filter, limit: 10, after: nil)
            #expect(first.tasks.map(\.id) == [made[10]])
            #expect(first.partial && first.nextCursor == made[7])
            let second = try await store.list(filter, limit: 10, after: first.nextCursor)
            #expect(second.tasks.isEmpty && second.partial && second.nextCursor == made[2])
            let third = try await store.list(filter, limit: 10, after: second.nextCursor)
            #expect(third.tasks.map(\.id) == [made[1]])
            #expect(!third.partial && third.nextCursor == nil)
            // A full page within the bound has an ordinary cursor.
            var common = TaskFilter(kind: "common")
            common.scanLimit = 5
            let full = try await store.list(common, limit: 2, after: nil)
            #expect(full.tasks.map(\.id) == [made[11], made[9]] && full.nextCursor == made[9] && !full.partial)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func onlyFinishedTasksCanBeDeleted(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            let live = try await store.enqueue(EnqueueRequest(kind: "k")).task
            let error = await #expect(throws: SluiceError.self) { try await store.delete(live.id) }
            #expect(error?.code == .invalidTransition)
            _ = try await store.cancel(live.id)
            let deleted = try await store.delete(live.id)
            #expect(deleted.state == .cancelled)
            #expect(try await store.task(live.id) == nil)
            let counts = try await store.counts().first { $0.queue == "default" }?.counts ?? [:]
            #expect((counts[.cancelled] ?? 0) == 0)
            let again = await #expect(throws: SluiceError.self) { try await store.delete(live.id) }
            #expect(again?.code == .notFound)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func nextReadyIsTheHeadOfEachQueueInClaimOrder(kind: StoreKind) async throws {
        try await withStore(kind) { store, clock in
            let old = try await store.enqueue(EnqueueRequest(kind: "k", queue: "mail")).task
            clock.advance(by: .seconds(5))
            let urgent = try await store.enqueue(EnqueueRequest(kind: "k", queue: "mail", priority: 10)).task
            _ = try await store.enqueue(EnqueueRequest(kind: "k", queue: "later", runAt: clock.now().addingTimeInterval(60)))
            #expect(try await store.nextReady(in: ["mail", "later", "none"]) == ["mail": urgent.runAt])
            _ = try await store.claim(queues: ["mail"], limit: 1, owner: "w", leaseDuration: lease)
            #expect(try await store.nextReady(in: ["mail"]) == ["mail": old.runAt])
            _ = try await store.cancel(old.id)
            #expect(try await store.nextReady(in: ["mail"]).isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func pausedQueuesAreStoredAndStillAcceptTasks(kind: StoreKind) async throws {
        try await withStore(kind) { store, _ in
            #expect(try await store.pausedQueues().isEmpty)
            try await store.setQueuePaused("mail", true)
            try await store.setQueuePaused("mail", true)
            try await store.setQueuePaused("other", true)
            #expect(try await store.pausedQueues() == ["mail", "other"])
            let task = try await store.enqueue(EnqueueRequest(kind: "k", queue: "mail")).task
            #expect(task.state == .queued)
            try await store.setQueuePaused("other", false)
            #expect(try await store.pausedQueues() == ["mail"])
        }
    }
}
