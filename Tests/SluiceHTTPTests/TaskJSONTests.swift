import Foundation
import SluiceCore
@testable import SluiceHTTP
import Testing

/// The task answer is written by hand, in a fixed key order; it must be the very text the generic
/// `JSONValue` writer gives for the same document (sorted keys), whatever fields are set.
@Suite struct TaskJSONTests {
    /// The API's task document, built the plain way.
    func document(_ task: TaskRecord, durable: Bool) -> JSONValue {
        var object: [String: JSONValue] = [
            "id": .string(task.id.rawValue), "kind": .string(task.kind), "queue": .string(task.queue),
            "state": .string(task.state.rawValue), "attempt": .int(Int64(task.attempt)),
            "max_attempts": .int(Int64(task.maxAttempts)), "priority": .int(Int64(task.priority)), "args": task.args,
            "result": task.result ?? .null, "error": task.error.map { .string($0) } ?? .null,
            "attempt_errors": .array(task.attemptErrors.map {
                ["attempt": .int(Int64($0.attempt)), "message": .string($0.message), "at": .string(TaskJSON.time($0.at))]
            }),
            "durable": .bool(durable), "timeout": .double(task.timeout.seconds),
            "created_at": .string(TaskJSON.time(task.createdAt)), "run_at": .string(TaskJSON.time(task.runAt)),
            "started_at": task.startedAt.map { .string(TaskJSON.time($0)) } ?? .null,
            "finished_at": task.finishedAt.map { .string(TaskJSON.time($0)) } ?? .null,
            "worker": task.worker.map { .string($0) } ?? .null,
            "cancel_requested": .bool(task.cancelRequested),
            "idempotency_key": task.idempotencyKey.map { .string($0) } ?? .null,
        ]
        if let lease = task.lease {
            object["lease"] = ["owner": .string(lease.owner), "expires_at": .string(TaskJSON.time(lease.expiresAt))]
        }
        return .object(object)
    }

    func tasks() -> [TaskRecord] {
        let now = Date(timeIntervalSince1970: 1_764_000_000.123)
        let ids = TaskIDGenerator(clock: SystemClock())
        let fresh = TaskRecord(id: ids.next(), request: EnqueueRequest(kind: "echo", args: ["n": 1, "text": "a\"b\\c\nd é"]), now: now)
        var running = TaskRecord(id: ids.next(), request: EnqueueRequest(kind: "sleep", queue: "slow", priority: -3, idempotencyKey: "order-7"), now: now)
        running.state = .running
        running.attempt = 2
        running.startedAt = now.addingTimeInterval(1.5)
        running.worker = "host-1:42"
        running.lease = TaskLease(taskID: running.id, owner: "host-1:42", attempt: 2, token: 99, expiresAt: now.addingTimeInterval(31))
        running.attemptErrors = [AttemptError(attempt: 1, message: "boom \"quoted\"\ttab", at: now.addingTimeInterval(1))]
        running.cancelRequested = true
        var done = running
        done.lease = nil
        done.state = .failed
        done.error = "timed out after 0.25 s"
        done.result = ["partial": [1, 2.5, nil, true], "ü": [:]]
        done.finishedAt = now.addingTimeInterval(2)
        done.timeout = .milliseconds(250)
        return [fresh, running, done]
    }

    @Test(arguments: [true, false])
    func aTaskIsWrittenAsItsDocumentWouldBe(durable: Bool) {
        for task in tasks() {
            #expect(String(decoding: TaskJSON.bytes(task, durable: durable), as: UTF8.self) == document(task, durable: durable).jsonText())
        }
    }

    @Test func aPageIsWrittenAsItsDocumentWouldBe() {
        let tasks = tasks()
        let members: [String: JSONValue] = ["next_cursor": .string(tasks[0].id.rawValue), "partial": false, "a": 1]
        var whole = members
        whole["tasks"] = .array(tasks.map { document($0, durable: true) })
        #expect(String(decoding: TaskJSON.page(tasks, durable: true, with: members), as: UTF8.self) == JSONValue.object(whole).jsonText())
        #expect(String(decoding: TaskJSON.page([], durable: false), as: UTF8.self) == #"{"tasks":[]}"#)
    }
}
