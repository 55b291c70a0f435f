import CSQLite
import Foundation
import Synchronization

/// One connection on a dedicated OS thread, with a queue of operations in front of it. SQLite calls
/// block (fsync, busy waits), so they run here and never on Swift's cooperative pool.
///
/// A writer executor does **group commit**: it takes every operation waiting when it wakes, runs
/// them in one `BEGIN IMMEDIATE` transaction (each in a savepoint, so one failing operation does not
/// undo the others), commits once, and only then answers each caller. One fsync serves the batch.
/// A batch in which no operation asked for durability (claims, heartbeats: bookkeeping that a power
/// loss may undo harmlessly, since it also stops the process that held the claim) commits without
/// the fsync; the next durable commit's fsync covers its pages too, the WAL being written in order.
final class SQLiteExecutor: @unchecked Sendable {
    enum Mode { case writer, reader }

    private let connection: SQLiteConnection
    private let mode: Mode
    private let maxBatch: Int
    /// Whether the connection syncs every commit (`synchronous = FULL`), so that a batch that asks
    /// for no durability may skip it.
    private let syncsEveryCommit: Bool
    /// Whether the connection is switched to `synchronous = NORMAL` now (writer thread only).
    private var relaxedNow = false
    /// Guards `pending` and `closed`; signalled when work arrives.
    private let condition = NSCondition()
    private var pending: [any PendingOperation] = []
    private var closed = false
    private let finished = NSCondition()
    private var running = true
    /// Transactions committed and operations run in them, to show how much group commit merges.
    let transactions = Atomic<Int>(0)
    let operations = Atomic<Int>(0)
    /// Operations taken from the queue so far (committed or not), for tests that form a group.
    let taken = Atomic<Int>(0)
    /// Whether a transaction is under way, and how many have ended: a write to the file heard
    /// while one runs, or after one ended since the last write heard, is this executor's own.
    let inTransaction = Atomic<Bool>(false)
    let transactionsEnded = Atomic<Int>(0)

    init(connection: SQLiteConnection, mode: Mode, name: String, maxBatch: Int = 4096, syncsEveryCommit: Bool = false) {
        self.connection = connection
        self.mode = mode
        self.maxBatch = maxBatch
        self.syncsEveryCommit = syncsEveryCommit
        let thread = Thread { [self] in loop() }
        thread.name = name
        thread.start()
    }

