-- Sluice schema, version 1: tasks and the schema-version table.
-- Marks the file as Sluice's, so that a database of another program is refused, not modified.
PRAGMA application_id = 1397508419;

CREATE TABLE sluice_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    applied_at  INTEGER NOT NULL          -- microseconds since 1970
);

-- Timestamps are microseconds since 1970; durations are milliseconds.
CREATE TABLE tasks (
    id                TEXT    NOT NULL PRIMARY KEY,   -- ULID: sorts by creation
    queue             TEXT    NOT NULL,
    kind              TEXT    NOT NULL,
    args              TEXT    NOT NULL,               -- JSON object
    priority          INTEGER NOT NULL DEFAULT 0,
    state             TEXT    NOT NULL CHECK (state IN
                        ('scheduled', 'queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled')),
    run_at            INTEGER NOT NULL,
    attempt           INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts      INTEGER NOT NULL CHECK (max_attempts >= 1),
    timeout_ms        INTEGER NOT NULL CHECK (timeout_ms > 0),
    backoff_base_ms   INTEGER NOT NULL,
    backoff_cap_ms    INTEGER NOT NULL,
    idempotency_key   TEXT,
    result            TEXT,                           -- JSON
    error             TEXT,
    attempt_errors    TEXT    NOT NULL DEFAULT '[]',  -- JSON array, oldest first
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    worker            TEXT,                           -- who ran the latest attempt
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    -- A lease exists exactly while the task runs.
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
) WITHOUT ROWID;

-- Claims walk this index in claim order and stop at LIMIT.
CREATE INDEX tasks_ready ON tasks (queue, priority DESC, run_at, id) WHERE state = 'queued';
-- Staging of scheduled and retrying tasks whose time has come.
CREATE INDEX tasks_due ON tasks (run_at) WHERE state IN ('scheduled', 'retrying');
-- The rescuer's scan for expired leases.
CREATE INDEX tasks_leases ON tasks (lease_expires_at) WHERE state = 'running';
-- The pruner's scan for old finished tasks.
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE state IN ('succeeded', 'failed', 'cancelled');
-- One live task per idempotency key and queue.
CREATE UNIQUE INDEX tasks_idempotency ON tasks (queue, idempotency_key) WHERE idempotency_key IS NOT NULL;
