// `rill worker [--stages a,b] [--consumer ID]` and `rill sink [--sinks a,b]`: run stages and sinks
// until SIGTERM/SIGINT, then stop reading, settle in-flight work and exit 0.
import { parseArgs } from 'node:util';
import { initTracing, shutdownTracing } from '../../core/tracing.ts';
import { commandContext, migrateSchema, serveMetrics, stopWithin, untilSignal } from '../context.ts';
import { createRegistry } from '../../core/metrics.ts';
import { startWorker } from '../start-worker.ts';

const HELP = `usage: rill worker [--stages a,b] [--consumer ID] [--topology FILE]
       rill sink [--sinks a,b] [--consumer ID] [--topology FILE]

Runs the topology's stages and sinks (worker: all of them unless --stages names some; sink: only
sinks). --consumer gives the process a stable consumer id, so after a restart it resumes its own
pending entries first (RILL_CONSUMER sets it too). Metrics on METRICS_PORT (/metrics, /healthz,
/readyz). SIGTERM/SIGINT: finish in-flight batches, hand the partitions over to the other
workers at once, exit 0. Chained stages (see rill topology check) run as one task in a worker
that runs all of them; --stages naming part of a chain runs that part apart (its output topic is
written): give every worker the same --stages.`;

export async function workerCommand(argv: string[], sinksOnly = false): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      stages: { type: 'string' },
      sinks: { type: 'string' },
      consumer: { type: 'string' },
      topology: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const ctx = commandContext(sinksOnly ? 'sink' : 'worker', values.topology);
  await initTracing(sinksOnly ? 'rill-sink' : 'rill-worker');
  const list = (s: string | undefined) =>
    s
      ? s
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)
      : [];
  const only = sinksOnly ? (list(values.sinks).length ? list(values.sinks) : Object.keys(ctx.topology.sinks)) : list(values.stages);
  await migrateSchema(ctx.env);
  const registry = createRegistry();
  let ready = false;
  const metrics = await serveMetrics(registry, ctx.env.metricsPort, ctx.logger, () => ready);
  const worker = await startWorker({
    ...ctx,
    only,
    consumerId: values.consumer ?? process.env.RILL_CONSUMER,
    registry,
  });
  ready = true;
  ctx.logger.info({ components: worker.components, metricsPort: metrics?.address() }, 'worker started');
  const signal = await untilSignal();
  ready = false;
  ctx.logger.info({ signal }, 'stopping');
  const clean = await stopWithin(15_000, () => worker.stop(), ctx.logger);
  metrics?.close();
  await shutdownTracing(); // flush the last spans
  return clean ? 0 : 1;
}
