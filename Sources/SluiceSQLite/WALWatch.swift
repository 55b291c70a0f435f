import Foundation
import Glibc
import Synchronization

/// Hears other processes write to the database: every commit, from any process, writes to the
/// write-ahead log, and inotify reports each write to it. So a `sluice worker` starts a task that
/// `sluice serve` enqueued about a millisecond later, instead of at its next poll (up to 50 ms);
/// polling stays as the backstop, since a wake-up can be missed (below).
///
/// A write is heard before its commit is visible: the commit's fsync and the update of the log's
/// index come after it. So the watch reports a foreign write only once the file's `data_version`,
/// read on a connection of its own, has moved (checked every 50 µs and then less often, for at
/// most 100 ms): whoever it wakes reads once and sees the commit.
///
/// Writes by this process's own writer are not reported: a write heard while the writer is in a
/// transaction, or after one of its transactions ended since the last write heard, is its own (its
/// writes happen inside its transactions, and are heard in order). A write heard in the middle of
/// one of ours waits for it to end and takes the rest of its writes along. A foreign commit heard
/// in such a moment is missed, and found by the next poll; this process is writing then, so its
/// fetchers are likely polling at their short interval.
final class WALWatch: @unchecked Sendable {
    private let walPath: String
    /// The database's `PRAGMA data_version` on the watch's own connection: it moves with every
    /// commit of another connection (this process's writer's too).
    private let dataVersion: () -> Int64?
    /// Whether this process's writer is in a transaction now, and how many it has ended.
    private let ownWrites: @Sendable () -> (writing: Bool, ended: Int)
    private let onForeignWrite: @Sendable () -> Void
    private let stopping = Atomic<Bool>(false)
    private let stopped = NSCondition()
    private var running = true
    /// Other processes' writes heard so far, and writes heard in all (for tests).
    let heard = Atomic<Int>(0)
    let batches = Atomic<Int>(0)

    /// Starts watching `walPath` on a thread of its own; `nil` when inotify is not available.
    /// `dataVersion` is called on that thread only.
    init?(walPath: String, name: String, dataVersion: @escaping () -> Int64?,
          ownWrites: @escaping @Sendable () -> (writing: Bool, ended: Int), onForeignWrite: @escaping @Sendable () -> Void) {
        self.walPath = walPath
        self.dataVersion = dataVersion
        self.ownWrites = ownWrites
        self.onForeignWrite = onForeignWrite
        let descriptor = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard descriptor >= 0 else { return nil }
        // Attached and measured before the store is handed out, so that no write after that is missed.
        let watching = Self.attach(descriptor, walPath)
        let start = (ended: ownWrites().ended, version: dataVersion())
        let thread = Thread { [self] in watch(descriptor, watching: watching, seenEnded: start.ended, version: start.version) }
        thread.name = name
        thread.start()
    }

    /// Stops the thread and waits for it (within the 100 ms it waits at a time, for events or for
    /// the log to appear).
    func stop() {
        stopping.store(true, ordering: .relaxed)
        stopped.lock()
        while running { stopped.wait() }
        stopped.unlock()
    }

    private static func attach(_ descriptor: Int32, _ walPath: String) -> Bool {
        inotify_add_watch(descriptor, walPath, UInt32(IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF)) >= 0
    }

    private func watch(_ descriptor: Int32, watching: Bool, seenEnded: Int, version: Int64?) {
        var watching = watching, seenEnded = seenEnded, version = version
        defer {
            close(descriptor)
            stopped.lock()
            running = false
            stopped.broadcast()
            stopped.unlock()
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stopping.load(ordering: .relaxed) {
            // (Re)attach to the log: it may not exist yet, or be a new file after every connection
            // to the database closed and one reopened it.
            if !watching {
                watching = Self.attach(descriptor, walPath)
                if !watching { usleep(100_000); continue }
            }
            var ready = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 100) > 0 else { continue }
            var modified = false
            readEvents(descriptor, &buffer, modified: &modified, watching: &watching)
            guard modified else { continue }
            batches.add(1, ordering: .relaxed)
            var own = ownWrites()
            if !own.writing && own.ended == seenEnded {
                var pause: useconds_t = 50, waited: useconds_t = 0
                var latest = dataVersion()
                while waited < 100_000, !stopping.load(ordering: .relaxed), latest != nil, latest == version {
                    usleep(pause)
                    waited += pause
                    pause = min(pause * 2, 5_000)
                    latest = dataVersion()
                }
                version = latest ?? version
                heard.add(1, ordering: .relaxed)
                onForeignWrite()
            } else if own.writing {
                // Heard in the middle of one of ours: wait (briefly) for it to end and take what
                // else it wrote, so that the next write heard is judged on its own and not taken
                // for the rest of this transaction.
                var pause: useconds_t = 100
                while own.writing && pause <= 1600 {
                    usleep(pause)
                    pause *= 2
                    own = ownWrites()
                }
                var more = false
                readEvents(descriptor, &buffer, modified: &more, watching: &watching)
                if more { batches.add(1, ordering: .relaxed) }
            }
            if own.writing || own.ended != seenEnded { version = dataVersion() ?? version }  // its own commits move it too
            seenEnded = own.ended
        }
    }

    /// Reads every event waiting: whether one was a write, and whether the watch still stands.
    private func readEvents(_ descriptor: Int32, _ buffer: inout [UInt8], modified: inout Bool, watching: inout Bool) {
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { return }
            var offset = 0
            while offset + MemoryLayout<inotify_event>.size <= count {
                let event = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: inotify_event.self) }
                if event.mask & UInt32(IN_MODIFY) != 0 { modified = true }
                if event.mask & UInt32(IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED) != 0 { watching = false }
                offset += MemoryLayout<inotify_event>.size + Int(event.len)
            }
        }
    }
}
