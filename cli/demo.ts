// `rill dev --demo N`: posts N sample transactions to the running ingest and shows progress until
// every accepted one is in Postgres.
import { randomInt } from 'node:crypto';
import type { PgPool } from '../core/postgres.ts';
import { Progress } from './progress.ts';

export function sampleTransaction(merchantId: string, i: number): Record<string, unknown> {
  const type = i % 10 === 9 ? 'refund' : i % 5 === 4 ? 'payout' : 'payin';
  return {
    type,
    merchant_id: merchantId,
    amount: randomInt(100, 100_000),
    currency: ['USD', 'EUR', 'GBP'][i % 3],
    reference: `demo-${i}`,
    metadata: { source: 'rill-dev-demo' },
  };
}

export async function runDemo(o: { url: string; key: string; merchantId: string; count: number; pool: PgPool; concurrency?: number }): Promise<{ accepted: number; ms: number }> {
  const started = Date.now();
  const ids: string[] = [];
  const posting = new Progress('posting  ', o.count);
  let next = 0;
  const worker = async () => {
    while (next < o.count) {
      const i = next++;
      const res = await fetch(`${o.url}/v1/transactions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${o.key}`, 'content-type': 'application/json', 'idempotency-key': `demo-${started}-${i}` },
        body: JSON.stringify(sampleTransaction(o.merchantId, i)),
      });
      const body = (await res.json()) as { id?: string; detail?: string };
      if (res.status !== 202 || !body.id) throw new Error(`demo post answered ${res.status}: ${body.detail ?? ''}`);
      ids.push(body.id);
      posting.update(ids.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency ?? 32, o.count) }, worker));
  const landing = new Progress('in Postgres', ids.length);
  for (;;) {
    const { rows } = await o.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions WHERE id = ANY($1)', [ids]);
    const n = Number(rows[0]!.n);
    landing.update(n, `${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (n >= ids.length) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  return { accepted: ids.length, ms: Date.now() - started };
}
