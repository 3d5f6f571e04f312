// The Postgres delivery log: one row per attempt (webhook_attempts), written in small batches
// off the delivery path. A failed write is logged and dropped: the log is for people, the queue
// in Redis is what delivers.
import type { Logger } from '../../core/logger.ts';
import type { PgPool } from '../../core/postgres.ts';

export interface AttemptRow {
  endpoint_id: string;
  event_id: string;
  merchant_id: string;
  event_type: string;
  attempt: number;
  outcome: 'delivered' | 'retrying' | 'failed';
  status_code: number | null;
  latency_ms: number;
  error: string | null;
  next_retry_at: number | null;
  attempted_at: number;
}

const INSERT = `INSERT INTO webhook_attempts (endpoint_id, event_id, merchant_id, event_type, attempt, outcome, status_code, latency_ms, error, next_retry_at, attempted_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::int[], $8::int[], $9::text[], $10::timestamptz[], $11::timestamptz[])`;

export class AttemptLog {
  private rows: AttemptRow[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly pool: PgPool,
    private readonly logger: Logger,
    private readonly maxWaitMs = 100,
    private readonly maxRows = 500,
  ) {}

  add(row: AttemptRow): void {
    this.rows.push(row);
    if (this.rows.length >= this.maxRows) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.maxWaitMs);
  }

  /** Writes what is buffered; resolves when every earlier write is done. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const rows = this.rows;
    this.rows = [];
    if (rows.length) {
      const col = <K extends keyof AttemptRow>(k: K) => rows.map((r) => r[k]);
      const ts = (v: number | null) => (v === null ? null : new Date(v).toISOString());
      this.flushing = this.flushing.then(() =>
        this.pool
          .query(INSERT, [
            col('endpoint_id'),
            col('event_id'),
            col('merchant_id'),
            col('event_type'),
            col('attempt'),
            col('outcome'),
            col('status_code'),
            col('latency_ms'),
            col('error'),
            rows.map((r) => ts(r.next_retry_at)),
            rows.map((r) => ts(r.attempted_at)),
          ])
          .then(
            () => undefined,
            (err: Error) => this.logger.warn({ err: err.message, rows: rows.length }, 'webhook attempt log write failed'),
          ),
      );
    }
    return this.flushing;
  }
}
