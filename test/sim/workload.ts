// One seed's transactions: a few merchants (each in one currency), payins, payouts (some
// overdrawing), refunds and chargebacks of earlier payins (some asking more than is refundable),
// one orphan refund now and then, events validate rejects, payins risk rejects, and events the
// flaky plugin fails (retryably N times, always, or fatally). Listed in ingest order.
import type { TransactionEvent, TransactionType } from '../../core/event.ts';
import type { Random } from './prng.ts';

export type Kind = 'payin' | 'payout' | 'refund' | 'chargeback' | 'orphan' | 'invalid' | 'huge';

export interface SimEvent {
  id: string;
  kind: Kind;
  /** The flaky plugin's instruction (metadata.fail), if any. */
  fail?: '1' | '2' | 'always' | 'fatal';
  body: Omit<TransactionEvent, 'ingested_at'>;
}

export interface Workload {
  merchants: string[];
  currencyOf: Map<string, string>;
  events: SimEvent[];
}

export function makeWorkload(seed: number, rng: Random): Workload {
  const merchants = Array.from({ length: rng.int(2, 4) }, (_, k) => `s${seed}-m${k}`);
  const currencyOf = new Map(merchants.map((m) => [m, rng.pick(['USD', 'EUR'])]));
  const payins = new Map<string, { id: string; amount: number }[]>(merchants.map((m) => [m, []]));
  const events: SimEvent[] = [];
  const n = rng.int(12, 30);
  let orphan = false;
  for (let i = 0; i < n; i++) {
    const m = rng.pick(merchants);
    const cur = currencyOf.get(m)!;
    const mine = payins.get(m)!;
    let kind = rng.weighted<Kind>([
      ['payin', 40],
      ['payout', 20],
      ['refund', 14],
      ['chargeback', 5],
      ['invalid', 3],
      ['huge', 2],
      ['orphan', orphan ? 0 : 3],
    ]);
    if (!mine.length && (kind === 'payout' || kind === 'refund' || kind === 'chargeback')) kind = 'payin';
    const id = `s${seed}-t${String(i).padStart(2, '0')}`;
    let type: TransactionType = 'payin';
    let amount = rng.int(500, 5_000);
    let currency = cur;
    let reference: string | undefined;
    switch (kind) {
      case 'payin':
        mine.push({ id, amount });
        break;
      case 'huge':
        amount = 20_000_000; // above risk's per_hour_amount on its own: scored 100, failed
        break;
      case 'payout':
        type = 'payout';
        amount = rng.int(200, 6_000);
        break;
      case 'refund':
      case 'chargeback': {
        type = kind;
        const p = rng.pick(mine);
        reference = p.id;
        amount = kind === 'chargeback' ? p.amount : rng.chance(0.2) ? p.amount + 1 : rng.int(1, p.amount);
        break;
      }
      case 'orphan':
        orphan = true;
        type = 'refund';
        reference = `s${seed}-no-such-payin`;
        amount = rng.int(100, 1_000);
        break;
      case 'invalid':
        if (rng.chance(0.5))
          currency = 'JPY'; // not one of the stage's currencies
        else type = 'refund'; // a refund without a reference
        break;
    }
    const fail =
      kind !== 'invalid' && rng.chance(0.15)
        ? rng.weighted<SimEvent['fail']>([
            ['1', 3],
            ['2', 2],
            ['always', 1],
            ['fatal', 1],
          ])
        : undefined;
    const body: SimEvent['body'] = { id, merchant_id: m, type, amount, currency, status: 'accepted' };
    if (reference) body.reference = reference;
    if (fail) body.metadata = { fail };
    events.push({ id, kind, fail, body });
  }
  return { merchants, currencyOf, events };
}
