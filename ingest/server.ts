// The ingest HTTP server: @hono/node-server on node:http, with timeouts suited to an API behind a
// load balancer, a load shedder sampling in the background, and a close() that stops it and
// drains in-flight requests before returning.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { Keys } from '../core/keys.ts';
import { createIngestApp, DEFAULT_LIMITS } from './app.ts';
import type { IngestDeps } from './app.ts';
import { loadSampler, pipelineKeys } from './backpressure/measure.ts';
import { LoadShedder } from './backpressure/shedder.ts';
import { answerClientErrors } from './client-errors.ts';
import { badRequest, problemResponse } from '../core/http/problem.ts';

export interface IngestServer {
  /** The bound port (the real one when started on port 0). */
  port: number;
  /** Fail /readyz from now on, still serving every request (the first step of a stop). */
  unready(): void;
  /** Stop accepting, let in-flight requests finish (at most `drainTimeoutMs`), then resolve. */
  close(): Promise<void>;
}

export interface StartOptions {
  host?: string;
  drainTimeoutMs?: number;
}

export async function startIngest(deps: IngestDeps, port: number, opts: StartOptions = {}): Promise<IngestServer> {
  const shedder = deps.load ? undefined : loadShedder(deps);
  let stopping = false;
  const app = createIngestApp({ ...deps, ...(shedder ? { load: shedder } : {}), stopping: () => stopping });
  // node-server's listener on a plain node:http server (serve() does not pass errorHandler on)
  const listener = getRequestListener(app.fetch, {
    hostname: opts.host,
    // a request node-server cannot turn into a Request (bad URL or Host): problem+json as well
    errorHandler: () => problemResponse(badRequest('The request URL or Host header is invalid.').problem, { connection: 'close' }),
  });
  const server: Server = createServer({ headersTimeout: 10_000 /* slowloris guard */, requestTimeout: 30_000 }, listener);
  server.keepAliveTimeout = 65_000; // longer than common LB idle timeouts (60 s): the LB closes first
  server.listen(port, opts.host);

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.once('listening', () => {
      server.off('error', onError);
      resolve();
    });
  });
  answerClientErrors(server);
  const bound = (server.address() as AddressInfo).port;
  deps.logger.info({ component: 'ingest', port: bound }, 'ingest listening');
  shedder?.start();

  let closing: Promise<void> | undefined;
  return {
    port: bound,
    unready() {
      stopping = true;
    },
    close() {
      stopping = true;
      closing ??= Promise.all([shedder?.stop(), drain(server, opts.drainTimeoutMs ?? 10_000)]).then(() => undefined);
      return closing;
    },
  };
}

function loadShedder(deps: IngestDeps): LoadShedder {
  const bp = deps.topology.ingest.backpressure;
  return new LoadShedder({
    // the ingest connection: a sample is two O(groups) commands per lane stream, in one round trip
    measure: loadSampler(deps.redis, pipelineKeys(deps.topology, new Keys(deps.env.prefix)), bp.max_memory_bytes),
    config: bp,
    registry: deps.registry,
    logger: deps.logger,
    timeoutMs: deps.limits?.dependencyTimeoutMs ?? DEFAULT_LIMITS.dependencyTimeoutMs,
  });
}

function drain(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    // keep-alive sockets turn idle as their last response ends: close them as they do
    const idle = setInterval(() => server.closeIdleConnections(), 50);
    const force = setTimeout(() => server.closeAllConnections(), timeoutMs);
    server.close((err) => {
      clearInterval(idle);
      clearTimeout(force);
      if (err) reject(err);
      else resolve();
    });
    server.closeIdleConnections();
  });
}
