// A small load balancer in front of several `rill ingest` processes, the way a Kubernetes Service
// sees its endpoints: it polls each backend's /readyz every POLL_MS and sends requests round-robin
// to the ready ones only (a backend leaves the rotation on a 503, or on FAILURES polls in a row
// without an answer, like a readiness probe's failureThreshold). A request whose connection fails (a backend that closed it while
// stopping) is sent once more to another ready backend: every bench request carries an
// Idempotency-Key, so a retry never appends twice.
import { createServer, request, Agent } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const POLL_MS = 100;
const FAILURES = 3;

interface Backend {
  url: URL;
  ready: boolean;
  failures: number;
}

export class Balancer {
  private readonly backends: Backend[] = [];
  private next = 0;
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 512 });
  /** Requests sent a second time after a connection error. */
  retried = 0;
  /** Requests answered 503 here because no backend was ready. */
  unrouted = 0;

  /** Add a backend (it gets traffic once its /readyz answers 200). */
  add(url: string): void {
    this.backends.push({ url: new URL(url), ready: false, failures: 0 });
  }

  remove(url: string): void {
    const i = this.backends.findIndex((b) => b.url.origin === new URL(url).origin);
    if (i >= 0) this.backends.splice(i, 1);
  }

  /** Resolves once `url` is in rotation. */
  async untilReady(url: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.backends.some((b) => b.url.origin === new URL(url).origin && b.ready)) return;
      if (Date.now() > deadline) throw new Error(`${url} did not become ready in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, POLL_MS / 2));
    }
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const poll = async () => {
      await Promise.all(
        this.backends.map(async (b) => {
          try {
            const r = await fetch(new URL('/readyz', b.url), { signal: AbortSignal.timeout(1_000) });
            await r.arrayBuffer();
            b.ready = r.status === 200;
            b.failures = 0;
          } catch {
            if (++b.failures >= FAILURES) b.ready = false;
          }
        }),
      );
      this.timer = setTimeout(() => void poll(), POLL_MS);
    };
    await poll();
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r) ?? r(undefined));
    this.agent.destroy();
  }

  private pick(except?: Backend): Backend | undefined {
    const ready = this.backends.filter((b) => b.ready && b !== except);
    if (!ready.length) return undefined;
    return ready[this.next++ % ready.length];
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    let backend = this.pick();
    for (let attempt = 0; attempt < 2 && backend; attempt++) {
      try {
        const upstream = await this.forward(backend, req, body);
        res.writeHead(upstream.statusCode ?? 502, upstream.headers);
        upstream.pipe(res);
        return;
      } catch {
        this.retried++;
        backend = this.pick(backend);
      }
    }
    this.unrouted++;
    res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '1' }).end('{"title":"no ready backend","status":503}');
  }

  private forward(b: Backend, req: IncomingMessage, body: Buffer): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const headers = { ...req.headers, host: b.url.host, 'content-length': String(body.length) };
      const up = request({ host: b.url.hostname, port: b.url.port, method: req.method, path: req.url, headers, agent: this.agent }, resolve);
      up.on('error', reject);
      up.end(body);
    });
  }
}
