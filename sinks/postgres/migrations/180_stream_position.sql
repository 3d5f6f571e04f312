-- The position of a row's stream entry (the ms part of stream_id), indexed so a tap reading a
-- topic's history beyond the Redis window (core/tap/history.ts) finds a range of positions without
-- scanning every day. On the partitioned parent: every daily partition, also those created later,
-- gets it. Numbered 180 (issue #18) to stay clear of other branches' migration numbers.
CREATE INDEX IF NOT EXISTS transactions_stream_ms ON transactions ((split_part(stream_id, '-', 1)::bigint));
