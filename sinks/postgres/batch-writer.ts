// Writes a batch in one Postgres transaction. The batch is first deduplicated here (an id seen
// twice keeps its first row; ledger lines once per (tx_id, account)), so it cannot conflict with
// itself. Rows arrive encoded as COPY text (the sink encodes each when it reads it, while the batch
// before is being written), so a batch is two concatenations and two COPYs.
//
// Fast path (the normal case: nothing of the batch is there yet): COPY straight into `transactions`
// (the partitioned parent routes rows to their day/hash partitions) and `ledger_entries`, then ONE
// upsert adds the batch's per-(merchant, currency) `wallet` sums, computed here, to `wallets`. No
// staging tables and no per-row ON CONFLICT probes, which cost most of a flush. processed_at and
// the lines' created_at are the columns' default, now(): the transaction's time, one per batch.
//
// Slow path, only when the fast path hits a unique violation (23505: some rows are already there,
// i.e. a redelivery after a crash between COMMIT and XACK, or an overlapping reclaimed batch):
// ROLLBACK, COPY into temp staging tables (made once per connection, emptied at each commit),
// INSERT ... ON CONFLICT DO NOTHING, and move wallets only by the ledger lines that really got
// inserted (RETURNING). Nothing is written twice, no balance moves twice, and no 23505 reaches the
// sink (which would dead-letter rows for it).
//
// Both paths end in commit(), the one place for writes that must commit with the batch's rows.
//
// Both paths take row locks in one order (transactions by id, ledger lines by (tx_id, account), in
// byte order: JS string order here, COLLATE "C" in SQL; wallets by (merchant_id, currency), ordered
// in SQL), so concurrent sinks with overlapping batches wait for each other instead of deadlocking.
//
// A row whose day has no partition yet fails the COPY/INSERT (23514); the writer then creates the
// batch's days (rill_ensure_partitions) and tries the batch once more.
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import type { RillEnv } from '../../core/config.ts';
import { connectionOptions } from '../../core/postgres.ts';
import { byKey, encodeRow, LEDGER_COLUMNS, TRANSACTION_COPY_COLUMNS, utcDay } from './rows.ts';
import type { SinkRow } from './rows.ts';
import { recordPayinRefunds } from './payin-refunds.ts';

const COLS = TRANSACTION_COPY_COLUMNS.join(', ');
const LEDGER_COLS = LEDGER_COLUMNS.join(', ');
const COPY_TRANSACTIONS = `COPY transactions (${COLS}) FROM STDIN`;
const COPY_LEDGER = `COPY ledger_entries (${LEDGER_COLS}) FROM STDIN`;
const STAGE_TRANSACTIONS = `COPY rill_staging (${COLS}) FROM STDIN`;
const STAGE_LEDGER = `COPY rill_ledger_staging (${LEDGER_COLS}) FROM STDIN`;

// Fast path. $1..$3: the batch's wallet sums as arrays (merchant_id, currency, amount), $4: its
// processed_at. ORDER BY in SQL: the same lock order as the slow path's GROUP BY ... ORDER BY.
const ADD_TO_WALLETS = `INSERT INTO wallets AS w (merchant_id, currency, balance, updated_at)
  SELECT merchant_id, currency, amount, $4::timestamptz
  FROM unnest($1::text[], $2::char(3)[], $3::bigint[]) AS s(merchant_id, currency, amount)
  ORDER BY merchant_id, currency
  ON CONFLICT (merchant_id, currency) DO UPDATE
    SET balance = w.balance + EXCLUDED.balance, updated_at = EXCLUDED.updated_at`;

// Slow path (the staged batch is already deduplicated).
const INSERT_TRANSACTIONS = `INSERT INTO transactions (${COLS})
  SELECT ${COLS} FROM rill_staging ORDER BY id COLLATE "C"
  ON CONFLICT DO NOTHING`;

// $1: the batch's processed_at (for wallets.updated_at). Only lines this statement inserted reach `wallets`.
const POST_LEDGER = `WITH ins AS (
    INSERT INTO ledger_entries (${LEDGER_COLS})
    SELECT ${LEDGER_COLS}
    FROM rill_ledger_staging ORDER BY tx_id COLLATE "C", account COLLATE "C"
    ON CONFLICT DO NOTHING
    RETURNING account, merchant_id, currency, amount
  ), moved AS (
    INSERT INTO wallets AS w (merchant_id, currency, balance, updated_at)
    SELECT merchant_id, currency, sum(amount)::bigint, $1::timestamptz
    FROM ins WHERE account = 'wallet'
    GROUP BY merchant_id, currency
    ORDER BY merchant_id, currency
    ON CONFLICT (merchant_id, currency) DO UPDATE
      SET balance = w.balance + EXCLUDED.balance, updated_at = EXCLUDED.updated_at
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM ins)::int AS entries, (SELECT count(*) FROM moved)::int AS wallets`;

