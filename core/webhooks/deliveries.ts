// An endpoint's deliveries as its merchant (API) or an operator (CLI) sees them: the attempts of
// the Postgres log grouped by event, and what still waits in its Redis queue.
import { partitionOf } from '../partition.ts';
import type { PgPool } from '../postgres.ts';
import type { RedisClient } from '../redis.ts';
import type { EndpointRow } from './endpoints.ts';
import type { QueueKeys } from './queue.ts';

interface AttemptView {
  attempt: number;
  status_code: number | null;
  latency_ms: number;
  error: string | null;
  outcome: string;
  next_retry_at: string | null;
  attempted_at: string;
}

export interface DeliveryView {
  event_id: string;
  event_type: string;
  /** pending (queued, not yet tried), retrying, delivered, failed. */
  status: string;
  next_retry_at: string | null;
  attempts: AttemptView[];
}

/** Waiting deliveries (Redis), then the latest attempted ones (the Postgres log), newest first. */
export async function deliveries(
  redis: RedisClient,
  pool: PgPool,
  qk: QueueKeys,
  row: EndpointRow,
  partitions: number,
  limit: number,
): Promise<DeliveryView[]> {
  const p = partitionOf(row.merchant_id, partitions);
  const waiting = await redis.lrange(qk.queue(p, row.id), 0, limit - 1);
  const { rows } = await pool.query<{
    event_id: string;
    event_type: string;
    attempt: number;
    outcome: string;
    status_code: number | null;
    latency_ms: number;
    error: string | null;
    next_retry_at: Date | null;
    attempted_at: Date;
  }>(
    `SELECT event_id, event_type, attempt, outcome, status_code, latency_ms, error, next_retry_at, attempted_at FROM webhook_attempts
     WHERE endpoint_id = $1 AND event_id IN (SELECT event_id FROM webhook_attempts WHERE endpoint_id = $1 GROUP BY event_id ORDER BY max(attempted_at) DESC LIMIT $2)
     ORDER BY attempted_at, attempt`,
    [row.id, limit],
  );
  const byEvent = new Map<string, DeliveryView>();
  for (const r of rows) {
    let v = byEvent.get(r.event_id);
    if (!v) byEvent.set(r.event_id, (v = { event_id: r.event_id, event_type: r.event_type, status: 'pending', next_retry_at: null, attempts: [] }));
    v.attempts.push({
      attempt: r.attempt,
      status_code: r.status_code,
      latency_ms: r.latency_ms,
      error: r.error,
      outcome: r.outcome,
      next_retry_at: r.next_retry_at?.toISOString() ?? null,
      attempted_at: r.attempted_at.toISOString(),
    });
    v.status = r.outcome;
    v.next_retry_at = r.next_retry_at?.toISOString() ?? null;
  }
  for (const id of waiting) {
    const v = byEvent.get(id);
    // a redelivery queued again after the log's last word, or never tried yet
    if (v && v.status !== 'retrying') v.status = 'pending';
    if (!v)
      byEvent.set(id, {
        event_id: id,
        event_type: (await redis.hget(qk.delivery(p, row.id, id), 'type')) ?? '',
        status: 'pending',
        next_retry_at: null,
        attempts: [],
      });
  }
  return [...byEvent.values()].reverse().slice(0, limit);
}
