// A merchant's webhook receiver for tests: every request verified with the reference library
// (standardwebhooks) against the secrets registered for its path, recorded in arrival order.
// Answers are scripted per path (status, hang, redirect); a hanging request stays open until
// `release()` or close.
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server, ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Answer {
  status: number;
  headers?: Record<string, string>;
  hang?: boolean;
}

export interface Delivery {
  path: string;
  id: string;
  headers: IncomingHttpHeaders;
  body: string;
  event: { id: string; type: string; created_at: string; data: Record<string, unknown> };
  /** Verified against every secret registered for the path: which ones accepted it. */
  verifiedBy: string[];
  status: number;
}

export class WebhookReceiver {
  readonly received: Delivery[] = [];
  private readonly secrets = new Map<string, string[]>();
  private readonly scripts = new Map<string, Answer[]>();
  private readonly always = new Map<string, Answer>();
  private readonly hanging: ServerResponse[] = [];
  private server!: Server;
  base = '';

  async start(port = 0): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '/';
        const body = Buffer.concat(chunks).toString('utf8');
        const answer = this.scripts.get(path)?.shift() ?? this.always.get(path) ?? { status: 200 };
        const headers: Record<string, string> = {};
        for (const h of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) headers[h] = String(req.headers[h] ?? '');
        const verifiedBy = (this.secrets.get(path) ?? []).filter((s) => {
          try {
            new Webhook(s).verify(body, headers);
            return true;
          } catch {
            return false;
          }
        });
        let event = { id: '', type: '', created_at: '', data: {} };
        try {
          event = JSON.parse(body) as Delivery['event'];
        } catch {
          // recorded as empty
        }
        this.received.push({ path, id: headers['webhook-id']!, headers: req.headers, body, event, verifiedBy, status: answer.hang ? 0 : answer.status });
        if (answer.hang) {
          this.hanging.push(res);
          return;
        }
        res.writeHead(answer.status, answer.headers);
        res.end('ok');
      });
    });
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The secrets a path's deliveries are verified against (a rotation adds one). */
  expect(path: string, ...secrets: string[]): void {
    this.secrets.set(path, secrets);
  }

  script(path: string, answers: Answer[], always?: Answer): void {
    this.scripts.set(path, [...answers]);
    if (always) this.always.set(path, always);
    else this.always.delete(path);
  }

  on(path: string): Delivery[] {
    return this.received.filter((r) => r.path === path);
  }

  ok(path: string): Delivery[] {
    return this.on(path).filter((r) => r.status >= 200 && r.status < 300);
  }

  /** Answer every hanging request (200). */
  release(): void {
    for (const res of this.hanging.splice(0)) {
      res.writeHead(200);
      res.end('late');
    }
  }

  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close').catch(() => undefined);
  }
}
