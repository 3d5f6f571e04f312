// Sink rows for BatchWriter tests: succeeded events with their double-entry lines, and the wallet
// balances they should leave.
import { randomBytes } from 'node:crypto';
import type { TransactionEvent, TransactionType } from '../../core/event.ts';
import type { SinkRow } from '../../sinks/postgres/rows.ts';

let seq = 0;
/** A succeeded event with its double-entry lines: money in for payin, out of the wallet otherwise. */
export function event(merchant: string, currency: string, type: TransactionType, amount: number, over: Partial<TransactionEvent> = {}): TransactionEvent {
  const sign = type === 'payin' ? 1 : -1;
  return {
    id: `tx_${String(++seq).padStart(8, '0')}${randomBytes(4).toString('hex')}`,
    merchant_id: merchant,
    type,
    amount,
    currency,
    ingested_at: Date.now(),
    status: 'succeeded',
    ledger: [
      { account: 'wallet', amount: sign * amount },
      { account: 'external', amount: -sign * amount },
    ],
    ...over,
  };
}

export const row = (e: TransactionEvent, i = 0): SinkRow => ({ event: e, streamId: `${e.ingested_at}-${i}`, attempts: 1 });

/** Wallet balances expected from events: the sum of their wallet lines (failed ones move nothing). */
export function expectedWallets(events: readonly TransactionEvent[]): Map<string, bigint> {
  const m = new Map<string, bigint>();
  for (const e of events) {
    if (e.status === 'failed') continue;
    for (const l of e.ledger ?? []) {
      if (l.account !== 'wallet') continue;
      const k = `${e.merchant_id}/${e.currency}`;
      m.set(k, (m.get(k) ?? 0n) + BigInt(l.amount));
    }
  }
  return m;
}
