// The merchant webhook event (Stripe-like: id, type, created_at, data): its types, its shape, its
// id and the transaction as its data. The webhook-events processor makes them from settled
// transactions and merchant alerts (processors/webhook-events/events.ts), the webhooks sink from
// dead letters (sinks/webhooks/dead-letter-events.ts); the API accepts the types in an endpoint's
// subscription. The id is derived from the source (transaction id or alert id, and the type), so
// a replayed source makes the same event id and a receiver deduplicates on `webhook-id`.
import { createHash } from 'node:crypto';
import type { TransactionEvent } from '../event.ts';
import { transactionView } from '../transaction-view.ts';
import type { TransactionView } from '../transaction-view.ts';

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

/** The transaction as GET /v1/transactions/:id shows it, as the pipeline finished it at `processedAt`. */
export function transactionData(t: TransactionEvent, processedAt: number): TransactionView {
  return transactionView(t, t.status ?? 'processing', processedAt);
}
