// POST /v1/transactions/batch (design §3): up to 10,000 events and 5 MiB, as NDJSON or a JSON
// array, each event checked, authorized and appended on its own, all appends in ONE Redis round
// trip. Runs after bearerAuth('merchant') (and the load shedder, which refuses a whole batch with
// 503 as it does a single event). Envelope failures are thrown as ProblemErrors (415, 413, 400);
// everything about one event is reported in its result line.
//
// 202 { results: [{ index, id?, status: accepted | duplicate | rejected, errors? }] }, one result
// per event in order; `index` is the event's position (array index, or n-th non-blank NDJSON
// line, from 0). An optional per-event `idempotency_key` works like the Idempotency-Key header of
// the single endpoint (same key space, same 24 h): the same key with the same event again is a
// `duplicate` carrying the first id, with another event a rejected `idempotency-conflict`.
// Events over the merchant's rate limit are rejected (`rate-limited`) and the answer carries a
// Retry-After for the batch. An Idempotency-Key header is refused (400) rather than ignored.
// The answer is 202 even when every event was rejected: the results say why, line by line.
import type { Handler } from 'hono';
import { counter } from '../../core/metrics.ts';
import type { Logger } from '../../core/logger.ts';
import type { Registry } from '../../core/metrics.ts';
import type { AuthEnv } from '../auth/index.ts';
import type { BatchAppender, BatchItem } from '../append/batch.ts';
import { BATCH_MAX_BYTES, BATCH_MAX_EVENTS, batchFormat, parseBatch } from '../batch-body.ts';
import type { LineError } from '../batch-body.ts';
import { readBody } from '../body.ts';
import type { IngestMetrics } from '../metrics.ts';
import { badRequest, forbidden, problemType } from '../../core/http/problem.ts';

export type BatchResult = { index: number; id: string; status: 'accepted' | 'duplicate' } | { index: number; status: 'rejected'; errors: LineError[] };

export interface BatchLimits {
  maxEvents: number;
  maxBytes: number;
}

export const BATCH_LIMITS: BatchLimits = { maxEvents: BATCH_MAX_EVENTS, maxBytes: BATCH_MAX_BYTES };

export interface BatchRouteOptions extends Partial<BatchLimits> {
  /** Where events Redis refused one by one (OOM) are logged. */
  logger?: Logger;
}

type ResultStatus = BatchResult['status'];

export function postTransactionBatch(batch: BatchAppender, metrics: IngestMetrics, registry: Registry, opts: BatchRouteOptions = {}): Handler<AuthEnv> {
  const maxEvents = opts.maxEvents ?? BATCH_LIMITS.maxEvents;
  const maxBytes = opts.maxBytes ?? BATCH_LIMITS.maxBytes;
  const log = opts.logger?.child({ component: 'ingest' });
  const events = counter(registry, 'rill_ingest_batch_events_total', 'Events received in batches, by their result.', ['status']);

  return async (c) => {
    const principal = c.get('principal');
    if (principal.scope !== 'merchant') throw forbidden('This API key may not submit transactions.');
    const format = batchFormat(c.req.header('content-type'), c.req.header('content-encoding'));
    // a retried batch is NOT made safe by this header (it would be silently ignored): say so
    if (c.req.header('idempotency-key') !== undefined) {
      throw badRequest('Idempotency-Key is not supported for batches: give each event its own idempotency_key field.');
    }
    const lines = parseBatch(await readBody(c, maxBytes), format, maxEvents);

    const results: BatchResult[] = new Array(lines.length);
    const items: BatchItem[] = [];
    const itemIndex: number[] = [];
    for (const line of lines) {
      if (!line.ok) {
        results[line.index] = { index: line.index, status: 'rejected', errors: line.errors };
      } else if (line.body.merchant_id !== principal.merchantId) {
        results[line.index] = { index: line.index, status: 'rejected', errors: [WRONG_MERCHANT] };
      } else {
        items.push({ body: line.body, idempotencyKey: line.idempotencyKey });
        itemIndex.push(line.index);
      }
    }

    const outcomes = await batch.appendAll(items);
    const perLane = new Map<string, number>();
    let waitMs = 0;
    let limited = false;
    let failed: Error | undefined;
    outcomes.forEach((out, i) => {
      const index = itemIndex[i]!;
      switch (out.kind) {
        case 'accepted':
          perLane.set(out.lane, (perLane.get(out.lane) ?? 0) + 1);
          results[index] = { index, id: out.id, status: 'accepted' };
          break;
        case 'replayed':
          results[index] = { index, id: out.id, status: 'duplicate' };
          break;
        case 'conflict':
          results[index] = { index, status: 'rejected', errors: [CONFLICT] };
          break;
        case 'orphan':
          results[index] = { index, status: 'rejected', errors: [UNKNOWN_PAYIN] };
          break;
        case 'limited':
          limited = true;
          waitMs = Math.max(waitMs, out.waitMs);
          results[index] = { index, status: 'rejected', errors: [rateLimited(batch, out.waitMs)] };
          break;
        case 'failed':
          failed ??= out.error;
          results[index] = { index, status: 'rejected', errors: [UNAVAILABLE] };
          break;
      }
    });

    for (const [lane, n] of perLane) metrics.accepted.inc({ topic: batch.topic, lane }, n);
    const tally: Record<ResultStatus, number> = { accepted: 0, duplicate: 0, rejected: 0 };
    for (const r of results) tally[r.status]++;
    for (const [status, n] of Object.entries(tally)) if (n) events.inc({ status }, n);

    if (failed) log?.error({ err: failed, merchant: principal.merchantId }, 'Redis refused some batch appends');

    const headers: Record<string, string> = { 'cache-control': 'no-store' };
    if (limited) headers['retry-after'] = String(Math.max(1, Math.ceil(waitMs / 1000)));
    return c.json({ results }, 202, headers);
  };
}

const WRONG_MERCHANT: LineError = {
  type: problemType('forbidden'),
  status: 403,
  path: '/merchant_id',
  message: 'This API key may not submit transactions for that merchant_id.',
};

const CONFLICT: LineError = {
  type: problemType('idempotency-conflict'),
  status: 409,
  path: '/idempotency_key',
  message: 'This idempotency_key was already used with a different transaction.',
};

const UNKNOWN_PAYIN: LineError = {
  type: problemType('unknown-payin'),
  status: 422,
  path: '/reference',
  message: 'not a payin of this merchant accepted within the refund window; nothing was appended for it',
};

const UNAVAILABLE: LineError = {
  type: problemType('service-unavailable'),
  status: 503,
  path: '',
  message: 'Redis did not confirm this transaction; retry it (with an idempotency_key, a retry cannot append it twice).',
};

function rateLimited(batch: BatchAppender, waitMs: number): LineError {
  const { per_second, burst } = batch.rateLimit;
  const wait = Math.max(1, Math.ceil(waitMs / 1000));
  return {
    type: problemType('rate-limited'),
    status: 429,
    path: '',
    message: `The merchant is over its rate limit (${per_second}/s, burst ${burst}); nothing was appended for it. Retry in ${wait} s.`,
  };
}
