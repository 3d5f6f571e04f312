-- What has been refunded of each payin, so a refund of a payin past the Redis hot window
-- (refunds.hot) is checked by the ledger against Postgres. Written by the sink in the same
-- transaction as the refunds' rows (sinks/postgres/payin-refunds.ts), so it is exactly-once.
-- Only succeeded refunds and chargebacks count.

-- one line per counted refund or chargeback: a redelivered row is not counted twice
CREATE TABLE payin_refund_lines (
  refund_id   text   PRIMARY KEY,
  payin_id    text   NOT NULL,
  merchant_id text   NOT NULL,
  amount      bigint NOT NULL
);

-- the sum per payin (minor units, the payin's currency)
CREATE TABLE payin_refunds (
  payin_id    text        PRIMARY KEY,
  merchant_id text        NOT NULL,
  refunded    bigint      NOT NULL,
  updated_at  timestamptz NOT NULL
);

-- how many of a merchant's refunds are written: the ledger counts the ones it let through and
-- checks a refund against Postgres only once this has caught up (nothing of it still in flight)
CREATE TABLE merchant_refunds (
  merchant_id text   PRIMARY KEY,
  written     bigint NOT NULL
);

-- what was refunded before this migration (one scan of `transactions`; the sinks that write the
-- rows from now on must be this version: an older one would not count its refunds here)
INSERT INTO payin_refund_lines (refund_id, payin_id, merchant_id, amount)
SELECT id, reference, merchant_id, amount FROM transactions
WHERE type IN ('refund', 'chargeback') AND status = 'succeeded' AND reference IS NOT NULL
ON CONFLICT DO NOTHING;
INSERT INTO payin_refunds (payin_id, merchant_id, refunded, updated_at)
SELECT payin_id, min(merchant_id), sum(amount)::bigint, now() FROM payin_refund_lines GROUP BY payin_id;
INSERT INTO merchant_refunds (merchant_id, written)
SELECT merchant_id, count(*) FROM payin_refund_lines GROUP BY merchant_id;
