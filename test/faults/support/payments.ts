// The payments consistency workload: per merchant, a deterministic sequence of payins, payouts,
// refunds and chargebacks, plus the three ways a payment goes wrong (an overdraft, a refund past
// what is refundable, an orphan refund), each with its known outcome.
//
// Outcomes do not depend on the order the pipeline happens to apply a merchant's events in (a
// payout travels in a higher priority lane than the payin before it, and may overtake it): each
// merchant first gets one large seed payin, drained through the pipeline before the load; every
// refund and chargeback references that seed, and all debits together stay far below it. So
// payouts, refunds and chargebacks always succeed, an overdraft (larger than anything the merchant
// could ever hold) always fails, a refund larger than the seed always fails, and an orphan refund
// (unknown payin) is always refused by ingest (422 unknown-payin: nothing appended, not accepted).
// Nothing is dead-lettered. The oracle then knows every final status and every wallet balance exactly.
import type { TransactionBody } from '../../../ingest/validation.ts';
import { UnknownPayinError } from '../../../core/errors.ts';
import type { EventAppender } from '../../../ingest/append/index.ts';
import type { Topology } from '../../../core/topology/schema.ts';
import { SHIPPED_TOPOLOGY, WITHOUT_WEBHOOKS, writeTopology } from '../../helpers/topology-file.ts';
import { merchantIds } from '../../helpers/transactions.ts';
import type { Accepted, Expectation } from './consistency.ts';
import type { MoneyTx } from './money.ts';

export const SEED_AMOUNT = 1_000_000;
const OVERDRAFT = 5_000_000;

export interface Step {
  body: TransactionBody;
  expect: Expectation;
  succeeds: boolean;
  /** Ingest must refuse it (a refund naming no payin of its merchant: 422 unknown-payin). */
  refused?: boolean;
}

/**
 * Accepts a body, resolves with the transaction id that got 202 (the poster retries as it must),
 * or undefined when ingest refused it for naming no accepted payin (422 unknown-payin).
 */
export type Poster = (body: TransactionBody, idempotencyKey: string) => Promise<string | undefined>;

/** A Poster over an in-process EventAppender: UnknownPayinError (the 422) resolves undefined. */
export function appenderPoster(appender: EventAppender): Poster {
  return async (body, key) => {
    try {
      return (await appender.append(body, key)).id;
    } catch (err) {
      if (err instanceof UnknownPayinError) return undefined;
      throw err;
    }
  };
}

