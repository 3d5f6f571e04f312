// GET /v1/wallets: the key's merchant's balances, one per currency, from Postgres `wallets`
// (kept by the ledger stage through the sink). Runs after bearerAuth('merchant').
//   200 { wallets: [{ currency, balance (integer minor units), updated_at (RFC 3339) }] }
// ordered by currency; an empty list for a merchant without any.
import type { Handler } from 'hono';
import type { PgPool } from '../../core/postgres.ts';
import type { AuthEnv } from '../auth/index.ts';
import { forbidden } from '../../core/http/problem.ts';
import { withTimeout } from '../timeout.ts';

export interface WalletView {
  currency: string;
  /** Minor units; may be negative (a chargeback can take a wallet below zero). */
  balance: number;
  updated_at: string;
}

export const WALLETS_SQL = 'SELECT currency, balance, updated_at FROM wallets WHERE merchant_id = $1 ORDER BY currency';

interface WalletRow {
  currency: string;
  balance: string | number;
  updated_at: Date;
}

export async function merchantWallets(pool: PgPool, merchantId: string, timeoutMs: number): Promise<WalletView[]> {
  const { rows } = await withTimeout(pool.query<WalletRow>(WALLETS_SQL, [merchantId]), timeoutMs, 'Postgres wallets');
  return rows.map((r) => ({ currency: r.currency, balance: Number(r.balance), updated_at: r.updated_at.toISOString() }));
}

export function getWallets(pool: PgPool, timeoutMs: number): Handler<AuthEnv> {
  return async (c) => {
    const principal = c.get('principal');
    if (principal.scope !== 'merchant') throw forbidden('This API key may not read wallets.');
    const wallets = await merchantWallets(pool, principal.merchantId, timeoutMs);
    return c.json({ wallets }, 200, { 'cache-control': 'no-store' });
  };
}
