-- Sluice schema: queues an operator paused. A paused queue still accepts tasks; no process claims
-- from it. Every process reads this table with its per-second registration.
CREATE TABLE paused_queues (
    queue      TEXT    NOT NULL PRIMARY KEY,
    paused_at  INTEGER NOT NULL          -- microseconds since 1970
) WITHOUT ROWID;
