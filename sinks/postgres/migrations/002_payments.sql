-- Payments domain: `transactions` partitioned by day (range of ingested_at, UTC days) and within a
-- day by hash of merchant_id; the double-entry ledger, wallet balances, and the daily volume view.
-- Runs with search_path set to the instance's schema, in one transaction (see migrate.ts).
--
-- Days are UTC days everywhere: partition bounds, the ensure function and the view.

-- 1. The 001 table steps aside (its rows move over below). Its primary key index and secondary
--    index share the schema's relation namespace with the new table's, so they are renamed first.
ALTER TABLE transactions RENAME TO transactions_v1;
ALTER TABLE transactions_v1 RENAME CONSTRAINT transactions_pkey TO transactions_v1_pkey;
ALTER INDEX transactions_merchant_ingested RENAME TO transactions_v1_merchant_ingested;

-- 2. The partitioned table. A unique key of a partitioned table must contain the partition keys;
--    the transaction id fixes both ingested_at and merchant_id, so this is still one row per id.
CREATE TABLE transactions (
  id             text        NOT NULL,
  merchant_id    text        NOT NULL,
  type           text        NOT NULL CHECK (type IN ('payin', 'payout', 'refund', 'chargeback')),
  amount         bigint      NOT NULL CHECK (amount > 0),
  currency       char(3)     NOT NULL,
  status         text        NOT NULL,
  reference      text,
  risk_score     smallint,
  metadata       jsonb,
  occurred_at    timestamptz,
  ingested_at    timestamptz NOT NULL,
  processed_at   timestamptz NOT NULL DEFAULT now(),
  stream_id      text        NOT NULL,
  attempts       integer     NOT NULL DEFAULT 1,
  failure_reason text,
  CONSTRAINT transactions_pkey PRIMARY KEY (id, ingested_at, merchant_id)
) PARTITION BY RANGE (ingested_at);
CREATE INDEX transactions_merchant_ingested ON transactions (merchant_id, ingested_at);

-- 3. Creates the missing daily partitions transactions_pYYYYMMDD for from_day..to_day (inclusive),
--    each split by HASH (merchant_id) into transactions_pYYYYMMDD_h0..h3. Idempotent, and safe when
--    several sessions call it at once: a transaction-level advisory lock (per schema) serializes
--    the callers, and a partition created meanwhile by anyone else is skipped (duplicate_table).
--    Returns how many daily partitions it created. A day whose table exists but is no longer
--    attached (detached by retention) is an error: writing into it would hide the row.
--    CREATE TABLE ... PARTITION OF takes an ACCESS EXCLUSIVE lock on `transactions` for a moment;
--    callers on a live system set lock_timeout so a long reader cannot make inserts queue behind it.
CREATE FUNCTION rill_ensure_partitions(from_day date, to_day date) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  d       date;
  part    text;
  created integer := 0;
  attached boolean;
BEGIN
  IF from_day IS NULL OR to_day IS NULL OR to_day < from_day THEN
    RETURN 0;
  END IF;
  IF to_day - from_day > 366 THEN
    RAISE EXCEPTION 'rill_ensure_partitions: % days asked (% .. %), at most 367 at once', to_day - from_day + 1, from_day, to_day;
  END IF;
  PERFORM pg_advisory_xact_lock(1380535376, hashtext(current_schema() || '.transactions')); -- 'RILP'
  d := from_day;
  WHILE d <= to_day LOOP
    part := 'transactions_p' || to_char(d, 'YYYYMMDD');
    IF to_regclass(format('%I.%I', current_schema(), part)) IS NULL THEN
      BEGIN
        EXECUTE format(
          'CREATE TABLE %I PARTITION OF transactions FOR VALUES FROM (%L) TO (%L) PARTITION BY HASH (merchant_id)',
          part, (d::timestamp AT TIME ZONE 'UTC'), ((d + 1)::timestamp AT TIME ZONE 'UTC'));
        FOR r IN 0..3 LOOP
          EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES WITH (MODULUS 4, REMAINDER %s)', part || '_h' || r, part, r);
        END LOOP;
        created := created + 1;
      EXCEPTION WHEN duplicate_table THEN
        NULL; -- created by someone who does not take our lock: theirs stands
      END;
    ELSE
      SELECT EXISTS (
        SELECT 1 FROM pg_inherits
        WHERE inhrelid = to_regclass(format('%I.%I', current_schema(), part))
          AND inhparent = to_regclass(format('%I.transactions', current_schema()))
      ) INTO attached;
      IF NOT attached THEN
        RAISE EXCEPTION 'partition % for day % exists but is not attached to transactions (detached by retention?)', part, d
          USING ERRCODE = 'object_not_in_prerequisite_state';
      END IF;
    END IF;
    d := d + 1;
  END LOOP;
  RETURN created;
