-- Sluice schema for PostgreSQL, version 1: the same concepts as SQLite's 0001-0003 (tasks with a
-- fence token per claim, counters, the leader's lease, workers, operators' pool changes, and the
-- applied migrations with checksums), in PostgreSQL's types. Times are timestamptz (microseconds),
-- durations milliseconds. Everything lives in the connection's current schema (search_path).

CREATE TABLE sluice_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    applied_at  timestamptz NOT NULL,
    checksum    text        NOT NULL          -- FNV-1a 64 of the migration's text: an edited file is refused
);

CREATE TABLE tasks (
    id                text        NOT NULL PRIMARY KEY,   -- ULID: sorts by creation
    queue             text        NOT NULL,
    kind              text        NOT NULL,
    args              jsonb       NOT NULL,               -- a JSON object
    priority          integer     NOT NULL DEFAULT 0,
    state             text        NOT NULL CHECK (state IN
                        ('scheduled', 'queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled')),
    run_at            timestamptz NOT NULL,
    attempt           integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts      integer     NOT NULL CHECK (max_attempts >= 1),
    timeout_ms        bigint      NOT NULL CHECK (timeout_ms > 0),
    backoff_base_ms   bigint      NOT NULL,
    backoff_cap_ms    bigint      NOT NULL,
    idempotency_key   text,
    result            jsonb,
    error             text,
    attempt_errors    jsonb       NOT NULL DEFAULT '[]',  -- array, oldest first
    cancel_requested  boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL,
    started_at        timestamptz,
    finished_at       timestamptz,
    worker            text,                               -- who ran the latest attempt
    lease_owner       text,
    lease_expires_at  timestamptz,
    -- Drawn afresh for every claim: a release hands the attempt number out again, the token never.
    lease_token       bigint,
    -- A lease exists exactly while the task runs.
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL AND lease_token IS NOT NULL))
)
-- A queue table is updated several times per row (claimed, heartbeated, finished) and then deleted.
-- Leaving a fifth of each page free lets most of those updates stay on the same page (HOT updates:
-- no new index entries, less bloat). Autovacuum runs after 1% of the rows changed instead of 20%,
-- so dead rows from finished claims are reclaimed while the table is still small, and analyzes
-- after 2% so the planner sees the queue's shape move.
WITH (fillfactor = 80,
      autovacuum_vacuum_scale_factor = 0.01,
      autovacuum_vacuum_insert_scale_factor = 0.01,
      autovacuum_analyze_scale_factor = 0.02,
      autovacuum_vacuum_cost_delay = 1);

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

-- Tasks per queue and state, changed in the same transaction as the tasks themselves, so that
-- /healthz, /metrics and /v1/queues read a few rows instead of counting millions.
CREATE TABLE queue_counts (
    queue  text   NOT NULL,
    state  text   NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (queue, state)
);

-- One row per elected role ('maintenance'): whoever holds an unexpired lease here runs it.
-- Taken and renewed by a conditional upsert; time is the database's, shared by every host.
CREATE TABLE leadership (
    name        text        NOT NULL PRIMARY KEY,
    owner       text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    elected_at  timestamptz NOT NULL
);

-- The processes that run pools.
CREATE TABLE workers (
    id            text        NOT NULL PRIMARY KEY,
    host          text        NOT NULL,
    pid           integer     NOT NULL,
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL,
    pools         jsonb       NOT NULL DEFAULT '[]',  -- capacity of each pool
    kinds         jsonb       NOT NULL DEFAULT '[]'   -- the task kinds it runs
);

-- Operators' pool changes: for every process running the pool (worker = '*') or for one process.
CREATE TABLE pool_settings (
    pool           text        NOT NULL,
    worker         text        NOT NULL DEFAULT '*',
    concurrency    integer     CHECK (concurrency IS NULL OR concurrency >= 1),
    autoscale_min  integer,
    autoscale_max  integer,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (pool, worker),
    CHECK ((autoscale_min IS NULL) = (autoscale_max IS NULL)),
    CHECK (autoscale_min IS NULL OR (autoscale_min >= 1 AND autoscale_max >= autoscale_min))
);
