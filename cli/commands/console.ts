// `rill console [--port N] [--host H]`: the operators' web console (console/) on its own port.
// Open it, give an operator key (`rill keys create --scope operator`) once.
import { parseArgs } from 'node:util';
import type { RillEnv } from '../../core/config.ts';
import { ConfigError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { createPool } from '../../core/postgres.ts';
import { connectRedis } from '../../core/redis.ts';
import type { Topology } from '../../core/topology/schema.ts';
import { KeyStore } from '../../ingest/auth/index.ts';
import { startConsole } from '../../console/server.ts';
import { migrate } from '../../sinks/postgres/migrate.ts';
import { commandContext, stopWithin, untilSignal } from '../context.ts';

export const DEFAULT_CONSOLE_PORT = 8090;

const HELP = `usage: rill console [--port N] [--host H] [--topology FILE]

Serves the web console for operators (topology with live rates, partitions × lanes, workers,
dead letters with redrive and purge, transaction timelines, live tail, wallets, bench report).
Log in with an operator key: rill keys create --scope operator.

Options:
  --port N         port (default $CONSOLE_PORT, else ${DEFAULT_CONSOLE_PORT}; 0 picks a free one)
  --host H         address to listen on (default 127.0.0.1)
  --topology FILE  the topology (default $RILL_TOPOLOGY, else ./topology.yaml)
  -h, --help       show this help`;

export interface RunningConsole {
  url: string;
  stop(): Promise<void>;
}

/** The console with its own Redis connection and Postgres pool (also used by `rill dev`). */
export async function runConsole(o: { env: RillEnv; topology: Topology; logger: Logger; port: number; host?: string }): Promise<RunningConsole> {
  const redis = connectRedis(o.env, { name: 'rill:console' });
  const pool = createPool(o.env, { max: 4, name: 'rill-console' });
  try {
    const server = await startConsole({ env: o.env, topology: o.topology, redis, pool, keyStore: new KeyStore(pool), logger: o.logger }, o.port, o.host);
    return {
      url: server.url,
      async stop() {
        await server.close();
        await pool.end();
        redis.disconnect();
      },
    };
  } catch (err) {
    await pool.end();
    redis.disconnect();
    throw err;
  }
}

export function consolePort(v: string | undefined, env: NodeJS.ProcessEnv = process.env): number {
  const raw = v ?? env.CONSOLE_PORT;
  if (raw === undefined) return DEFAULT_CONSOLE_PORT;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > 65535) throw new ConfigError(`console port must be 0 to 65535, got "${raw}"`);
  return n;
}

export async function consoleCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { port: { type: 'string' }, host: { type: 'string' }, topology: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const port = consolePort(values.port);
  const ctx = commandContext('console', values.topology);
  const pool = createPool(ctx.env, { max: 1, name: 'rill-console-migrate' });
  try {
    await migrate(pool, ctx.env.pgSchema); // the operator scope needs its migration
  } finally {
    await pool.end();
  }
  const running = await runConsole({ ...ctx, port, host: values.host ?? '127.0.0.1' });
  console.log(`Rill console: ${running.url} (log in with an operator key: rill keys create --scope operator)`);
  await untilSignal();
  await stopWithin(10_000, running.stop, ctx.logger);
  return 0;
}
