-- Sluice schema, version 2: the processes that run pools, and operators' pool changes.
CREATE TABLE workers (
    id            TEXT    NOT NULL PRIMARY KEY,
    host          TEXT    NOT NULL,
    pid           INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    pools         TEXT    NOT NULL DEFAULT '[]',  -- JSON: capacity of each pool
    kinds         TEXT    NOT NULL DEFAULT '[]'   -- JSON: the task kinds it runs
);

-- A change applies to every process running the pool (worker = '*') or to one process.
CREATE TABLE pool_settings (
    pool           TEXT    NOT NULL,
    worker         TEXT    NOT NULL DEFAULT '*',
    concurrency    INTEGER CHECK (concurrency IS NULL OR concurrency >= 1),
    autoscale_min  INTEGER,
    autoscale_max  INTEGER,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (pool, worker),
    CHECK ((autoscale_min IS NULL) = (autoscale_max IS NULL)),
    CHECK (autoscale_min IS NULL OR (autoscale_min >= 1 AND autoscale_max >= autoscale_min))
);
