// What every long-running command needs: the environment, the topology, a logger, a metrics
// registry, and a clean way to wait for SIGTERM/SIGINT.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { readEnv } from '../core/config.ts';
import type { RillEnv } from '../core/config.ts';
import { createLogger } from '../core/logger.ts';
import type { Logger } from '../core/logger.ts';
import { loadTopology } from '../core/topology/load.ts';
import type { Topology } from '../core/topology/schema.ts';
import type { Registry } from '../core/metrics.ts';
import { createPool } from '../core/postgres.ts';
import { migrate } from '../sinks/postgres/migrate.ts';

export interface CommandContext {
  env: RillEnv;
  topology: Topology;
  logger: Logger;
}

export function commandContext(component: string, topologyPath?: string): CommandContext {
  const env = readEnv();
  if (topologyPath) env.topologyPath = topologyPath;
  return { env, topology: loadTopology(env.topologyPath), logger: createLogger(env.logLevel, { component }) };
}

/**
 * Applies the Postgres migrations to RILL_PG_SCHEMA on a connection of its own (safe to run
 * concurrently); resolves to the names of those applied now.
 */
export async function migrateSchema(env: RillEnv, name = 'rill-migrate'): Promise<string[]> {
  const pool = createPool(env, { max: 1, name });
  try {
    return await migrate(pool, env.pgSchema);
  } finally {
    await pool.end();
  }
}

/** Resolves on the first SIGTERM or SIGINT; a second one exits at once. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      process.once('SIGTERM', () => process.exit(1));
      process.once('SIGINT', () => process.exit(1));
      resolve(sig);
    };
    process.once('SIGTERM', on);
    process.once('SIGINT', on);
  });
}

/** Runs `stop` but gives up after `ms`, so a stuck dependency cannot hold shutdown forever. */
export async function stopWithin(ms: number, stop: () => Promise<void>, logger: Logger): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const ok = await Promise.race([stop().then(() => true as const), timeout]);
  clearTimeout(timer);
  if (!ok) logger.warn({ ms }, 'shutdown did not finish in time; in-flight entries stay pending');
  return ok;
}

/**
 * Serves /metrics, /healthz (alive) and /readyz (while `ready()` says so: every stage and sink
 * started, not stopping) for a worker on METRICS_PORT.
 */
export async function serveMetrics(registry: Registry, port: number, logger: Logger, ready: () => boolean = () => true): Promise<Server | undefined> {
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => res.writeHead(503).end(),
      );
    } else if (req.url === '/healthz') res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    else if (req.url === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ready' : 'not ready' }));
    } else res.writeHead(404).end();
  });
  return new Promise((resolve) => {
    server.once('error', (err) => {
      logger.warn({ err, port }, 'metrics port unavailable; serving no metrics');
      resolve(undefined);
    });
    server.listen(port, '0.0.0.0', () => resolve(server));
  });
}
