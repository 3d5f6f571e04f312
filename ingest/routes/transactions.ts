// POST /v1/transactions: validate, authorize the merchant, append (once per Idempotency-Key).
// Runs after bearerAuth and requireJson; every failure is thrown as a ProblemError.
import type { Handler } from 'hono';
import type { EventAppender } from '../append/index.ts';
import type { AuthEnv } from '../auth/index.ts';
import { readBody } from '../body.ts';
import { parseIdempotencyKey } from '../idempotency.ts';
import type { IngestMetrics } from '../metrics.ts';
import { forbidden, idempotencyConflict } from '../../core/http/problem.ts';
import { parseTransactionBody } from '../validation.ts';
import { endSpan, startEventSpan, traceparentOf } from '../../core/tracing.ts';

export function postTransaction(appender: EventAppender, metrics: IngestMetrics, maxBodyBytes: number): Handler<AuthEnv> {
  return async (c) => {
    const bytes = await readBody(c, maxBodyBytes);
    const idempotencyKey = parseIdempotencyKey(c.req.header('idempotency-key'));
    const body = parseTransactionBody(bytes);
    const principal = c.get('principal');
    if (principal.scope !== 'merchant' || principal.merchantId !== body.merchant_id) {
      throw forbidden('This API key may not submit transactions for that merchant_id.');
    }

    // the trace starts here (or continues the client's traceparent) and travels in the entry
    const span = startEventSpan('ingest', c.req.header('traceparent'), { 'rill.merchant_id': body.merchant_id, 'rill.type': body.type });
    let out: Awaited<ReturnType<EventAppender['append']>>;
    try {
      out = await appender.append(body, idempotencyKey, traceparentOf(span));
      span?.setAttribute('rill.tx_id', out.id);
      endSpan(span);
    } catch (err) {
      endSpan(span, err as Error);
      throw err;
    }
    if (out.kind === 'conflict') {
      throw idempotencyConflict('This Idempotency-Key was already used with a different request body.');
    }
    if (out.kind === 'accepted') metrics.accepted.inc({ topic: appender.topic, lane: out.lane });
    const headers: Record<string, string> = { location: `/v1/transactions/${out.id}` };
    if (out.kind === 'replayed') headers['idempotent-replayed'] = 'true';
    return c.json({ id: out.id, status: 'accepted' as const }, 202, headers);
  };
}
