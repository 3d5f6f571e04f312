// The webhook events merchants with endpoints were sent (Postgres webhook_events): the exact bodies
// first sent, kept for a redelivery and a recovery since a time. The webhooks sink's dispatcher
// records them as it fans them out; the enqueuer (enqueue.ts) records a test event and reads
// them back.
import type { PgPool } from '../postgres.ts';

/** An event as it is sent: `body` is the JSON of the event without its merchant_id. */
export interface StoredEvent {
  id: string;
  type: string;
  merchant_id: string;
  created_at: string;
  body: string;
}

const INSERT_EVENTS = `INSERT INTO webhook_events (id, merchant_id, type, created_at, payload)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[]) ON CONFLICT (id) DO NOTHING`;

export async function recordEvents(pool: PgPool, events: readonly StoredEvent[]): Promise<void> {
  if (!events.length) return;
  await pool.query(INSERT_EVENTS, [
    events.map((e) => e.id),
    events.map((e) => e.merchant_id),
    events.map((e) => e.type),
    events.map((e) => e.created_at),
    events.map((e) => e.body),
  ]);
}
