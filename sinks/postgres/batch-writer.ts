// Writes a batch of rows in one Postgres transaction: COPY into a temp staging table, then
// INSERT ... SELECT ... ON CONFLICT DO NOTHING into the target. A redelivered batch (crash after
// COMMIT, before XACK) inserts nothing twice.
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import type { RillEnv } from '../../core/config.ts';
import { copyRows } from './copy-text.ts';
import { TRANSACTION_COLUMNS, toCopyRow } from './rows.ts';
import type { SinkRow } from './rows.ts';

const COLS = TRANSACTION_COLUMNS.join(', ');

export class BatchWriter {
  private client: pg.Client | undefined;

  constructor(private readonly env: Pick<RillEnv, 'databaseUrl' | 'pgSchema'>, private readonly name = 'rill-sink') {}

  /** Inserts the rows not already there; returns how many were new. */
  async write(rows: readonly SinkRow[]): Promise<number> {
    const client = await this.connect();
    const processedAt = new Date().toISOString();
    try {
      await client.query('BEGIN');
      await pipeline(
        Readable.from([copyRows(rows.map((r) => toCopyRow(r, processedAt)))]),
        client.query(copyStreams.from(`COPY rill_staging (${COLS}) FROM STDIN`)),
      );
      const res = await client.query(
        `INSERT INTO transactions (${COLS}) SELECT DISTINCT ON (id) ${COLS} FROM rill_staging ORDER BY id ON CONFLICT DO NOTHING`,
      );
      await client.query('COMMIT');
      return res.rowCount ?? 0;
    } catch (err) {
      // a broken connection cannot be reused; the next write reconnects
      await this.reset();
      throw err;
    }
  }

  private async connect(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = new pg.Client({
      connectionString: this.env.databaseUrl,
      application_name: this.name,
      options: `-c search_path=${this.env.pgSchema},public`,
      connectionTimeoutMillis: 10_000,
    });
    client.on('error', () => void this.reset());
    await client.connect();
    await client.query('CREATE TEMP TABLE IF NOT EXISTS rill_staging (LIKE transactions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS');
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
