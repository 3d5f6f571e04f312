// Writes a batch in one Postgres transaction:
//   1. COPY the rows into a temp staging table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING
//      into `transactions` (partitioned; its key is (id, ingested_at, merchant_id));
//   2. COPY the batch's ledger lines into a second staging table, then one statement inserts them
//      into `ledger_entries` ON CONFLICT DO NOTHING and, from the lines it really inserted (RETURNING),
//      adds the per-(merchant, currency) sum of the `wallet` lines to `wallets`.
// A redelivered batch (crash after COMMIT, before XACK) inserts nothing twice, so no balance moves
// twice. One COPY per table per batch, no per-row statements. Wallet rows are upserted in key
// order, so concurrent sinks take their row locks in one order and cannot deadlock on them.
//
// A row whose day has no partition yet fails the INSERT (23514); the writer then creates the
// batch's days (rill_ensure_partitions) and tries the batch once more.
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import type { RillEnv } from '../../core/config.ts';
import { copyRows } from './copy-text.ts';
import type { CopyValue } from './copy-text.ts';
import { LEDGER_COLUMNS, TRANSACTION_COLUMNS, toCopyRow, toLedgerCopyRows, utcDay } from './rows.ts';
import type { SinkRow } from './rows.ts';

const COLS = TRANSACTION_COLUMNS.join(', ');
const LEDGER_COLS = LEDGER_COLUMNS.join(', ');

const INSERT_TRANSACTIONS = `INSERT INTO transactions (${COLS})
  SELECT DISTINCT ON (id) ${COLS} FROM rill_staging ORDER BY id
  ON CONFLICT DO NOTHING`;

// $1: the batch's processed_at. Only lines this statement inserted reach `wallets`.
const POST_LEDGER = `WITH ins AS (
    INSERT INTO ledger_entries (tx_id, account, merchant_id, currency, amount, created_at)
    SELECT DISTINCT ON (tx_id, account) tx_id, account, merchant_id, currency, amount, $1::timestamptz
    FROM rill_ledger_staging ORDER BY tx_id, account
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
    const processedAt = new Date().toISOString();
    const txText = copyRows(rows.map((r) => toCopyRow(r, processedAt)));
    const ledger: CopyValue[][] = [];
    for (const r of rows) for (const line of toLedgerCopyRows(r)) ledger.push(line);
    const ledgerText = ledger.length ? copyRows(ledger) : '';
    try {
      try {
        return { ...(await this.attempt(client, txText, ledgerText, processedAt)), partitionsCreated: 0 };
      } catch (err) {
        if ((err as { code?: string }).code !== '23514') throw err;
        // no partition for some row's day (or a CHECK failed, which the second attempt reports again)
        await client.query('ROLLBACK');
        const partitionsCreated = await this.ensureDays(client, rows);
        return { ...(await this.attempt(client, txText, ledgerText, processedAt)), partitionsCreated };
      }
    } catch (err) {
      // a broken connection cannot be reused; the next write reconnects
      await this.reset();
      throw err;
    }
  }

  private async attempt(client: pg.Client, txText: string, ledgerText: string, processedAt: string): Promise<Omit<WriteResult, 'partitionsCreated'>> {
    await client.query('BEGIN');
    await copyIn(client, `COPY rill_staging (${COLS}) FROM STDIN`, txText);
    const inserted = await client.query(INSERT_TRANSACTIONS);
    let ledgerEntries = 0;
    let wallets = 0;
    if (ledgerText) {
      await copyIn(client, `COPY rill_ledger_staging (${LEDGER_COLS}) FROM STDIN`, ledgerText);
      const posted = await client.query<{ entries: number; wallets: number }>(POST_LEDGER, [processedAt]);
      ledgerEntries = posted.rows[0]!.entries;
      wallets = posted.rows[0]!.wallets;
    }
    await client.query('COMMIT');
    return { transactions: inserted.rowCount ?? 0, ledgerEntries, wallets };
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
      options: `-c search_path=${this.env.pgSchema},public`,
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

/** One COPY ... FROM STDIN of a whole batch, written as one chunk. */
async function copyIn(client: pg.Client, sql: string, text: string): Promise<void> {
  await pipeline(Readable.from([text]), client.query(copyStreams.from(sql)));
}
