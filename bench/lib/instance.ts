// A bench instance: Rill with its own RILL_PREFIX and RILL_PG_SCHEMA on the run's Redis and
// Postgres, set up and run through the `rill` CLI (migrate, keys create, ingest, worker, sink) as a
// user would, and removed again (processes stopped, keys deleted, schema dropped) by cleanup().
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { freePort } from '../../core/index.ts';
import type { CpuProfile } from './procs.ts';
import { type Child, runToEnd, spawnRill } from './procs.ts';
import type { Merchant } from './payload.ts';
import { merchantIds } from './payload.ts';
import { deletePrefix } from './redis-stats.ts';
import { dropSchema } from './pg-stats.ts';
import type { BenchTopology } from './topology.ts';

export interface InstanceContext {
  runId: string;
  redisUrl: string;
  databaseUrl: string;
  redis: Redis;
  pg: pg.Pool;
  /** When set, ingest and worker processes write a CPU profile here. */
  cpuProfDir?: string;
  keepLogs?: boolean;
}

export interface RunningIngest {
  child: Child;
  url: string;
  port: number;
}

export interface RunningWorker {
  child: Child;
  metricsUrl: string;
}

export class BenchInstance {
  readonly prefix: string;
  readonly schema: string;
  private readonly children: Child[] = [];
  /** Extra environment for this instance's rill processes (set before starting them). */
  readonly vars: Record<string, string> = {};

  constructor(
    readonly ctx: InstanceContext,
    readonly label: string,
    readonly topology: BenchTopology,
  ) {
    const id = `${ctx.runId}_${label}`.replace(/[^a-z0-9_]/gi, '_').toLowerCase();
    this.prefix = `rillbench:${id}`;
    this.schema = `rillbench_${id}`.slice(0, 63);
  }

  /** Environment of this instance's rill processes. */
  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      REDIS_URL: this.ctx.redisUrl,
      DATABASE_URL: this.ctx.databaseUrl,
      RILL_PREFIX: this.prefix,
      RILL_PG_SCHEMA: this.schema,
      RILL_TOPOLOGY: this.topology.path,
      LOG_LEVEL: 'info',
      OTEL_SDK_DISABLED: 'true',
      RILL_SHUTDOWN_DELAY_MS: '0',
      ...this.vars,
      ...extra,
    };
  }

  private profile(name: string): CpuProfile | undefined {
    return this.ctx.cpuProfDir ? { dir: this.ctx.cpuProfDir, name: `${this.label}-${name}` } : undefined;
  }

  async migrate(): Promise<void> {
    await runToEnd(spawnRill(`${this.label}:migrate`, ['migrate'], { env: this.env({ LOG_LEVEL: 'warn' }) }));
  }

  /**
   * One API key per merchant, through `rill keys create --merchant ID`. The first one alone (it
   * migrates the schema), then a few at a time.
   */
  async createMerchants(n: number): Promise<Merchant[]> {
    const ids = merchantIds(n);
    const out: Merchant[] = new Array(n);
    const create = async (i: number) => {
      const output = await runToEnd(spawnRill(`${this.label}:keys`, ['keys', 'create', '--merchant', ids[i]!], { env: this.env({ LOG_LEVEL: 'warn' }) }));
      const key = output
        .trim()
        .split('\n')
        .find((l) => l.startsWith('rk_'));
      if (!key) throw new Error(`rill keys create printed no key: ${output.slice(0, 200)}`);
      out[i] = { id: ids[i]!, key: key.trim() };
    };
    await create(0);
    let next = 1;
    const loop = async () => {
      while (next < ids.length) await create(next++);
    };
    await Promise.all(Array.from({ length: Math.min(4, n - 1) }, loop));
    return out;
  }

  /** `rill ingest --port P`; resolves once /healthz answers. */
  async startIngest(name = 'ingest', extraEnv: Record<string, string> = {}): Promise<RunningIngest> {
    const port = await freePort();
    const child = spawnRill(`${this.label}:${name}`, ['ingest', '--port', String(port), '--host', '127.0.0.1'], {
      env: this.env(extraEnv),
      cpuProf: this.profile(name),
    });
    this.children.push(child);
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (!child.running) throw new Error(`rill ingest exited: ${child.tail()}`);
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1_000) });
        if (res.ok) break;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error(`rill ingest did not answer /healthz in 30 s: ${child.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { child, url, port };
  }

  /** `rill worker [--stages a,b]` (or `rill sink`); resolves once it says "worker started". */
  async startWorker(opts: { stages?: string[]; sinkOnly?: boolean; name?: string } = {}): Promise<RunningWorker> {
    const name = opts.name ?? (opts.sinkOnly ? 'sink' : opts.stages?.length ? `worker-${opts.stages.join('+')}` : 'worker');
    const port = await freePort();
    const args = opts.sinkOnly ? ['sink'] : ['worker', ...(opts.stages?.length ? ['--stages', opts.stages.join(',')] : [])];
    const child = spawnRill(`${this.label}:${name}`, args, {
      env: this.env({ METRICS_PORT: String(port), RILL_CONSUMER: `bench-${name}` }),
      cpuProf: this.profile(name),
    });
    this.children.push(child);
    await child.waitForLine(/"msg":"worker started"/, 60_000);
    return { child, metricsUrl: `http://127.0.0.1:${port}/metrics` };
  }

  /** Stop one process (SIGTERM: it finishes in-flight work, and writes its CPU profile). */
  async stop(child: Child): Promise<void> {
    await child.stop();
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled(this.children.map((c) => c.stop()));
    await deletePrefix(this.ctx.redis, this.prefix).catch(() => undefined);
    await dropSchema(this.ctx.pg, this.schema).catch(() => undefined);
  }
}
