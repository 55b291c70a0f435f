import Foundation
import SluiceCore

/// Where processes register themselves, where operators' pool changes are kept, and where the
/// processes elect the one that runs maintenance.
public protocol WorkerDirectory: Sendable {
    /// Records (or refreshes) a process and its pools' capacity. Recorded again under its id, it
    /// takes the new host and pid; its start time stays while host and pid do (a refresh), and is
    /// the new one otherwise (another process under the same id).
    func recordWorker(_ worker: WorkerInfo) async throws
    /// Processes heard from within `window`.
    func workers(seenWithin window: Duration) async throws -> [WorkerInfo]
    /// Forgets a process (on clean exit).
    func removeWorker(_ id: String) async throws
    /// Stores an operator's pool change, stamped with the store's time (the database's `now()` on
    /// PostgreSQL) whatever `updatedAt` says: processes apply the newest change, and changes made
    /// through hosts whose clocks differ must still order as they were made.
    func savePoolSetting(_ setting: PoolSetting) async throws
    /// Every stored pool change.
    func poolSettings() async throws -> [PoolSetting]
    /// Pauses or resumes a queue for every process: a paused queue accepts tasks, none are claimed.
    func setQueuePaused(_ queue: String, _ paused: Bool) async throws
    /// The queues paused now.
    func pausedQueues() async throws -> Set<String>
    /// Takes the lease called `name` for `owner` until `duration` from now if nobody holds it, it
    /// expired, or `owner` already holds it (a renewal); returns whether `owner` holds it now.
    func acquireLeadership(_ name: String, owner: String, for duration: Duration) async throws -> Bool
    /// Gives the lease up at once if `owner` holds it (on clean exit), so another takes over now.
    func resignLeadership(_ name: String, owner: String) async throws
    /// Who holds the lease called `name`, and until when; `nil` when nobody does or it expired
    /// (by the store's clock).
    func leader(_ name: String) async throws -> Leadership?
}

/// The holder of an elected role.
public struct Leadership: Sendable, Hashable {
    public var name: String
    public var owner: String
    public var expiresAt: Date

    public init(name: String, owner: String, expiresAt: Date) {
        self.name = name
        self.owner = owner
        self.expiresAt = expiresAt
    }
}
