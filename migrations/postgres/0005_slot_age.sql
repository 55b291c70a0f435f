-- Sluice schema for PostgreSQL, version 5: fired-slot records by age, for the pruner (as SQLite's
-- 0007). Its `slot_at < $1` could not use the (schedule, slot_at) key, so each batch read the whole
-- table: a week of 1,000 schedules firing every minute is 10 million records.
-- Built inside the migration's transaction (CONCURRENTLY cannot be), so fires wait while it builds:
-- about a second per million records.
CREATE INDEX schedule_slots_age ON schedule_slots (slot_at);
