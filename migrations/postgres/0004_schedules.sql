-- Sluice schema for PostgreSQL, version 2: periodic tasks, as SQLite's 0004. A fire inserts the
-- task and its (schedule, slot) row in one transaction; the primary key refuses a second row for
-- the same slot, whichever process, leader or clock tries.

CREATE TABLE schedules (
    name          text        NOT NULL PRIMARY KEY,
    cron          text        NOT NULL,
    timezone      text        NOT NULL,
    kind          text        NOT NULL,
    queue         text        NOT NULL,
    args          jsonb       NOT NULL,             -- a JSON object
    priority      integer     NOT NULL,
    max_attempts  integer     NOT NULL CHECK (max_attempts >= 1),
    timeout_ms    bigint      NOT NULL CHECK (timeout_ms > 0),
    misfire       text        NOT NULL CHECK (misfire IN ('skip', 'latest', 'all')),
    overlap       boolean     NOT NULL,
    enabled       boolean     NOT NULL,
    -- Bumped by every change: a fire computed from an older revision is refused.
    revision      bigint      NOT NULL,
    -- Every slot up to here is settled (fired, skipped or before the schedule's last change).
    cursor_at     timestamptz NOT NULL,
    last_slot_at  timestamptz,
    last_task_id  text,
    -- The first slot after the cursor (NULL when disabled or never again): the scheduler reads
    -- only the schedules due, so thousands of idle ones cost nothing.
    next_at       timestamptz,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_at) WHERE next_at IS NOT NULL;

CREATE TABLE schedule_slots (
    schedule  text        NOT NULL,
    slot_at   timestamptz NOT NULL,
    task_id   text        NOT NULL,
    fired_at  timestamptz NOT NULL,
    PRIMARY KEY (schedule, slot_at)
);