/** How long creating a missing partition may wait for its lock before the batch fails (and is retried later). */
const ENSURE_LOCK_TIMEOUT = '10s';

export interface WriteResult {
  /** New `transactions` rows (rows already there are not counted). */
  transactions: number;
  /** New `ledger_entries` rows. */
  ledgerEntries: number;
  /** `wallets` rows created or changed. */
  wallets: number;
  /** Daily partitions this write had to create first. */
  partitionsCreated: number;
}

export class BatchWriter {
  private client: pg.Client | undefined;

  /** `createClient`: makes the connection (default `new pg.Client`), e.g. a fault-injecting one in simulation. */
  constructor(
    private readonly env: Pick<RillEnv, 'databaseUrl' | 'pgSchema'>,
    private readonly name = 'rill-sink',
    private readonly createClient: (config: pg.ClientConfig) => pg.Client = (config) => new pg.Client(config),
  ) {}

  /** Inserts the rows not already there (and their ledger lines); returns how many rows were new. */
  async write(rows: readonly SinkRow[]): Promise<number> {
    return (await this.writeBatch(rows)).transactions;
  }

  /** Like write(), with what else the batch changed. */
  async writeBatch(rows: readonly SinkRow[]): Promise<WriteResult> {
    if (!rows.length) return { transactions: 0, ledgerEntries: 0, wallets: 0, partitionsCreated: 0 };
    const client = await this.connect();
    const batch = prepare(rows, new Date().toISOString());
    try {
      try {
        return { ...(await this.attempt(client, batch)), partitionsCreated: 0 };
      } catch (err) {
        if (sqlState(err) !== '23514') throw err;
        // no partition for some row's day (or a CHECK failed, which the second attempt reports again)
        await client.query('ROLLBACK');
        const partitionsCreated = await this.ensureDays(client, batch.rows);
        return { ...(await this.attempt(client, batch)), partitionsCreated };
      }
    } catch (err) {
      // a broken connection cannot be reused; the next write reconnects
      await this.reset();
      throw err;
    }
  }

  /** The fast path; when some of the batch is already there (23505), the slow path instead. */
  private async attempt(client: pg.Client, batch: Prepared): Promise<Omit<WriteResult, 'partitionsCreated'>> {
    if (!batch.fast) return await this.merge(client, batch);
    try {
      return await this.copyDirect(client, batch);
    } catch (err) {
      if (sqlState(err) !== '23505') throw err;
      await client.query('ROLLBACK');
      return await this.merge(client, batch);
    }
  }

  /** Fast path: COPY straight into the tables, then one wallet upsert. Fails (23505) if any row or line exists. */
  private async copyDirect(client: pg.Client, batch: Prepared): Promise<Omit<WriteResult, 'partitionsCreated'>> {
    await client.query('BEGIN');
    const transactions = await copyIn(client, COPY_TRANSACTIONS, batch.txCopy);
    const ledgerEntries = batch.ledgerCopy ? await copyIn(client, COPY_LEDGER, batch.ledgerCopy) : 0;
    let wallets = 0;
    if (batch.wallets.merchants.length) {
      const { merchants, currencies, sums } = batch.wallets;
      wallets = (await client.query(ADD_TO_WALLETS, [merchants, currencies, sums, batch.processedAt])).rowCount ?? 0;
    }
    await this.commit(client, batch);
    return { transactions, ledgerEntries, wallets };
  }

  /** Slow path: stage, insert what is missing, move wallets by the lines really inserted. */
  private async merge(client: pg.Client, batch: Prepared): Promise<Omit<WriteResult, 'partitionsCreated'>> {
    await client.query('BEGIN');
    await copyIn(client, STAGE_TRANSACTIONS, batch.txCopy);
    const inserted = await client.query(INSERT_TRANSACTIONS);
    let ledgerEntries = 0;
    let wallets = 0;
    if (batch.ledgerCopy) {
      await copyIn(client, STAGE_LEDGER, batch.ledgerCopy);
      const posted = await client.query<{ entries: number; wallets: number }>(POST_LEDGER, [batch.processedAt]);
      ledgerEntries = posted.rows[0]!.entries;
      wallets = posted.rows[0]!.wallets;
    }
    await this.commit(client, batch);
    return { transactions: inserted.rowCount ?? 0, ledgerEntries, wallets };
  }