/** A steady rate for a load: `take()` resolves when the next event may go. */
export class Pacer {
  private next = 0;
  private readonly t0 = performance.now();
  constructor(private readonly perSecond: number) {}
  async take(): Promise<void> {
    const at = this.t0 + (this.next++ * 1000) / this.perSecond;
    const wait = at - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

function lcg(seed: number): () => number {
  let x = (seed * 2654435761 + 12345) % 2147483648;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

export class PaymentsWorkload {
  readonly merchants: string[];
  readonly accepted: Accepted[] = [];
  readonly money: MoneyTx[] = [];
  /** Orphan refunds ingest refused (422), as it must: never accepted, never appended. */
  refused = 0;
  private readonly seedIds = new Map<string, string>();
  /** How many of the load's events each merchant has had accepted. */
  private readonly done = new Map<string, number>();
  private stopped = false;

  constructor(
    merchants: number,
    readonly perMerchant: number,
    readonly tag = 'load',
  ) {
    this.merchants = merchantIds(merchants);
  }

  currencyOf(m: string): string {
    return Number(m.slice(2)) % 2 ? 'EUR' : 'USD';
  }

  get acceptedCount(): number {
    return this.accepted.length;
  }

  /** Events (seeds included) the oracle expects to end in each place; `refused`: the orphans ingest refused. */
  expectedCounts(): { rows: number; succeeded: number; failed: number; dead: number; refused: number } {
    let succeeded = 0;
    let failed = 0;
    let dead = 0;
    for (const a of this.accepted) {
      if (a.expect?.place === 'dead') dead++;
      else if (a.expect?.place === 'row' && a.expect.status === 'failed') failed++;
      else succeeded++;
    }
    // every orphan among the events posted so far, each refused once
    let refused = 0;
    for (const m of this.merchants) for (let k = 0; k < (this.done.get(m) ?? 0); k++) if (k % 100 === 71) refused++;
    return { rows: succeeded + failed, succeeded, failed, dead, refused };
  }

  /** Stop a running load (a failed scenario's after hook): no event is posted after this. */
  stop(): void {
    this.stopped = true;
  }

  /** Count an event posted outside `run` (e.g. a marked one) with its outcome. */
  record(step: Step, id: string): void {
    const b = step.body;
    this.accepted.push({ id, amount: b.amount, expect: step.expect, label: `${b.type} ${b.amount} ${b.merchant_id}` });
    this.money.push({ id, merchant: b.merchant_id, currency: b.currency, type: b.type, amount: b.amount, succeeds: step.succeeds });
  }

  /** Post one seed payin per merchant (then drain the pipeline before `run`). */
  async seed(post: Poster): Promise<void> {
    await Promise.all(
      this.merchants.map(async (m) => {
        const step: Step = {
          body: { type: 'payin', merchant_id: m, amount: SEED_AMOUNT, currency: this.currencyOf(m), reference: `${this.tag}-seed` },
          expect: { place: 'row', status: 'succeeded' },
          succeeds: true,
        };
        if (this.stopped) return;
        const id = await post(step.body, `${this.tag}-${m}-seed`);
        if (id === undefined) throw new Error(`ingest refused the seed payin of ${m}`);
        this.seedIds.set(m, id);
        this.record(step, id);
      }),
    );
  }

  /** The k-th load event of merchant m, with its outcome (for an orphan: refused by ingest). */
  step(m: string, k: number): Step {
    const seed = this.seedIds.get(m);
    if (!seed) throw new Error(`merchant ${m} has no seed payin yet: run seed() first`);
    const currency = this.currencyOf(m);
    const rand = lcg(Number(m.slice(2)) * 100_003 + k);
    const reference = `${this.tag}-${k}`;
    const ok: Expectation = { place: 'row', status: 'succeeded' };
    const body = (type: TransactionBody['type'], amount: number, ref = reference): TransactionBody => ({
      type,
      merchant_id: m,
      amount,
      currency,
      reference: ref,
    });
    switch (k % 100) {
      case 37:
        return { body: body('payout', OVERDRAFT), expect: { place: 'row', status: 'failed', reason: /^ledger: insufficient funds/ }, succeeds: false };
      case 71:
        return { body: body('refund', 100, `tx_orphan_${this.tag}_${m}_${k}`), expect: { place: 'row', status: 'failed' }, succeeds: false, refused: true };
      case 89:
        return {
          body: body('refund', SEED_AMOUNT + 1, seed),
          expect: { place: 'row', status: 'failed', reason: /^ledger: refund of \d+ exceeds the refundable/ },
          succeeds: false,
        };
      default:
        break;
    }
    const r = rand();
    const amount = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo));
    if (r < 0.5) return { body: body('payin', amount(1_000, 5_000)), expect: ok, succeeds: true };
    if (r < 0.75) return { body: body('payout', amount(500, 2_000)), expect: ok, succeeds: true };
    if (r < 0.9) return { body: body('refund', amount(100, 500), seed), expect: ok, succeeds: true };
    return { body: body('chargeback', amount(100, 500), seed), expect: ok, succeeds: true };
  }

  /**
   * The load: every merchant posts its `perMerchant` events one after another (merchants in
   * parallel), at `perSecond` in all when given. Resolves when every event got its 202.
   */
  async run(post: Poster, opts: { perSecond?: number } = {}): Promise<void> {
    const pacer = opts.perSecond ? new Pacer(opts.perSecond) : undefined;
    await Promise.all(
      this.merchants.map(async (m) => {
        for (let k = this.done.get(m) ?? 0; k < this.perMerchant; k++) {
          await pacer?.take();
          if (this.stopped) return;
          const step = this.step(m, k);
          const id = await post(step.body, `${this.tag}-${m}-${k}`);
          if (step.refused) {
            if (id !== undefined) throw new Error(`ingest accepted the orphan refund ${step.body.reference} as ${id}: it must refuse it (422)`);
            this.refused++;
          } else {
            if (id === undefined) throw new Error(`ingest refused ${step.body.type} ${step.body.amount} of ${m} as naming no payin`);
            this.record(step, id);
          }
          this.done.set(m, k + 1);
        }
      }),
    );
  }
}

/**
 * The shipped payments topology (validate → risk → ledger → sink) tuned for fault tests: no rate
 * limit in the way, short lease TTLs and visibility timeouts (a dead worker's work moves within
 * seconds), quick ledger retries, small sink batches.
 */
export function paymentsTopology(changes: Record<string, unknown> = {}): { path: string; topology: Topology } {
  return writeTopology(
    {
      'ingest.rate_limit': { per_second: 1_000_000, burst: 1_000_000 },
      'stages.validate.lease_ttl': '2s',
      'stages.validate.visibility_timeout': '2s',
      'stages.risk.lease_ttl': '2s',
      'stages.risk.visibility_timeout': '2s',
      'stages.risk.config.features': false, // the velocity rules alone: fault tests count money, not fraud
      'stages.ledger.lease_ttl': '2s',
      'stages.ledger.visibility_timeout': '2s',
      'stages.ledger.retry': { attempts: 3, base: '20ms', factor: 2, max: '100ms', jitter: 'full' },
      'sinks.postgres.batch_rows': 500,
      'sinks.postgres.max_wait': '100ms',
      'sinks.postgres.visibility_timeout': '2s',
      ...WITHOUT_WEBHOOKS, // the fault scenarios are about the payments pipeline; webhooks have tests of their own
      // the intermediate topics kept (shipped: trimmed once acknowledged), so the copies check sees every result written
      'topics.validated.retention': { hot: '1h' },
      'topics.scored.retention': { hot: '1h' },
      ...changes,
    },
    SHIPPED_TOPOLOGY,
  );
}
