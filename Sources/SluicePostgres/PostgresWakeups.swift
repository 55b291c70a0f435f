import Foundation
import Logging
import PostgresNIO
import SluiceCore
import SluiceStore
import Synchronization

/// Wake-ups between processes (LISTEN/NOTIFY), so that a worker on another host starts a task
/// milliseconds after it was enqueued instead of at its next poll.
///
/// Sending: the enqueuing transaction notifies the store's channel with the queue's name, at most
/// once per queue per `notifyInterval` from this process (one notify per row would serialise
/// commits on the server's notification queue). A fetcher woken by the first notify keeps polling
/// with a short backoff, so the tasks whose notify was skipped are found within a few milliseconds.
///
/// Finishes are announced the same way, so that a request waiting for a task on one host is answered
/// when a worker on another finishes it: after its commit, at most once per `finishNoticeInterval`
/// (20 ms), and once more at the end of that interval when tasks finished meanwhile (`PostgresTaskStore`).
///
/// Hearing: one dedicated connection per process LISTENs (a pooled one would lose its LISTEN when
/// handed back) and passes each queue it hears to `StoreEvents`. When the connection drops (the
/// server restarted, the network broke) it reconnects with backoff, then polls once: it wakes the
/// pools of every queue with ready tasks, because notifications sent while nobody listened are lost.
/// While it is down, `isListening` is false and pools poll at their short interval again.
final class PostgresWakeups: Sendable {
    /// The store's channel: one per schema, so stores that share a database do not wake each other.
    let channel: String
    /// This store instance, so that it ignores its own notifications (it announced them already).
    let sender: String
    static let notifyInterval: Duration = .milliseconds(5)
    /// The listening connection's `application_name`, as `pg_stat_activity` shows it.
    static let applicationName = "sluice listener"
    private let lastSent = Mutex<[String: ContinuousClock.Instant]>([:])
    private let listening = Atomic<Bool>(false)

    init(schema: String?) {
        channel = Self.channel(schema: schema)
        sender = String(UInt64.random(in: 0 ... .max), radix: 36)
    }

    /// `sluice` for the default schema, `sluice.SCHEMA` for another; a hash of the schema's name when
    /// it would not fit PostgreSQL's 63-byte identifiers or holds characters worth no quoting risk.
    static func channel(schema: String?) -> String {
        guard let schema else { return "sluice" }
        let plain = schema.utf8.allSatisfy { $0 == UInt8(ascii: "_") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        if plain && schema.utf8.count <= 56 { return "sluice." + schema }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a: stable across processes and hosts
        for byte in schema.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "sluice." + String(hash, radix: 16)
    }

    /// Whether the listening connection is up now.
    var isListening: Bool { listening.load(ordering: .relaxed) }

    /// Of the queues a transaction enqueued to, those to notify now (not notified in the last
    /// `notifyInterval`), as payloads; marks them sent.
    func payloads(for queues: Set<String>) -> [String] {
        let now = ContinuousClock.now
        return lastSent.withLock { lastSent in
            queues.filter { queue in
                if let last = lastSent[queue], now - last < Self.notifyInterval { return false }
                lastSent[queue] = now
                return true
            }.map { "\(sender) \($0)" }
        }
    }

    /// What a notification says: tasks enqueued to a queue, or tasks finished.
    enum Notice: Equatable {
        case enqueued(queue: String)
        case finished
    }

    /// The payload that says this process finished tasks: `!` is in no queue's name.
    var finishedPayload: String { "\(sender) !finished" }

    /// What a notification says, or `nil` for this instance's own.
    func notice(heard payload: String) -> Notice? {
        guard let space = payload.firstIndex(of: " ") else { return nil }
        guard payload[..<space] != sender else { return nil }
        let rest = String(payload[payload.index(after: space)...])
        return rest == "!finished" ? .finished : .enqueued(queue: rest)
    }

    /// LISTENs until the task is cancelled, reconnecting with backoff; each queue heard, and the
    /// queues `readyQueues` names after every (re)connect, go to `events`. `readyQueues` runs on the
    /// listening connection itself, never on the store's pool, which may already be stopping when the
    /// listener connects; the listener then depends on nothing but its own connection.
    /// `probe` must answer every `listenProbeInterval`; when it fails the connection is closed and
    /// made again, as after any other loss.
    func listen(_ configuration: PostgresStoreConfiguration, events: StoreEvents, logger: Logger,
                readyQueues: @Sendable (PostgresConnection) async throws -> Set<String>,
                probe: @escaping @Sendable (PostgresConnection) async throws -> Void) async {
        var backoff = Duration.milliseconds(100)
        var attempt = 0
        while !Task.isCancelled {
            attempt += 1
            var connection: PostgresConnection?
            do {
                let opened = try await PostgresConnection.connect(configuration: try configuration.connectionConfiguration(applicationName: Self.applicationName),
                                                                  id: attempt, logger: logger)
                connection = opened
                try await opened.listen(on: channel) { notifications in
                    // A silent loss ends the notifications only when the connection is closed. Probed
                    // from the start: the first look below may already hang on such a connection.
                    let prober = Task {
                        while !Task.isCancelled {
                            guard (try? await Task.sleep(for: configuration.listenProbeInterval)) != nil else { return }
                            do {
                                try await probe(opened)
                            } catch {
                                guard !Task.isCancelled else { return }
                                logger.warning("the listening connection to \(configuration.place) did not answer; connecting again: \(PostgresErrors.describe(error))")
                                try? await opened.close()
                                return
                            }
                        }
                    }
                    defer { prober.cancel() }
                    listening.store(true, ordering: .relaxed)
                    if attempt > 1 { logger.info("listening for enqueues on \(configuration.place) again") }
                    backoff = .milliseconds(100)
                    do {
                        events.heard(enqueuesIn: try await readyQueues(opened))
                    } catch {
                        // Before the first migration there is no table, and so nothing ready.
                        logger.debug("polling for ready queues failed: \(PostgresErrors.describe(error))")
                    }
                    // Finishes sent while nobody listened are lost too: whoever waits looks again.
                    events.heardFinishElsewhere()
                    for try await notification in notifications {
                        switch notice(heard: notification.payload) {
                        case .enqueued(let queue)?: events.heard(enqueuesIn: [queue])
                        case .finished?: events.heardFinishElsewhere()
                        case nil: break
                        }
                    }
                }
            } catch {
                if !Task.isCancelled {
                    logger.warning("listening for enqueues on \(configuration.place) failed (pools poll meanwhile): \(PostgresErrors.describe(error))")
                }
            }
            listening.store(false, ordering: .relaxed)
            try? await connection?.close()
            guard !Task.isCancelled else { break }
            let jitter = 0.5 + configuration.unitRandom()
            try? await Task.sleep(for: backoff * jitter)
            backoff = min(backoff * 2, .seconds(5))
        }
    }
}