  /**
   * The end of a batch's transaction, on both paths: its rows, ledger lines and wallets are written.
   * Anything else that must commit with them (and not without them) is written here, before COMMIT;
   * `batch.rows` may hold rows already written by an earlier delivery of the batch.
   */
  private async commit(client: pg.Client, batch: Prepared): Promise<void> {
    await recordPayinRefunds(client, batch.rows, batch.processedAt); // what is refunded of each payin, in this transaction
    await client.query('COMMIT');
  }

  /** Create the daily partitions of the batch's days (each day on its own: no gap filled in between). */
  private async ensureDays(client: pg.Client, rows: readonly SinkRow[]): Promise<number> {
    const days = [...new Set(rows.map((r) => utcDay(r.event.ingested_at)))].sort();
    await client.query('BEGIN');
    try {
      await client.query(`SET LOCAL lock_timeout = '${ENSURE_LOCK_TIMEOUT}'`);
      const res = await client.query<{ created: number }>(
        'SELECT coalesce(sum(rill_ensure_partitions(d, d)), 0)::int AS created FROM unnest($1::date[]) AS d',
        [days],
      );
      await client.query('COMMIT');
      return res.rows[0]!.created;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  private async connect(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = this.createClient({
      connectionString: this.env.databaseUrl,
      application_name: this.name,
      options: connectionOptions(this.env),
      connectionTimeoutMillis: 10_000,
    });
    client.on('error', () => void this.reset());
    await client.connect();
    try {
      await client.query(`
        CREATE TEMP TABLE IF NOT EXISTS rill_staging (LIKE transactions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE IF NOT EXISTS rill_ledger_staging (
          tx_id text NOT NULL, account text NOT NULL, merchant_id text NOT NULL, currency char(3) NOT NULL, amount bigint NOT NULL
        ) ON COMMIT DELETE ROWS`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    this.client = client;
    return client;
  }

  private async reset(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.reset();
  }
}

/** One COPY ... FROM STDIN of a whole batch, written as one chunk; returns the rows copied. */
async function copyIn(client: pg.Client, sql: string, text: Buffer): Promise<number> {
  const copy = client.query(copyStreams.from(sql));
  await pipeline(Readable.from([text]), copy);
  return copy.rowCount;
}

function sqlState(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code;
}

interface Prepared {
  /** When the batch was prepared: wallets.updated_at (the rows' processed_at is the transaction's now()). */
  processedAt: string;
  /** False when the wallet sums cannot be made here: the batch takes the slow path. */
  fast: boolean;
  /** The batch without repeated ids (first kept), by id. */
  rows: SinkRow[];
  /** Their `transactions` lines (COPY text), by id. */
  txCopy: Buffer;
  /** Their ledger lines (COPY text), by (tx_id, account); undefined when there are none. */
  ledgerCopy: Buffer | undefined;
  /** Sum of the `wallet` lines per (merchant, currency), by (merchant, currency); sums as decimal strings. */
  wallets: { merchants: string[]; currencies: string[]; sums: string[] };
}

function prepare(input: readonly SinkRow[], processedAt: string): Prepared {
  const seen = new Set<string>();
  const rows: SinkRow[] = [];
  for (const r of input) {
    if (seen.has(r.event.id)) continue;
    seen.add(r.event.id);
    rows.push(r);
  }
  rows.sort((a, b) => byKey(a.event.id, b.event.id));
  const tx: Buffer[] = [];
  const ledger: Buffer[] = [];
  let fast = true;
  const sums = new Map<string, { merchant: string; currency: string; sum: bigint }>();
  for (const r of rows) {
    const enc = r.encoded ?? encodeRow(r);
    tx.push(enc.tx);
    if (enc.ledgerLines) ledger.push(enc.ledger);
    if (enc.wallet === undefined || !fast) continue;
    if (!enc.summable) {
      fast = false; // not whole minor units: let Postgres refuse it (22P02) on the slow path
      continue;
    }
    const { merchant_id: merchant, currency } = r.event;
    const key = `${merchant}\u0000${currency}`;
    const acc = sums.get(key);
    if (acc) acc.sum += BigInt(enc.wallet);
    else sums.set(key, { merchant, currency, sum: BigInt(enc.wallet) });
  }
  const groups = [...sums.values()].sort((a, b) => byKey(a.merchant, b.merchant) || byKey(a.currency, b.currency));
  return {
    processedAt,
    fast,
    rows,
    txCopy: Buffer.concat(tx),
    ledgerCopy: ledger.length ? Buffer.concat(ledger) : undefined,
    wallets: { merchants: groups.map((g) => g.merchant), currencies: groups.map((g) => g.currency), sums: groups.map((g) => String(g.sum)) },
  };
}