    /// Operations waiting for the thread (not counting one it is running).
    var pendingCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.count
    }

    /// Runs `body` on the executor's thread (inside the group's transaction for a writer). With
    /// `durable: false`, a power loss may undo the write (never a process crash).
    func perform<T: Sendable>(durable: Bool = true, _ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let operation = Operation(body: body, continuation: continuation, durable: durable)
            condition.lock()
            if closed {
                condition.unlock()
                continuation.resume(throwing: SQLiteStoreClosed())
                return
            }
            pending.append(operation)
            condition.signal()
            condition.unlock()
        }
    }

    /// Finishes queued work, stops the thread and waits for it.
    func close() {
        condition.lock()
        closed = true
        condition.signal()
        condition.unlock()
        finished.lock()
        while running { finished.wait() }
        finished.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while pending.isEmpty && !closed { condition.wait() }
            if pending.isEmpty && closed {
                condition.unlock()
                break
            }
            let take = min(pending.count, mode == .writer ? maxBatch : 1)
            let batch = Array(pending.prefix(take))
            pending.removeFirst(take)
            taken.add(take, ordering: .relaxed)
            condition.unlock()
            switch mode {
            case .writer: runTransaction(batch)
            case .reader: batch.forEach { $0.execute(connection); $0.finish() }
            }
        }
        // Closed before `close()` returns: the thread's own reference to this executor (and so to
        // the connection) outlives that return, and a file still open then holds its lock while
        // the next opener (a restarting process, a test) reads it.
        connection.close()
        finished.lock()
        running = false
        finished.signal()
        finished.unlock()
    }

    private func runTransaction(_ batch: [any PendingOperation]) {
        inTransaction.store(true, ordering: .sequentiallyConsistent)
        defer {
            transactionsEnded.add(1, ordering: .sequentiallyConsistent)
            inTransaction.store(false, ordering: .sequentiallyConsistent)
        }
        // Set before the transaction begins (SQLite refuses it inside one), only when it changes;
        // a switch that fails is tried again before the next transaction.
        let relaxed = syncsEveryCommit && !batch.contains { $0.durable }
        if relaxed != relaxedNow {
            do {
                try connection.run(relaxed ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL")
                relaxedNow = relaxed
            } catch where !relaxed {
                // Still NORMAL: a durable write must not commit without its fsync.
                batch.forEach { $0.finish(overriding: error) }
                return
            } catch {
                // Not relaxed after all: this batch commits with the fsync it did not need.
            }
        }
        do {
            try connection.run("BEGIN IMMEDIATE")
        } catch {
            batch.forEach { $0.finish(overriding: error) }
            return
        }
        let single = batch.count == 1
        for operation in batch {
            // A lone operation needs no savepoint: if it fails, the whole transaction rolls back.
            if single {
                operation.execute(connection)
                if endedBySQLite(operation, batch) { return }
                continue
            }
            do {
                // `run` reuses prepared statements; `execute` would parse these again every time.
                try connection.run("SAVEPOINT op")
                operation.execute(connection)
                if endedBySQLite(operation, batch) { return }
                if operation.failed { try connection.run("ROLLBACK TO op") }
                try connection.run("RELEASE op")
            } catch {
                // The savepoint machinery itself failed: the transaction is unusable.
                try? connection.execute("ROLLBACK")
                batch.forEach { $0.finish(overriding: error) }
                return
            }
        }
        do {
            if single && batch[0].failed {
                try connection.execute("ROLLBACK")
            } else {
                try connection.run("COMMIT")
                transactions.add(1, ordering: .relaxed)
                operations.add(batch.count, ordering: .relaxed)
            }
            batch.forEach { $0.finish() }
        } catch {
            // Nothing was committed, so no caller may be told otherwise.
            try? connection.execute("ROLLBACK")
            batch.forEach { $0.finish(overriding: error) }
        }
    }

    /// Whether `operation` failed in a way that made SQLite roll the whole transaction back (a
    /// full disk, an I/O error): then nothing of `batch` is committed, and every caller learns
    /// that operation's error, not the "no such savepoint" or "no transaction is active" that
    /// settling the savepoint or the transaction would now raise.
    private func endedBySQLite(_ operation: any PendingOperation, _ batch: [any PendingOperation]) -> Bool {
        guard operation.failed, !connection.isInTransaction, let cause = operation.error else { return false }
        for other in batch { if other === operation { other.finish() } else { other.finish(overriding: cause) } }
        return true
    }
}

/// Raised when an operation reaches a closed store.
struct SQLiteStoreClosed: Error {}

private protocol PendingOperation: AnyObject {
    func execute(_ connection: SQLiteConnection)
    var durable: Bool { get }
    var failed: Bool { get }
    var error: (any Error)? { get }
    func finish()
    func finish(overriding error: any Error)
}

/// One caller's operation and the continuation that answers it once its transaction is settled.
private final class Operation<T: Sendable>: PendingOperation {
    let body: @Sendable (SQLiteConnection) throws -> T
    let continuation: CheckedContinuation<T, any Error>
    let durable: Bool
    var result: Result<T, any Error>?

    init(body: @escaping @Sendable (SQLiteConnection) throws -> T, continuation: CheckedContinuation<T, any Error>, durable: Bool) {
        self.body = body
        self.continuation = continuation
        self.durable = durable
    }

    func execute(_ connection: SQLiteConnection) {
        result = Result { try body(connection) }
    }

    var failed: Bool { if case .failure = result { true } else { false } }
    var error: (any Error)? { if case .failure(let error) = result { error } else { nil } }

    func finish() {
        continuation.resume(with: result ?? .failure(SQLiteStoreClosed()))
    }

    func finish(overriding error: any Error) {
        continuation.resume(throwing: error)
    }
}
