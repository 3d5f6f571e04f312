// Sample transactions for tests: valid for the shipped topology's validate stage.
import type { Redis } from 'ioredis';
import type { Keys } from '../../core/keys.ts';
import { partitionOf } from '../../core/partition.ts';
import { PAYIN_ACCEPTED, payinBucket } from '../../core/payins.ts';
import type { Topology } from '../../core/topology/schema.ts';
import type { TransactionBody } from '../../ingest/validation.ts';

const TYPES = ['payin', 'payout', 'refund', 'chargeback'] as const;
const CURRENCIES = ['USD', 'EUR', 'GBP'] as const;

export function merchantIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `m_${String(i).padStart(3, '0')}`);
}

/** The i-th of a deterministic mix: all four types, spread over the merchants. */
export function sampleBody(i: number, merchants: readonly string[]): TransactionBody {
  const type = TYPES[i % TYPES.length]!;
  return {
    type,
    merchant_id: merchants[i % merchants.length]!,
    amount: 100 + ((i * 7919) % 100_000),
    currency: CURRENCIES[i % CURRENCIES.length]!,
    reference: `ref-${i}`,
  };
}

/**
 * Registers the payins that refunds and chargebacks among `bodies` name, exactly as ingest
 * registers a payin it accepts (core/payins.ts: HSETNX in the merchant's refundable-payins bucket,
 * state "accepted"), so ingest lets them through its unknown-payin check. For tests whose point is
 * not the payin (the engine topology has no ledger to settle anything); a test of the payments
 * pipeline posts real payins first and names their ids instead.
 */
export async function registerReferencedPayins(
  redis: Redis,
  keys: Keys,
  topology: Topology,
  bodies: Iterable<Pick<TransactionBody, 'type' | 'merchant_id' | 'reference'>>,
): Promise<number> {
  const partitions = topology.topics[topology.ingest.topic]!.partitions;
  const pipe = redis.pipeline();
  let n = 0;
  for (const b of bodies) {
    if ((b.type !== 'refund' && b.type !== 'chargeback') || !b.reference) continue;
    const p = partitionOf(b.merchant_id, partitions);
    pipe.hsetnx(keys.payins(p, b.merchant_id, payinBucket(b.reference, topology.refunds.hot).name), b.reference, PAYIN_ACCEPTED);
    n++;
  }
  for (const [err] of (await pipe.exec()) ?? []) if (err) throw err;
  return n;
}
