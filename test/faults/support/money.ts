// Money conservation for the payments pipeline, as a verdict in the consistency checker's shape:
// for every merchant and currency, the expected balance (from the workload's oracle) = the wallet
// row in Postgres = the sum of its `wallet` ledger entries = the ledger stage's wallet in Redis;
// every succeeded transaction has exactly its two lines (wallet ±amount, external ∓amount), any
// other transaction none; every transaction's lines sum to zero. A batch applied twice moves a
// wallet twice and shows up here even where the rows look right.
import type { Redis } from 'ioredis';
import type { Keys } from '../../../core/keys.ts';
import { partitionOf } from '../../../core/partition.ts';
import type { PgPool } from '../../../core/postgres.ts';
import type { Verdict } from './consistency.ts';

export interface MoneyTx {
  id: string;
  merchant: string;
  currency: string;
  type: 'payin' | 'payout' | 'refund' | 'chargeback';
  amount: number;
  /** The oracle's word: this one moves money. */
  succeeds: boolean;
}

export interface MoneyContext {
  redis: Redis;
  keys: Keys;
  pool: PgPool;
  partitions: number;
}

const signed = (t: MoneyTx) => (t.type === 'payin' ? t.amount : -t.amount);

export async function moneyVerdict(ctx: MoneyContext, txs: readonly MoneyTx[]): Promise<Verdict> {
  const problems = new Map<string, string[]>();
  const report = (kind: string, item: string) => {
    const l = problems.get(kind);
    if (l) l.push(item);
    else problems.set(kind, [item]);
  };

  const expected = new Map<string, bigint>();
  const merchants = new Map<string, Set<string>>();
  for (const t of txs) {
    const k = `${t.merchant}/${t.currency}`;
    if (!merchants.has(t.merchant)) merchants.set(t.merchant, new Set());
    merchants.get(t.merchant)!.add(t.currency);
    expected.set(k, (expected.get(k) ?? 0n) + (t.succeeds ? BigInt(signed(t)) : 0n));
  }

  const { rows: wallets } = await ctx.pool.query<{ k: string; balance: string }>("SELECT merchant_id || '/' || currency AS k, balance::text FROM wallets");
  const pgWallet = new Map(wallets.map((w) => [w.k, BigInt(w.balance)]));
  const { rows: sums } = await ctx.pool.query<{ k: string; sum: string }>(
    "SELECT merchant_id || '/' || currency AS k, sum(amount)::text AS sum FROM ledger_entries WHERE account = 'wallet' GROUP BY 1",
  );
  const entrySum = new Map(sums.map((s) => [s.k, BigInt(s.sum)]));
  const redisWallet = new Map<string, bigint>();
  for (const [m, currencies] of merchants) {
    const h = await ctx.redis.hgetall(ctx.keys.partitioned(partitionOf(m, ctx.partitions), 'wallet', m));
    for (const c of currencies) if (h[c] !== undefined) redisWallet.set(`${m}/${c}`, BigInt(h[c]!));
  }
  for (const k of new Set([...expected.keys(), ...pgWallet.keys(), ...entrySum.keys()])) {
    const want = expected.get(k);
    const got = { pg: pgWallet.get(k) ?? 0n, entries: entrySum.get(k) ?? 0n, redis: redisWallet.get(k) ?? 0n };
    if (want === undefined) {
      report('wallets of merchants the workload never posted for', `${k}: ${JSON.stringify(got, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
      continue;
    }
    if (got.pg !== want) report('wallet balance (Postgres) ≠ expected', `${k}: expected ${want}, wallet ${got.pg} (Δ ${got.pg - want})`);
    if (got.entries !== want) report('sum of wallet ledger entries ≠ expected', `${k}: expected ${want}, entries ${got.entries} (Δ ${got.entries - want})`);
    if (got.redis !== want) report('ledger stage wallet (Redis) ≠ expected', `${k}: expected ${want}, Redis ${got.redis} (Δ ${got.redis - want})`);
  }

  const { rows: entries } = await ctx.pool.query<{ tx_id: string; account: string; amount: string }>('SELECT tx_id, account, amount::text FROM ledger_entries');
  const linesOf = new Map<string, Map<string, bigint[]>>();
  let total = 0n;
  for (const e of entries) {
    total += BigInt(e.amount);
    let m = linesOf.get(e.tx_id);
    if (!m) linesOf.set(e.tx_id, (m = new Map()));
    m.set(e.account, [...(m.get(e.account) ?? []), BigInt(e.amount)]);
  }
  const known = new Set<string>();
  for (const t of txs) {
    known.add(t.id);
    const lines = linesOf.get(t.id);
    if (!t.succeeds) {
      if (lines) report('ledger entries for a transaction that moves no money', `${t.id} (${t.type} ${t.amount})`);
      continue;
    }
    const w = lines?.get('wallet') ?? [];
    const x = lines?.get('external') ?? [];
    const a = BigInt(signed(t));
    if (w.length !== 1 || x.length !== 1 || w[0] !== a || x[0] !== -a) {
      report(
        'ledger lines of a succeeded transaction are not exactly ±amount',
        `${t.id} (${t.type} ${t.amount}): wallet [${w.join(', ')}], external [${x.join(', ')}]`,
      );
    }
  }
  for (const [tx, lines] of linesOf) {
    if (!known.has(tx)) report('ledger entries of unknown transactions', `${tx}: ${[...lines].map(([acc, v]) => `${acc} ${v.join(',')}`).join('; ')}`);
    const sum = [...lines.values()].flat().reduce((s, v) => s + v, 0n);
    if (sum !== 0n) report('transactions whose ledger lines do not sum to zero', `${tx}: ${sum}`);
  }
  if (total !== 0n) report('double entry: all ledger entries do not sum to zero', `sum ${total}`);

  const expectedTotal = [...expected.values()].reduce((s, v) => s + v, 0n);
  const pgTotal = [...pgWallet.values()].reduce((s, v) => s + v, 0n);
  return {
    ok: problems.size === 0,
    counts: { accepted: txs.length, rows: 0, deadLettered: 0, pending: 0, tableRows: 0, deadLetterEntries: 0 },
    sums: { accepted: expectedTotal, table: pgTotal, rowsExpected: expectedTotal, deadLettered: 0n, pending: 0n },
    problems: [...problems].map(([kind, items]) => ({ kind: `money: ${kind}`, items })),
  };
}

export function formatMoney(v: Verdict, wallets: number): string {
  return `money: ${v.ok ? 'OK' : 'FAILED'} — ${wallets} wallets, expected total ${v.sums.accepted}, Postgres wallets total ${v.sums.table}`;
}
