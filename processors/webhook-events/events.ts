// Merchant webhook events (core/webhooks/events.ts) made from settled transactions and merchant
// alerts. Pure: no I/O, no clock.
import { eventId, NOT_FOR_MERCHANTS, transactionData } from '../../core/processor-kit.ts';
import type { TransactionEvent, WebhookEvent } from '../../core/processor-kit.ts';

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
