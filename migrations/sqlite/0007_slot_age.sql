-- Sluice schema, version 7: fired-slot records by age, for the pruner. Its `slot_at < ?` could not
-- use the (schedule, slot_at) key, so each batch read the whole table: a week of 1,000 schedules
-- firing every minute is 10 million records.
CREATE INDEX schedule_slots_age ON schedule_slots (slot_at);