END
$fn$;
-- Pin the function to this schema: called from a session with another search_path it must still
-- create this schema's partitions.
DO $$
BEGIN
  EXECUTE format('ALTER FUNCTION rill_ensure_partitions(date, date) SET search_path = %I, pg_catalog', current_schema());
END
$$;

-- 4. Move the 001 rows over: first the partitions their days need, then the rows.
SELECT rill_ensure_partitions(day, day)
FROM (SELECT DISTINCT (ingested_at AT TIME ZONE 'UTC')::date AS day FROM transactions_v1) days;
INSERT INTO transactions (id, merchant_id, type, amount, currency, status, reference, risk_score, metadata,
                          occurred_at, ingested_at, processed_at, stream_id, attempts, failure_reason)
SELECT id, merchant_id, type, amount, currency, status, reference, risk_score, metadata,
       occurred_at, ingested_at, processed_at, stream_id, attempts, failure_reason
FROM transactions_v1;
DROP TABLE transactions_v1;

-- 5. Partitions from yesterday through today + 7 (the sink creates a missing day on demand, and
--    the maintenance leader keeps `partitions_ahead` days ready).
SELECT rill_ensure_partitions((now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 7);

-- 6. The double-entry ledger: one line per (transaction, account), signed minor units (+ credits,
--    − debits), in the transaction's merchant and currency; a transaction's lines sum to zero.
--    Not partitioned: it is the book of record behind `wallets` and is kept whole (retention only
--    detaches transaction partitions). No foreign key to `transactions`: its unique key carries the
--    partition keys, and the sink writes both tables in one transaction anyway.
CREATE TABLE ledger_entries (
  tx_id       text        NOT NULL,
  account     text        NOT NULL CHECK (account IN ('wallet', 'external')),
  merchant_id text        NOT NULL,
  currency    char(3)     NOT NULL,
  amount      bigint      NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ledger_entries_pkey PRIMARY KEY (tx_id, account)
);
CREATE INDEX ledger_entries_merchant ON ledger_entries (merchant_id, currency, created_at);

-- 7. Balances: the running sum of each merchant's `wallet` lines per currency. No CHECK on the
--    sign: whether a payout may overdraw is the ledger stage's decision, and a chargeback can take
--    a wallet below zero; a constraint here would only wedge the sink on a batch it cannot skip.
CREATE TABLE wallets (
  merchant_id text        NOT NULL,
  currency    char(3)     NOT NULL,
  balance     bigint      NOT NULL DEFAULT 0,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT wallets_pkey PRIMARY KEY (merchant_id, currency)
);

-- 8. Daily volume per merchant, type and currency over succeeded transactions (UTC days). The
--    unique index is what REFRESH MATERIALIZED VIEW CONCURRENTLY needs.
CREATE MATERIALIZED VIEW merchant_daily_volume AS
SELECT merchant_id,
       (ingested_at AT TIME ZONE 'UTC')::date AS day,
       type,
       currency,
       count(*)::bigint     AS count,
       sum(amount)::bigint  AS amount
FROM transactions
WHERE status = 'succeeded'
GROUP BY merchant_id, (ingested_at AT TIME ZONE 'UTC')::date, type, currency
WITH DATA;
CREATE UNIQUE INDEX merchant_daily_volume_key ON merchant_daily_volume (merchant_id, day, type, currency);
