// Upkeep of the Postgres sink's tables, run by one leader at a time (a redis-semaphore mutex,
// tried once per pass; the others skip the pass). The lock saves redundant work; correctness does
// not depend on it (partition creation is serialized in Postgres, the refresh claimed in Redis):
//   - daily partitions of `transactions` exist from yesterday through today + partitions_ahead;
//   - with `retention`, daily partitions entirely older than it are DETACHed (not dropped: the
//     table stays, for archiving, and leaves `transactions` and, at the next refresh, the view);
//   - `merchant_daily_volume` is refreshed CONCURRENTLY once `refresh_interval` has passed since
//     the last refresh. The last refresh time lives in Redis and is claimed atomically (Redis
//     server time, one Lua script), so the interval holds across leaders and even two passes
//     that overlap (a leader whose lock expired mid-pass) refresh once.
// Every step is idempotent on its own, so a pass that fails half-way is just repeated next time.
// The timer is unref'd; a failed step is logged and counted, never thrown out of the timer.
import { Mutex } from 'redis-semaphore';
import { ident } from '../../core/postgres.ts';
import type { PgClient, PgPool } from '../../core/postgres.ts';
import type { Keys } from '../../core/keys.ts';
import type { Logger } from '../../core/logger.ts';
import type { Registry } from '../../core/metrics.ts';
import { counter } from '../../core/metrics.ts';
import type { RedisClient } from '../../core/redis.ts';
import type { MaintenanceConfig } from '../../core/topology/schema.ts';

export const MATERIALIZED_VIEW = 'merchant_daily_volume';

/** DDL on `transactions` waits at most this long for its lock, so inserts never queue behind it for long. */
const DDL_LOCK_TIMEOUT = '5s';

export interface MaintenanceOptions {
  pool: PgPool;
  /** A connection of its own is best (the mutex and the refresh claim use it). */
  redis: RedisClient;
  keys: Keys;
  config: MaintenanceConfig;
  logger: Logger;
  registry: Registry;
  /** Run passes on a timer (first one at once, then every `config.interval`). Default true; false: runOnce() only. */
  schedule?: boolean;
}

export interface MaintenanceReport {
  /** Did this instance hold the leader lock for the pass? Non-leaders do nothing else. */
  leader: boolean;
  /** Daily partitions created by this pass. */
  partitionsCreated: number;
  /** Partitions detached by this pass (table names). */
  detached: string[];
  /** Did this pass refresh merchant_daily_volume? */
  refreshed: boolean;
  /** Steps that failed (also logged); the others still ran. */
  errors: { step: MaintenanceStep; message: string }[];
}

export type MaintenanceStep = 'leader' | 'partitions' | 'retention' | 'refresh';

export interface Maintenance {
  stop(): Promise<void>;
  runOnce(): Promise<MaintenanceReport>;
}

// KEYS[1]: last refresh time (ms). ARGV[1]: refresh interval (ms). Claims the refresh when the
// interval has passed: stores now (Redis server time) and answers {1, previous}; else {0, last}.
const CLAIM_REFRESH = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if last > 0 and now - last < tonumber(ARGV[1]) then return {0, tostring(last)} end
redis.call('SET', KEYS[1], tostring(now))
return {1, tostring(last), tostring(now)}`;

// KEYS[1]: last refresh time. ARGV[1]: our claim, ARGV[2]: the value before it ('0': none).
// A failed refresh gives its claim back, so the next pass tries again instead of waiting an interval.
const UNCLAIM_REFRESH = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
  return 1
end
return 0`;

