// Baseline: a bare node:http handler doing the same XADD as ingest: read the body, JSON.parse it,
// build the same stream entry (tx, ev) and XADD it to one of 8 partition streams, answer 202 with
// the id. No framework, no auth, no validation, no idempotency, no rate limit: what is left of
// ingest's work when everything Rill adds is taken away. Same client library and settings as
// ingest (ioredis, one connection, no auto-pipelining).
//
//   node --import tsx bench/baselines/bare-http-xadd.ts --prefix rillbench:x:bare [--port N]
// REDIS_URL picks the server. Prints {"port":N} once listening; SIGTERM stops it.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { entryFields, txIdLike } from '../lib/payload.ts';
import type { TransactionBody } from '../lib/payload.ts';

const { values } = parseArgs({ options: { prefix: { type: 'string' }, port: { type: 'string', default: '0' } } });
if (!values.prefix) {
  console.error('bare-http-xadd: --prefix is required');
  process.exit(1);
}
const prefix = values.prefix;
const redis = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379', { enableAutoPipelining: false, maxRetriesPerRequest: 0 });

function partition(merchant: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < merchant.length; i++) h = Math.imul(h ^ merchant.charCodeAt(i), 0x01000193) >>> 0;
  return h % 8;
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let body: TransactionBody;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString()) as TransactionBody;
    } catch {
      res.writeHead(400).end();
      return;
    }
    const id = txIdLike();
    const stream = `${prefix}:{${partition(String(body.merchant_id))}}:transactions:normal`;
    redis.xadd(stream, '*', ...entryFields(body, id)).then(
      () => {
        const out = JSON.stringify({ id, status: 'accepted' });
        res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
      },
      () => res.writeHead(503).end(),
    );
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), '127.0.0.1', () => {
  console.log(JSON.stringify({ port: (server.address() as AddressInfo).port }));
});
const stop = () => {
  server.close();
  server.closeAllConnections();
  redis.disconnect();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
