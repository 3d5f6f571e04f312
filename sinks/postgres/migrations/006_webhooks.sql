-- Merchant webhooks: endpoints (secrets encrypted, AES-256-GCM; see sinks/webhooks/secrets.ts),
-- the event objects sent (for redeliver and recover-since), and the per-attempt delivery log.
-- The live delivery queues are in Redis (sinks/webhooks/queue.ts). Numbered 010 to stay clear of
-- migrations other branches add meanwhile.
CREATE TABLE webhook_endpoints (
  id                   text        PRIMARY KEY,
  merchant_id          text        NOT NULL,
  url                  text        NOT NULL,
  description          text,
  event_types          text[],     -- NULL: every type
  enabled              boolean     NOT NULL DEFAULT true,
  max_in_flight        integer     NOT NULL DEFAULT 1 CHECK (max_in_flight BETWEEN 1 AND 64),
  secret_enc           text        NOT NULL,
  previous_secret_enc  text,
  previous_expires_at  timestamptz,
  failing_since        timestamptz,
  disabled_reason      text,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  deleted_at           timestamptz
);
CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id) WHERE deleted_at IS NULL;

CREATE TABLE webhook_events (
  id           text        PRIMARY KEY,
  merchant_id  text        NOT NULL,
  type         text        NOT NULL,
  created_at   timestamptz NOT NULL,
  payload      text        NOT NULL  -- the exact body sent (signatures cover these bytes)
);
CREATE INDEX webhook_events_merchant_created ON webhook_events (merchant_id, created_at);

CREATE TABLE webhook_attempts (
  endpoint_id    text        NOT NULL,
  event_id       text        NOT NULL,
  merchant_id    text        NOT NULL,
  event_type     text        NOT NULL,
  attempt        integer     NOT NULL,
  outcome        text        NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'failed')),
  status_code    integer,
  latency_ms     integer     NOT NULL,
  error          text,
  next_retry_at  timestamptz,
  attempted_at   timestamptz NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, attempted_at DESC);
