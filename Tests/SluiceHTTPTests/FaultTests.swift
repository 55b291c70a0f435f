import Foundation
import SluiceClient
import SluiceCore
import SluiceSQLite
import SluiceStore
import SluiceTestSupport
import Synchronization
import Testing

/// Faults with real processes: the server killed mid-enqueue, the database locked by another process,
/// a full disk, and 10,000 idle connections.
@Suite(.serialized, .timeLimit(.minutes(4))) struct FaultTests {
    @Test func everyAcknowledgedEnqueueSurvivesAKillDuringEnqueue() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let db = dir.path("enqueue-crash.db")
        let server = try await LiveServer(db: db, ["--no-pool"])
        let acknowledged = Acknowledged()
        let client = server.client
        // 50 clients enqueue as fast as they can; the server is killed under them.
        await withTaskGroup(of: Void.self) { group in
            for n in 0..<50 {
                group.addTask {
                    for i in 0..<400 {
                        guard let task = try? await client.enqueue(["kind": "echo", "args": ["client": .int(Int64(n)), "i": .int(Int64(i))]]),
                              let id = task["id"]?.stringValue else { return }
                        acknowledged.ids.withLock { $0.append(id) }
                    }
                }
            }
            group.addTask {
                _ = await eventually { acknowledged.ids.withLock { $0.count } >= 500 }
                server.process.kill9()
            }
        }
        let acked = acknowledged.ids.withLock { $0 }
        #expect(acked.count >= 500 && acked.count < 20_000, "the kill landed mid-stream (\(acked.count) acknowledged)")
        // After the crash, with no server running, the file holds every acknowledged task.
        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: db))
        var missing: [String] = []
        for id in acked where try await store.task(TaskID(id)!) == nil { missing.append(id) }
        #expect(missing.isEmpty, "\(missing.count) acknowledged enqueues lost")
    }

    @Test func aLockHeldByAnotherProcessIsWaitedOut() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let db = dir.path("locked.db")
        let server = try await LiveServer(db: db, ["--concurrency", "4"])
        let first = try await server.client.enqueue(["kind": "echo"], wait: 10)
        #expect(first["state"] == "succeeded")
        // A third process (sqlite3's own CLI would do; here, a raw connection on another thread)
        // holds the write lock for 2 s.
        let locker = try SQLiteConnection(path: db)
        try locker.execute("PRAGMA busy_timeout = 10000; BEGIN IMMEDIATE; INSERT INTO pool_settings (pool, worker, updated_at) VALUES ('lock', 'x', 0)")
        let released = Thread {
            Thread.sleep(forTimeInterval: 2)
            try? locker.execute("ROLLBACK")
        }
        released.start()
        let started = ContinuousClock.now
        let during = try await server.client.enqueue(["kind": "echo", "args": ["during": true]], wait: 20)
        #expect(ContinuousClock.now - started >= .seconds(1.5), "the enqueue waited for the lock")
        #expect(during["state"] == "succeeded", "the enqueue succeeded once the lock was released and the pool ran it")
        await server.stop()
    }

    /// The database on a 4 MB tmpfs that a filler file then fills: enqueues get 503 naming the full
    /// disk, the server stays up, tasks that were running are not failed for want of space, and
    /// everything works again once the filler is gone. Then the same file on the disk read-only.
    @Test(.enabled(if: getuid() == 0, "mounting a tmpfs needs root"))
    func aFullDiskAnswers503AndLosesNothing() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let disk = dir.path("disk")
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        try #require(await run("/bin/mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", disk) == 0, "mount a 4 MB tmpfs")
        defer { _ = try? ChildProcess(executable: "/bin/umount", ["-l", disk]).wait() }  // a defer cannot await
        let db = disk + "/full.db"
        let server = try await LiveServer(db: db, ["--concurrency", "4"])
        let client = server.client
        var running: [String] = []
        for _ in 0..<4 { running.append(try await client.enqueue(["kind": "sleep", "args": ["seconds": 2]])["id"]!.stringValue!) }
        let runningSince = ContinuousClock.now
        // Running before the disk fills: a claim is a write too, and would be refused like the enqueues.
        try #require(await eventually(timeout: .seconds(1.5)) {
            for id in running where (try? await client.task(id))?["state"] != "running" { return false }
            return true
        }, "the four sleeps started")

        let filler = disk + "/filler"
        let fd = open(filler, O_WRONLY | O_CREAT, 0o600)
        let chunk = [UInt8](repeating: 0x5A, count: 64 * 1024)
        while write(fd, chunk, chunk.count) > 0 {}
        close(fd)

        // SQLite may still have room in pages it holds; enqueue until the disk says no.
        var acknowledged: [String] = []
        var refusal: SluiceClient.Failure?
        let batch = JSONValue.array(Array(repeating: ["kind": "echo", "args": ["pad": .string(String(repeating: "x", count: 2000))]], count: 20))
        for _ in 0..<500 {
            do {
                let answer = try await client.send("POST", "/v1/tasks/batch", body: batch)
                if case .array(let tasks)? = answer.body["tasks"] { acknowledged += tasks.compactMap { $0["id"]?.stringValue } }
            } catch let failure as SluiceClient.Failure {
                refusal = failure
                break
            }
        }
        let refused = try #require(refusal, "the full disk refused an enqueue")
        #expect(refused.status == 503 && refused.code == "storage", "\(refused)")
        #expect(refused.message.contains("disk holding the database is full"), "\(refused.message)")
        #expect(try await client.send("GET", "/healthz").status == 200, "the server stays up")

        // The sleeps have finished while the disk was full: their outcome is pending or written, never a failure.
        try await Task.sleep(until: runningSince + .seconds(2.5))
        for id in running {
            let state = try await client.send("GET", "/v1/tasks/\(id)").body["state"]
            #expect(state == "running" || state == "succeeded", "\(id) is \(state ?? .null) while the disk is full")
        }

        unlink(filler)
        for id in running {
            let task = try await client.send("GET", "/v1/tasks/\(id)", query: ["wait": "30"]).body
            #expect(task["state"] == "succeeded" && task["attempt"] == 1, "\(task)")
        }
        let after = try await client.enqueue(["kind": "echo", "args": ["after": true]], wait: 10)
        #expect(after["state"] == "succeeded", "enqueues work again once space returns")

        await server.stop()

        // The same file on a disk remounted read-only (Linux refuses that while files are open for
        // writing, so between two runs). Whether SQLite can open a WAL database there depends on
        // whether its -shm file survived the last close: either the server refuses to start and
        // says why, or it starts, reads, and answers writes with 503 naming the cause.
        try #require(await run("/bin/mount", "-o", "remount,ro", disk) == 0, "remount read-only")
        let readOnly = try ChildProcess("sluice", ["serve", "--port", "0", "--db", db, "--log-level", "critical"])
        if let line = await readOnly.line(startingWith: "sluice: listening on "),
           let url = line.split(separator: " ").dropFirst(3).first.flatMap({ URL(string: String($0)) }) {
            let reader = SluiceClient(baseURL: url)
            #expect(try await reader.task(running[0])["state"] == "succeeded", "reads still work")
            do {
                _ = try await reader.enqueue(["kind": "echo", "args": ["readonly": true]])
                Issue.record("an enqueue on a read-only disk was acknowledged")
            } catch let failure as SluiceClient.Failure {
                #expect(failure.status == 503 && failure.code == "storage", "\(failure)")
                #expect(failure.message.contains("read-only"), "\(failure.message)")
            }
            readOnly.kill9()
        } else {
            #expect(await readOnly.wait() == 1)
            let message = readOnly.errorOutput()
            #expect(message.contains("is read-only") && message.contains("mount the disk read-write"), "\(message)")
        }
        try #require(await run("/bin/mount", "-o", "remount,rw", disk) == 0)
        let writer = try await LiveServer(db: db, ["--concurrency", "1"])
        let writable = try await writer.client.enqueue(["kind": "echo", "args": ["writable": true]], wait: 10)
        #expect(writable["state"] == "succeeded", "enqueues work again once the disk is writable")
        await writer.stop()

        let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: db))
        var missing = 0
        for id in acknowledged where try await store.task(TaskID(id)!) == nil { missing += 1 }
        #expect(missing == 0, "\(missing) of \(acknowledged.count) acknowledged enqueues lost")
    }

    /// Slowloris: 10,000 connections that send nothing or half a request. The server keeps
    /// answering others, closes the idle ones after --idle-timeout, and stays up.
    @Test func tenThousandIdleConnectionsAreOutlasted() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        // The idle timeout outlasts the 3 s the test gives the server to answer, so that on a loaded
        // machine a slow answer fails the check below, not the idle timer closing the connection.
        let server = try await LiveServer(db: dir.path("idle.db"), ["--concurrency", "2", "--idle-timeout", "5"])
        let port = server.client.baseURL.port!
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        for n in 0..<10_000 {
            guard let fd = connectLoopback(port: port) else { break }
            if n % 2 == 1 { _ = "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Le".withCString { send(fd, $0, strlen($0), 0) } }
            sockets.append(fd)
        }
        #expect(sockets.count == 10_000, "opened \(sockets.count) connections")

        let started = ContinuousClock.now
        #expect(try await server.client.send("GET", "/healthz").status == 200)
        let task = try await server.client.enqueue(["kind": "echo", "args": ["n": 1]], wait: 10)
        #expect(task["state"] == "succeeded")
        #expect(ContinuousClock.now - started < .seconds(3), "answered others while 10,000 connections idled")

        // After the idle timeout every one of them is closed by the server.
        let allClosed = await eventually(timeout: .seconds(30)) { sockets.allSatisfy { closedByPeer($0) } }
        #expect(allClosed, "\(sockets.filter { !closedByPeer($0) }.count) connections still open")
        #expect(try await server.client.send("GET", "/healthz").status == 200, "the server stays up")
        await server.stop()
    }
}

/// Ids the server acknowledged, collected from many client tasks.
final class Acknowledged: Sendable {
    let ids = Mutex<[String]>([])
}
