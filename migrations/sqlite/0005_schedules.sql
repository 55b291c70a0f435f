-- Sluice schema, version 4: periodic tasks. A schedule fires each of its slots at most once: a fire
-- inserts the task and its (schedule, slot) row in one transaction, and the primary key refuses a
-- second row for the same slot, whichever process, leader or clock tries.

CREATE TABLE schedules (
    name          TEXT    NOT NULL PRIMARY KEY,
    cron          TEXT    NOT NULL,
    timezone      TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    queue         TEXT    NOT NULL,
    args          TEXT    NOT NULL,                 -- a JSON object
    priority      INTEGER NOT NULL,
    max_attempts  INTEGER NOT NULL CHECK (max_attempts >= 1),
    timeout_ms    INTEGER NOT NULL CHECK (timeout_ms > 0),
    misfire       TEXT    NOT NULL CHECK (misfire IN ('skip', 'latest', 'all')),
    overlap       INTEGER NOT NULL CHECK (overlap IN (0, 1)),
    enabled       INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    -- Bumped by every change: a fire computed from an older revision is refused.
    revision      INTEGER NOT NULL,
    -- Every slot up to here is settled (fired, skipped or before the schedule's last change).
    cursor_at     INTEGER NOT NULL,
    last_slot_at  INTEGER,
    last_task_id  TEXT,
    -- The first slot after the cursor (NULL when disabled or never again): the scheduler reads
    -- only the schedules due, so thousands of idle ones cost nothing.
    next_at       INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX schedules_due ON schedules (next_at) WHERE next_at IS NOT NULL;

CREATE TABLE schedule_slots (
    schedule  TEXT    NOT NULL,
    slot_at   INTEGER NOT NULL,
    task_id   TEXT    NOT NULL,
    fired_at  INTEGER NOT NULL,
    PRIMARY KEY (schedule, slot_at)
) WITHOUT ROWID;
