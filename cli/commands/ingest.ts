// `rill ingest`: the HTTP edge on PORT until SIGTERM/SIGINT, then drain in-flight requests.
import { parseServeOptions } from '../serve-options.ts';
import { initTracing, shutdownTracing } from '../../core/tracing.ts';
import { commandContext, migrateSchema, stopWithin, untilSignal } from '../context.ts';
import { createRegistry } from '../../core/metrics.ts';
import { runIngest } from '../run-ingest.ts';

const HELP = `usage: rill ingest [--port N] [--host H] [--topology FILE]

Serves POST /v1/transactions, /healthz, /readyz and /metrics on PORT (default 8080).
SIGTERM/SIGINT: /readyz fails at once, requests are still served for RILL_SHUTDOWN_DELAY_MS
(default 5000: the time a load balancer takes to stop sending), then in-flight ones drain; exit 0.`;

export async function ingestCommand(argv: string[]): Promise<number> {
  const values = parseServeOptions(argv, HELP);
  if (!values) return 0;
  const ctx = commandContext('ingest', values.topology);
  await initTracing('rill-ingest');
  if (values.port !== undefined) ctx.env.port = Number(values.port);
  await migrateSchema(ctx.env);
  const ingest = await runIngest({ ...ctx, registry: createRegistry(), host: values.host });
  ctx.logger.info({ port: ingest.port }, 'ingest listening');
  const signal = await untilSignal();
  // Kubernetes removes a stopping pod from the Service's endpoints while it sends SIGTERM, and
  // the change takes a few seconds to reach every load balancer: fail readiness, keep serving
  ingest.unready();
  ctx.logger.info({ signal, delayMs: ctx.env.shutdownDelayMs }, 'stopping: unready, serving until the delay has passed');
  if (ctx.env.shutdownDelayMs > 0) await new Promise((r) => setTimeout(r, ctx.env.shutdownDelayMs));
  const clean = await stopWithin(15_000, () => ingest.stop(), ctx.logger);
  await shutdownTracing(); // flush the last spans
  return clean ? 0 : 1;
}
