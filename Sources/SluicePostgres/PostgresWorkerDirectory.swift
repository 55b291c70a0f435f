import Foundation
import PostgresNIO
import SluiceCore
import SluiceStore

/// The processes, operators' pool changes and the leader's lease, in the same database as the tasks.
extension PostgresTaskStore: WorkerDirectory {
    public func recordWorker(_ worker: WorkerInfo) async throws {
        let pools = String(decoding: try JSONCoders.encoder.encode(worker.pools), as: UTF8.self)
        let kinds = String(decoding: try JSONCoders.encoder.encode(worker.kinds), as: UTF8.self)
        let now = nowParameter
        try await transaction { connection in
            _ = try await self.rows(connection, SQL.recordWorker, Binds(
                worker.id, worker.host, worker.pid, Timestamp(worker.startedAt), now, pools, kinds))
            // Forget processes silent for a day, so the table does not grow without bound.
            _ = try await self.rows(connection, SQL.forgetWorkers, Binds(now))
        }
    }

    public func workers(seenWithin window: Duration) async throws -> [WorkerInfo] {
        let binds = try Binds(nowParameter, window.microseconds)
        let rows = try await connection { connection in try await self.rows(connection, SQL.workers, binds) }
        return try rows.map { row in
            WorkerInfo(
                id: try row[0].decode(String.self), host: try row[1].decode(String.self), pid: try row[2].decode(Int.self),
                startedAt: try row[3].decode(Timestamp.self).date, heartbeatAt: try row[4].decode(Timestamp.self).date,
                pools: try JSONCoders.decoder.decode([PoolCapacity].self, from: Data(try row[5].decode(String.self).utf8)),
                kinds: try JSONCoders.decoder.decode([String].self, from: Data(try row[6].decode(String.self).utf8)))
        }
    }

    public func removeWorker(_ id: String) async throws {
        _ = try await connection { connection in try await self.rows(connection, SQL.removeWorker, Binds(id)) }
    }

    public func savePoolSetting(_ setting: PoolSetting) async throws {
        let binds = try Binds(setting.pool, setting.worker ?? "*", setting.concurrency, setting.autoscale?.min, setting.autoscale?.max,
                              nowParameter)
        _ = try await connection { connection in try await self.rows(connection, SQL.savePoolSetting, binds) }
    }

    public func poolSettings() async throws -> [PoolSetting] {
        let rows = try await connection { connection in try await self.rows(connection, SQL.poolSettings, Binds()) }
        return try rows.map { row in
            let worker = try row[1].decode(String.self)
            let low = try row[3].decode(Int?.self), high = try row[4].decode(Int?.self)
            return PoolSetting(
                pool: try row[0].decode(String.self), worker: worker == "*" ? nil : worker, concurrency: try row[2].decode(Int?.self),
                autoscale: low.flatMap { low in high.map { AutoscaleRange(min: low, max: $0) } },
                updatedAt: try row[5].decode(Timestamp.self).date)
        }
    }

    public func setQueuePaused(_ queue: String, _ paused: Bool) async throws {
        let binds = try paused ? Binds(queue, nowParameter) : Binds(queue)
        _ = try await connection { connection in try await self.rows(connection, paused ? SQL.pauseQueue : SQL.resumeQueue, binds) }
    }

    public func pausedQueues() async throws -> Set<String> {
        let rows = try await connection { connection in try await self.rows(connection, SQL.pausedQueues, Binds()) }
        return Set(try rows.map { try $0[0].decode(String.self) })
    }

    public func acquireLeadership(_ name: String, owner: String, for duration: Duration) async throws -> Bool {
        let binds = try Binds(name, owner, duration.microseconds, nowParameter)
        return try await connection { connection in try await self.rows(connection, SQL.acquireLeadership, binds) }.count == 1
    }

    public func resignLeadership(_ name: String, owner: String) async throws {
        _ = try await connection { connection in try await self.rows(connection, SQL.resignLeadership, Binds(name, owner)) }
    }

    public func leader(_ name: String) async throws -> Leadership? {
        let binds = try Binds(name, nowParameter)
        guard let row = try await connection({ connection in try await self.rows(connection, SQL.leader, binds) }).first else { return nil }
        return Leadership(name: name, owner: try row[0].decode(String.self), expiresAt: try row[1].decode(Timestamp.self).date)
    }
}

extension PostgresTaskStore.SQL {
    /// Takes the lease when free or expired, renews it when ours; returns a row only if ours now.
    /// `excluded.elected_at` is now: the database's, unless a clock was configured.
    static let acquireLeadership = """
        INSERT INTO leadership (name, owner, expires_at, elected_at)
        SELECT $1, $2, clock.now + $3::bigint * interval '1 microsecond', clock.now
        FROM (SELECT coalesce($4::timestamptz, now()) AS now) clock
        ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,
            elected_at = CASE WHEN leadership.owner = excluded.owner THEN leadership.elected_at ELSE excluded.elected_at END
        WHERE leadership.owner = excluded.owner OR leadership.expires_at <= excluded.elected_at
        RETURNING 1
        """
    static let resignLeadership = "DELETE FROM leadership WHERE name = $1 AND owner = $2"
    static let leader = "SELECT owner, expires_at FROM leadership WHERE name = $1 AND expires_at > coalesce($2::timestamptz, now())"
    static let recordWorker = """
        INSERT INTO workers (id, host, pid, started_at, heartbeat_at, pools, kinds)
        VALUES ($1, $2, $3, $4, coalesce($5::timestamptz, now()), $6::jsonb, $7::jsonb)
        ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, pools = excluded.pools, kinds = excluded.kinds,
            started_at = CASE WHEN workers.host = excluded.host AND workers.pid = excluded.pid THEN workers.started_at ELSE excluded.started_at END,
            host = excluded.host, pid = excluded.pid
        """
    static let forgetWorkers = "DELETE FROM workers WHERE heartbeat_at < coalesce($1::timestamptz, now()) - interval '1 day'"
    static let removeWorker = "DELETE FROM workers WHERE id = $1"
    static let pauseQueue = "INSERT INTO paused_queues (queue, paused_at) VALUES ($1, coalesce($2::timestamptz, now())) ON CONFLICT (queue) DO NOTHING"
    static let resumeQueue = "DELETE FROM paused_queues WHERE queue = $1"
    static let pausedQueues = "SELECT queue FROM paused_queues"
    static let workers = """
        SELECT id, host, pid, started_at, heartbeat_at, pools::text, kinds::text FROM workers
        WHERE heartbeat_at >= coalesce($1::timestamptz, now()) - $2::bigint * interval '1 microsecond'
        ORDER BY id
        """
    static let savePoolSetting = """
        INSERT INTO pool_settings (pool, worker, concurrency, autoscale_min, autoscale_max, updated_at)
        VALUES ($1, $2, $3, $4, $5, coalesce($6::timestamptz, now()))
        ON CONFLICT (pool, worker) DO UPDATE SET concurrency = excluded.concurrency, autoscale_min = excluded.autoscale_min,
            autoscale_max = excluded.autoscale_max, updated_at = excluded.updated_at
        """
    static let poolSettings = "SELECT pool, worker, concurrency, autoscale_min, autoscale_max, updated_at FROM pool_settings ORDER BY pool, worker"
}
