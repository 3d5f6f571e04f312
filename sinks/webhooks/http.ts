// One signed POST to one endpoint, through a bounded undici pool per endpoint whose connector
// checks the address it connects to (url-guard.ts). Connect and total timeouts; 3xx is a failure
// (redirects are not followed); errors name the reason, never a URL or a secret.
import { Pool } from 'undici';
import { RefusedAddressError } from '../../core/errors.ts';
import { guardedConnector } from './guarded-connector.ts';
import type { GuardPolicy } from '../../core/webhooks/url-guard.ts';

export interface SendOptions {
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  maxConnections: number;
  policy: GuardPolicy;
}

export interface AttemptResult {
  ok: boolean;
  status?: number;
  latencyMs: number;
  error?: string;
}

export class EndpointClients {
  private readonly pools = new Map<string, { origin: string; pool: Pool }>();
  constructor(private readonly o: SendOptions) {}

  private pool(endpointId: string, url: URL): Pool {
    const have = this.pools.get(endpointId);
    if (have && have.origin === url.origin) return have.pool;
    if (have) void have.pool.close().catch(() => undefined);
    const pool = new Pool(url.origin, {
      connections: this.o.maxConnections,
      connect: guardedConnector(this.o.policy, this.o.connectTimeoutMs),
      headersTimeout: this.o.requestTimeoutMs,
      bodyTimeout: this.o.requestTimeoutMs,
    });
    this.pools.set(endpointId, { origin: url.origin, pool });
    return pool;
  }

  async post(endpointId: string, rawUrl: string, headers: Record<string, string>, body: string): Promise<AttemptResult> {
    const started = performance.now();
    const latency = () => Math.round(performance.now() - started);
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      return { ok: false, latencyMs: 0, error: 'invalid URL' };
    }
    try {
      const res = await this.pool(endpointId, url).request({
        path: url.pathname + url.search,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'rill-webhooks/1', ...headers },
        body,
        signal: AbortSignal.timeout(this.o.requestTimeoutMs),
      });
      // read (and cap) the answer so the connection goes back to the pool
      await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      return {
        ok,
        status: res.statusCode,
        latencyMs: latency(),
        ...(ok
          ? {}
          : { error: res.statusCode >= 300 && res.statusCode < 400 ? `HTTP ${res.statusCode} (redirects are not followed)` : `HTTP ${res.statusCode}` }),
      };
    } catch (err) {
      return { ok: false, latencyMs: latency(), error: reason(err) };
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.pools.values()].map((p) => p.pool.destroy()));
    this.pools.clear();
  }
}

function reason(err: unknown): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.code === 'UND_ERR_HEADERS_TIMEOUT' || e?.code === 'UND_ERR_BODY_TIMEOUT') return 'timeout';
  if (e?.code === 'UND_ERR_CONNECT_TIMEOUT') return 'connect timeout';
  // or by its code, should the connector hand it on as another object
  if (err instanceof RefusedAddressError || e?.code === 'ERR_WEBHOOK_REFUSED_ADDRESS') return e.message ?? 'refused address';
  const code = e?.code ?? e?.cause?.code;
  return `network error${code ? `: ${code}` : e?.message ? `: ${e.message.slice(0, 200)}` : ''}`;
}
