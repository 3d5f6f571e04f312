// Wallets and low-balance alerts for the console. Balances come from Postgres `wallets` (the
// sink's writes), lowest first; a wallet under the ledger stage's `low_balance` threshold for its
// currency is flagged. Alerts are the ledger's `wallet_low` events on its alerts topic (Redis),
// newest first, read with XREVRANGE (read-only, bounded per stream).
import type { Keys } from '../../core/keys.ts';
import type { PgPool } from '../../core/postgres.ts';
import type { RedisClient } from '../../core/redis.ts';
import { slotPipeline } from '../../core/slot-pipeline.ts';
import type { Topology } from '../../core/topology/schema.ts';

export interface WalletRow {
  merchantId: string;
  currency: string;
  balance: number;
  updatedAt: Date;
  threshold: number;
  low: boolean;
}

export interface AlertRow {
  at: number;
  merchantId: string;
  currency: string;
  balance: number;
  threshold: number;
  txId: string;
}

interface LedgerSettings {
  thresholds: Record<string, number>;
  alertsTopic: string | undefined;
}

/** The ledger stage's low-balance thresholds and alerts topic, if the topology has a ledger. */
export function ledgerSettings(topology: Topology): LedgerSettings {
  const ledger = Object.values(topology.stages).find((s) => s.processor === 'ledger');
  const config = (ledger?.config ?? {}) as { low_balance?: Record<string, number>; alerts_topic?: string };
  return { thresholds: config.low_balance ?? { default: 10_000 }, alertsTopic: config.alerts_topic };
}

export async function listWallets(
  pool: PgPool,
  topology: Topology,
  opts: { merchant?: string; lowOnly?: boolean; limit: number; offset: number },
): Promise<{ rows: WalletRow[]; more: boolean }> {
  const { thresholds } = ledgerSettings(topology);
  const where = opts.merchant ? 'WHERE merchant_id = $3' : '';
  const args: unknown[] = [opts.limit + 1, opts.offset, ...(opts.merchant ? [opts.merchant] : [])];
  const { rows } = await pool.query<{ merchant_id: string; currency: string; balance: string; updated_at: Date }>(
    `SELECT merchant_id, currency, balance, updated_at FROM wallets ${where} ORDER BY balance ASC, merchant_id, currency LIMIT $1 OFFSET $2`,
    args,
  );
  const out = rows.map((r) => {
    const threshold = thresholds[r.currency.trim()] ?? thresholds.default ?? 0;
    const balance = Number(r.balance);
    return { merchantId: r.merchant_id, currency: r.currency.trim(), balance, updatedAt: r.updated_at, threshold, low: balance < threshold };
  });
  const shown = opts.lowOnly ? out.filter((w) => w.low) : out;
  return { rows: shown.slice(0, opts.limit), more: rows.length > opts.limit };
}

export async function recentAlerts(redis: RedisClient, keys: Keys, topology: Topology, limit = 50): Promise<AlertRow[]> {
  const { alertsTopic } = ledgerSettings(topology);
  const topic = alertsTopic ? topology.topics[alertsTopic] : undefined;
  if (!alertsTopic || !topic) return [];
  const pipe = slotPipeline(redis);
  for (let p = 0; p < topic.partitions; p++) {
    for (const l of topology.priorities) {
      const key = keys.lane(alertsTopic, p, l.name);
      pipe.add(key, (x) => x.xrevrange(key, '+', '-', 'COUNT', limit));
    }
  }
  const out: AlertRow[] = [];
  for (const [err, reply] of await pipe.exec()) {
    if (err) throw err;
    for (const [, fields] of reply as [string, string[]][]) {
      const ev = fields.indexOf('ev');
      if (ev < 0) continue;
      try {
        const a = JSON.parse(fields[ev + 1]!) as Record<string, unknown>;
        if (a.type !== 'wallet_low') continue;
        out.push({
          at: Number(a.at),
          merchantId: String(a.merchant_id),
          currency: String(a.currency),
          balance: Number(a.balance),
          threshold: Number(a.threshold),
          txId: String(a.tx_id),
        });
      } catch {
        // not an alert this version knows: skipped
      }
    }
  }
  return out.sort((a, b) => b.at - a.at).slice(0, limit);
}
