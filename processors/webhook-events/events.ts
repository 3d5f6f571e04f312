// Merchant webhook event objects (Stripe-like: id, type, created_at, data), made from settled
// transactions and merchant alerts. Pure: no I/O, no clock. The id is derived from the source
// (transaction id or alert id, and the type), so a replayed source makes the same event id and a
// receiver deduplicates on `webhook-id`.
import { createHash } from 'node:crypto';
import type { TransactionEvent } from '../../core/event.ts';

export const WEBHOOK_EVENT_TYPES = [
  'transaction.succeeded',
  'transaction.failed',
  'transaction.dead_lettered',
  'wallet.balance_low',
  'webhook_endpoint.disabled',
  'webhook.test',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** Made for sources no merchant receives (operator alerts): the dispatcher drops them. */
export const NOT_FOR_MERCHANTS = 'rill.not_for_merchants';

export interface WebhookEvent {
  id: string;
  type: WebhookEventType | typeof NOT_FOR_MERCHANTS;
  /** RFC 3339. */
  created_at: string;
  /** The merchant it is for ('' for NOT_FOR_MERCHANTS). */
  merchant_id: string;
  data: Record<string, unknown>;
}

export function eventId(type: string, sourceId: string): string {
  return `evt_${createHash('sha256').update(`${type}:${sourceId}`).digest('base64url').slice(0, 24)}`;
}

const iso = (ms: number | undefined): string | null => (ms === undefined || !Number.isFinite(ms) ? null : new Date(ms).toISOString());

/** The transaction as GET /v1/transactions/:id shows it. */
export function transactionData(t: TransactionEvent, processedAt: number): Record<string, unknown> {
  return {
    id: t.id,
    merchant_id: t.merchant_id,
    type: t.type,
    amount: t.amount,
    currency: t.currency,
    reference: t.reference ?? null,
    metadata: t.metadata ?? null,
    status: t.status ?? 'processing',
    // core/failure-codes.ts: set by the stage that failed it
    failure_code: t.status === 'failed' ? (t.failure_code ?? null) : null,
    failure_reason: t.failure_reason ?? null,
    risk_score: t.risk_score ?? null,
    occurred_at: t.occurred_at ?? null,
    ingested_at: iso(t.ingested_at),
    processed_at: iso(processedAt),
  };
}

/** The event for a settled transaction (succeeded or failed). */
export function fromTransaction(t: TransactionEvent, now: number): WebhookEvent {
  const type = t.status === 'failed' ? 'transaction.failed' : t.status === 'dead_lettered' ? 'transaction.dead_lettered' : 'transaction.succeeded';
  return { id: eventId(type, t.id), type, created_at: new Date(now).toISOString(), merchant_id: t.merchant_id, data: transactionData(t, now) };
}

/** The event for an alert of the alerts topic: merchant alerts only, others are NOT_FOR_MERCHANTS. */
export function fromAlert(a: Record<string, unknown>, now: number): WebhookEvent {
  const id = typeof a.id === 'string' ? a.id : '';
  const merchant = typeof a.merchant_id === 'string' ? a.merchant_id : '';
  const at = typeof a.at === 'number' ? a.at : now;
  const { id: _id, type: _type, merchant_id: _m, ...rest } = a;
  if (merchant && a.type === 'wallet_low') {
    return {
      id: eventId('wallet.balance_low', id),
      type: 'wallet.balance_low',
      created_at: new Date(at).toISOString(),
      merchant_id: merchant,
      data: { merchant_id: merchant, ...rest },
    };
  }
  if (merchant && a.type === 'webhook_endpoint.disabled') {
    return {
      id: eventId('webhook_endpoint.disabled', id),
      type: 'webhook_endpoint.disabled',
      created_at: new Date(at).toISOString(),
      merchant_id: merchant,
      data: { merchant_id: merchant, ...rest },
    };
  }
  return { id: eventId(NOT_FOR_MERCHANTS, id || String(now)), type: NOT_FOR_MERCHANTS, created_at: new Date(at).toISOString(), merchant_id: '', data: {} };
}
