-- Initial schema. Runs with search_path set to the instance's schema.

CREATE TABLE transactions (
  id            text        NOT NULL,
  merchant_id   text        NOT NULL,
  type          text        NOT NULL CHECK (type IN ('payin', 'payout', 'refund', 'chargeback')),
  amount        bigint      NOT NULL CHECK (amount > 0),
  currency      char(3)     NOT NULL,
  status        text        NOT NULL,
  reference     text,
  risk_score    smallint,
  metadata      jsonb,
  occurred_at   timestamptz,
  ingested_at   timestamptz NOT NULL,
  processed_at  timestamptz NOT NULL DEFAULT now(),
  stream_id     text        NOT NULL,
  attempts      integer     NOT NULL DEFAULT 1,
  failure_reason text,
  CONSTRAINT transactions_pkey PRIMARY KEY (id)
);
CREATE INDEX transactions_merchant_ingested ON transactions (merchant_id, ingested_at);

-- API keys: only a SHA-256 of the secret is kept. A key reads `rk_<key_id>_<secret>`; the id finds
-- the row, the hash is compared in constant time.
CREATE TABLE api_keys (
  key_id       text        PRIMARY KEY,
  secret_hash  bytea       NOT NULL,
  merchant_id  text,
  scope        text        NOT NULL CHECK (scope IN ('merchant', 'tap')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz,
  CHECK ((scope = 'merchant') = (merchant_id IS NOT NULL))
);
