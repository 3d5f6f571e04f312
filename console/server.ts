// The console's HTTP server: the app on node:http (its own port), closed with its connections
// (live views and tails are long-lived SSE responses: close() ends them).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { createConsoleApp } from './app.tsx';
import type { ConsoleDeps } from './app.tsx';

export interface ConsoleServer {
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startConsole(deps: ConsoleDeps, port: number, host = '127.0.0.1'): Promise<ConsoleServer> {
  const app = createConsoleApp(deps);
  const server = createServer({ headersTimeout: 10_000, requestTimeout: 0 /* SSE */ }, getRequestListener(app.fetch));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  deps.logger.info({ port: bound }, 'console listening');
  return {
    port: bound,
    url: `http://${shown.includes(':') ? `[${shown}]` : shown}:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