export function startMaintenance(o: MaintenanceOptions): Maintenance {
  const { config, logger, keys } = o;
  const created = counter(o.registry, 'rill_partitions_created_total', 'Daily transaction partitions created', ['by']);
  const detachedTotal = counter(o.registry, 'rill_partitions_detached_total', 'Daily transaction partitions detached by retention', []);
  const refreshes = counter(o.registry, 'rill_mv_refreshes_total', 'Materialized view refreshes', ['view']);
  const failures = counter(o.registry, 'rill_maintenance_failures_total', 'Failed maintenance steps', ['step']);
  const leaderKey = keys.global('leader', 'pg-maintenance');
  const refreshedKey = keys.global('mv-refreshed', MATERIALIZED_VIEW);
  // Held for one pass and released after it. No refresh timer (a Redis error inside the library's
  // timer would be an unhandled rejection): the TTL outlives any normal pass, and a pass that runs
  // longer (a huge refresh) is still safe, since no step relies on the lock for correctness.
  const lockTimeout = Math.max(60_000, 2 * config.interval);

  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<MaintenanceReport> | undefined;

  const fail = (report: MaintenanceReport, step: MaintenanceStep, err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    report.errors.push({ step, message });
    failures.inc({ step });
    logger.warn({ err, step }, 'postgres maintenance step failed; retried next pass');
  };

  async function pass(): Promise<MaintenanceReport> {
    const report: MaintenanceReport = { leader: false, partitionsCreated: 0, detached: [], refreshed: false, errors: [] };
    const mutex = new Mutex(o.redis, leaderKey, {
      lockTimeout,
      refreshInterval: 0,
      acquireAttemptsLimit: 1,
    });
    try {
      report.leader = await mutex.tryAcquire();
    } catch (err) {
      fail(report, 'leader', err);
      return report;
    }
    if (!report.leader) return report;
    try {
      let client: PgClient;
      try {
        client = await o.pool.connect();
      } catch (err) {
        fail(report, 'partitions', err);
        return report;
      }
      try {
        try {
          report.partitionsCreated = await ensurePartitions(client, config);
          if (report.partitionsCreated) {
            created.inc({ by: 'maintenance' }, report.partitionsCreated);
            logger.info({ partitions: report.partitionsCreated, ahead: config.partitions_ahead }, 'created daily partitions');
          }
        } catch (err) {
          fail(report, 'partitions', err);
        }
        if (config.retention !== undefined) {
          try {
            await detachExpired(client, config.retention, (name) => {
              report.detached.push(name);
              detachedTotal.inc();
              logger.info({ partition: name, retention: config.retention }, 'detached an expired daily partition');
            });
          } catch (err) {
            fail(report, 'retention', err);
          }
        }
        try {
          report.refreshed = await refreshIfDue(client);
        } catch (err) {
          fail(report, 'refresh', err);
        }
      } finally {
        client.release();
      }
    } finally {
      await mutex.release().catch((err: unknown) => logger.warn({ err }, 'postgres maintenance could not release its leader lock (it expires)'));
    }
    return report;
  }

  async function refreshIfDue(client: PgClient): Promise<boolean> {
    const claim = (await o.redis.eval(CLAIM_REFRESH, 1, refreshedKey, String(config.refresh_interval))) as string[] | number[];
    if (Number(claim[0]) !== 1) return false;
    const [, previous, mine] = claim.map(String);
    const started = performance.now();
    try {
      await client.query(`REFRESH MATERIALIZED VIEW CONCURRENTLY ${MATERIALIZED_VIEW}`);
    } catch (err) {
      await o.redis.eval(UNCLAIM_REFRESH, 1, refreshedKey, mine!, previous!).catch(() => undefined);
      throw err;
    }
    refreshes.inc({ view: MATERIALIZED_VIEW });
    logger.info({ view: MATERIALIZED_VIEW, ms: Math.round(performance.now() - started) }, 'refreshed materialized view');
    return true;
  }

  function schedule(delay: number): void {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = undefined;
      void runOnce()
        .catch((err: unknown) => logger.error({ err }, 'postgres maintenance pass failed'))
        .finally(() => schedule(config.interval));
    }, delay);
    timer.unref();
  }

  /** One pass now (after the one in flight, if any). */
  function runOnce(): Promise<MaintenanceReport> {
    const prev = running ?? Promise.resolve(undefined);
    const next = prev.catch(() => undefined).then(() => pass());
    running = next;
    void next
      .finally(() => {
        if (running === next) running = undefined;
      })
      .catch(() => undefined);
    return next;
  }

  if (o.schedule ?? true) schedule(0);

  return {
    runOnce,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await running?.catch(() => undefined);
    },
  };
}

/**
 * Partitions from yesterday (or the first day retention keeps, if later) through today +
 * partitions_ahead, in UTC days by the database's clock. Returns how many it created.
 */
export async function ensurePartitions(client: PgClient, config: Pick<MaintenanceConfig, 'partitions_ahead' | 'retention'>): Promise<number> {
  await client.query('BEGIN');
  try {
    await client.query(`SET LOCAL lock_timeout = '${DDL_LOCK_TIMEOUT}'`);
    const { rows } = await client.query<{ created: number }>(
      `SELECT rill_ensure_partitions(
         greatest(today - 1, CASE WHEN $2::bigint IS NULL THEN today - 1
                                  ELSE ((now() - $2::bigint * interval '1 millisecond') AT TIME ZONE 'UTC')::date END),
         today + $1::int) AS created
       FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS today) t`,
      [config.partitions_ahead, config.retention ?? null],
    );
    await client.query('COMMIT');
    return rows[0]!.created;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Detach every daily partition (named transactions_pYYYYMMDD, attached to `transactions`) whose
 * whole day lies before now − retention. Each in its own short transaction.
 */
export async function detachExpired(client: PgClient, retentionMs: number, onDetached: (name: string) => void = () => undefined): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'transactions'::regclass
       AND c.relname ~ '^transactions_p[0-9]{8}$'
       AND ((to_date(substr(c.relname, 15), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC') <= now() - $1::bigint * interval '1 millisecond'
     ORDER BY c.relname`,
    [retentionMs],
  );
  const done: string[] = [];
  for (const { name } of rows) {
    await client.query('BEGIN');
    try {
      await client.query(`SET LOCAL lock_timeout = '${DDL_LOCK_TIMEOUT}'`);
      // attached still? (another pass may have detached it since the list was read)
      const still = await client.query(`SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = 'transactions'::regclass`, [name]);
      if (still.rowCount) await client.query(`ALTER TABLE transactions DETACH PARTITION ${ident(name)}`);
      await client.query('COMMIT');
      if (still.rowCount) {
        done.push(name);
        onDetached(name);
      }
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }
  return done;
}
