-- Sluice schema, version 3: a fence token per claim, counts kept as counters, the leader's lease,
-- and checksums of applied migrations.

-- Drawn afresh for every claim, so that a release (which hands the attempt number out again)
-- can never let an old lease write over a newer one. Leases from before this version get 1.
ALTER TABLE tasks ADD COLUMN lease_token INTEGER;
UPDATE tasks SET lease_token = 1 WHERE state = 'running';

-- Tasks per queue and state, changed in the same transaction as the tasks themselves, so that
-- /healthz, /metrics and /v1/queues read a few rows instead of counting millions.
CREATE TABLE queue_counts (
    queue  TEXT    NOT NULL,
    state  TEXT    NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
) WITHOUT ROWID;
INSERT INTO queue_counts (queue, state, n) SELECT queue, state, count(*) FROM tasks GROUP BY queue, state;

-- One row per elected role ('maintenance'): whoever holds an unexpired lease here runs it.
-- Taken and renewed by a conditional upsert; time is this host's clock (one host shares a file).
CREATE TABLE leadership (
    name        TEXT    NOT NULL PRIMARY KEY,
    owner       TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    elected_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- A migration edited after it was applied is refused (the checksum of its text, FNV-1a 64).
ALTER TABLE sluice_migrations ADD COLUMN checksum TEXT;
