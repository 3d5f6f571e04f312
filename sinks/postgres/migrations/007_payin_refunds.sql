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
