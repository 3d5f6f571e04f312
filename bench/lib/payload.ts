// The payloads every scenario and every baseline sends: the same request bodies (HTTP) and the same
// stream entry (XADD baselines), so each ratio compares like with like.
//
// A body is what a merchant posts to POST /v1/transactions. The stream entry is what ingest appends
// for it (design §1, core/entry.ts): `tx` (the transaction id) and `ev` (the event as JSON: the
// body plus id, ingested_at and status), about 240 bytes for the default mix.
import { randomFillSync } from 'node:crypto';

export interface Merchant {
  id: string;
  key: string;
}

/**
 * default  90 % payins (normal lane), 10 % small payouts (high lane): every event can succeed
 * payin    payins only (the flood in the priority scenario)
 * refund   refunds of 1 minor unit against known payins (critical lane)
 */
export type Mix = 'default' | 'payin' | 'refund';

const CURRENCIES = ['USD', 'EUR', 'GBP'] as const;
const OCCURRED_AT = new Date(Date.UTC(2026, 0, 15, 12, 0, 0)).toISOString();
const METADATA = { channel: 'web', country: 'DE', campaign: 'spring' };

export interface TransactionBody {
  type: 'payin' | 'payout' | 'refund' | 'chargeback';
  merchant_id: string;
  amount: number;
  currency: string;
  reference?: string;
  occurred_at?: string;
  metadata?: Record<string, string>;
}

/** The i-th body of a mix for one merchant. `refs`: payin ids a refund may reference. */
export function transactionBody(i: number, merchantId: string, mix: Mix, refs?: readonly string[]): TransactionBody {
  if (mix === 'refund') {
    const ref = refs?.length ? refs[i % refs.length]! : 'tx_missing';
    return { type: 'refund', merchant_id: merchantId, amount: 1, currency: 'USD', reference: ref, occurred_at: OCCURRED_AT, metadata: METADATA };
  }
  if (mix === 'default' && i % 10 === 9) {
    return {
      type: 'payout',
      merchant_id: merchantId,
      amount: 100 + (i % 900),
      currency: 'USD',
      reference: `payout-${i}`,
      occurred_at: OCCURRED_AT,
      metadata: METADATA,
    };
  }
  return {
    type: 'payin',
    merchant_id: merchantId,
    amount: 1_000 + ((i * 7919) % 99_000),
    currency: CURRENCIES[i % CURRENCIES.length]!,
    reference: `order-${String(i).padStart(9, '0')}`,
    occurred_at: OCCURRED_AT,
    metadata: METADATA,
  };
}

/** Merchant ids for a run: m_bench_00 … */
export function merchantIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `m_bench_${String(i).padStart(2, '0')}`);
}

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

const pool = Buffer.alloc(26 * 256);
let offset = pool.length;

/** An id shaped like Rill's (tx_ + 26 characters of Crockford base32), random bytes drawn from a pool as Rill does. */
export function txIdLike(): string {
  if (offset + 26 > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  let s = 'tx_';
  for (let i = 0; i < 26; i++) s += ALPHABET[pool[offset + i]! % 32];
  offset += 26;
  return s;
}

/** The stream entry ingest appends for a body: field/value pairs for XADD. */
export function entryFields(body: TransactionBody, id = txIdLike(), now = Date.now()): [string, string, string, string] {
  const ev = JSON.stringify({ ...body, id, ingested_at: now, status: 'accepted' });
  return ['tx', id, 'ev', ev];
}

/** A representative entry (for redis-benchmark, which repeats one command). */
export function sampleEntry(): [string, string, string, string] {
  return entryFields(transactionBody(1, 'm_bench_01', 'default'));
}
