// No API key and no request body in the logs. The real `rill ingest` (production logger from
// core/logger.ts with its redaction, at LOG_LEVEL=trace so every line there is gets written) in a
// child process; its stdout/stderr captured while it serves requests that carry bearer keys and
// bodies with unique markers: accepted ones and every kind of failing one (400, 401, 403, 409,
// 413, 415, per-line batch errors, a tap stream, an abandoned upload, and a Redis error → 503).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createInstance } from '../helpers/instance.ts';
import type { TestInstance } from '../helpers/instance.ts';
import { spawnRill } from '../helpers/rill-process.ts';
import type { RillProcess } from '../helpers/rill-process.ts';
import { waitFor } from '../helpers/wait.ts';
import { Keys } from '../../core/keys.ts';
import { LaneMap } from '../../core/lanes.ts';
import { partitionOf } from '../../core/partition.ts';
import { loadTopology } from '../../core/topology/load.ts';
import { createApiKey, parseApiKey } from '../../core/api-keys.ts';
import { TOPOLOGY_FILE } from '../../ingest/testing.ts';
import { sendRaw } from '../fuzz/raw.ts';

const M = 'm_logs_a';
const OTHER = 'm_logs_b';
/** Its lane stream is made a string key: the append script fails in Redis (WRONGTYPE) → 503. */
const BROKEN = 'm_logs_broken';

describe('no key or body in the logs', () => {
  let inst: TestInstance;
  let rill: RillProcess;
  let url = '';
  let port = 0;
  const keys: Record<'m' | 'broken' | 'tap', string> = { m: '', broken: '', tap: '' };
  /** Body contents that must never reach a log line. */
  const markers: string[] = [];
  const mark = (what: string) => {
    const m = `BODY${what}${randomBytes(5).toString('hex')}`;
    markers.push(m);
    return m;
  };
  const wrongKey = `rk_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;

  const tx = (merchant: string, extra: Record<string, unknown> = {}) => {
    const ref = mark('ref');
    const note = mark('meta');
    return JSON.stringify({ type: 'payin', merchant_id: merchant, amount: 1234, currency: 'USD', reference: ref, metadata: { note }, ...extra });
  };
  const post = (path: string, key: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers }, body });

  before(async () => {
    inst = await createInstance('sec-logs');
    keys.m = await createApiKey(inst.pool, { merchantId: M });
    keys.broken = await createApiKey(inst.pool, { merchantId: BROKEN });
    keys.tap = await createApiKey(inst.pool, { scope: 'tap' });
    // break BROKEN's lane: XADD to a string key fails inside the append script
    const topology = loadTopology(TOPOLOGY_FILE);
    const topic = topology.ingest.topic;
    const stream = new Keys(inst.env.prefix).lane(
      topic,
      partitionOf(BROKEN, topology.topics[topic]!.partitions),
      new LaneMap(topology.priorities).laneOf('payin'),
    );
    await inst.redis.set(stream, 'not a stream');

    rill = spawnRill(['ingest', '--port', '0', '--host', '127.0.0.1'], { ...inst.vars, LOG_LEVEL: 'trace' });
    port = await waitFor(
      'rill ingest to listen',
      () => {
        const line = rill
          .output()
          .split('\n')
          .find((l) => l.includes('"ingest listening"') && /"port":[1-9]/.test(l));
        return line ? (JSON.parse(line) as { port: number }).port : undefined;
      },
      60_000,
    );
    url = `http://127.0.0.1:${port}`;
  });

  after(async () => {
    await rill?.kill('SIGTERM');
    await inst?.cleanup();
  });

  test('requests with keys and bodies, accepted and failing, leave neither in the logs', async () => {
    const statuses: Record<string, number> = {};
    const note = async (what: string, p: Promise<Response>) => {
      const res = await p;
      statuses[what] = res.status;
      await res.body?.cancel();
    };
    await note('202', post('/v1/transactions', keys.m, tx(M), { 'idempotency-key': 'logs-1' }));
    await note('replay', post('/v1/transactions', keys.m, tx(M), { 'idempotency-key': 'logs-1' })); // 409: another body
    await note('400 validation', post('/v1/transactions', keys.m, tx(M, { currency: mark('currency'), amount: -1 })));
    await note('400 malformed', post('/v1/transactions', keys.m, `{"reference":"${mark('broken')}",`));
    await note('401 wrong key', post('/v1/transactions', wrongKey, tx(M)));
    await note('401 revoked-like', post('/v1/transactions', `rk_${parseApiKey(keys.m)!.keyId}_${randomBytes(32).toString('base64url')}`, tx(M)));
    await note('403 other merchant', post('/v1/transactions', keys.m, tx(OTHER)));
    await note('403 tap key writes', post('/v1/transactions', keys.tap, tx(M)));
    await note('413', post('/v1/transactions', keys.m, tx(M, { metadata: { pad: mark('pad').padEnd(70_000, 'x') } })));
    await note('415', post('/v1/transactions', keys.m, tx(M), { 'content-type': 'text/plain' }));
    await note(
      'batch',
      post('/v1/transactions/batch', keys.m, [tx(M), tx(OTHER), '{"nope":', tx(M, { amount: 'x' })].join('\n'), { 'content-type': 'application/x-ndjson' }),
    );
    await note('status', fetch(`${url}/v1/transactions/tx_01ARZ3NDEKTSV4RRFFQ69G5FAV`, { headers: { authorization: `Bearer ${keys.m}` } }));
    await note('wallets', fetch(`${url}/v1/wallets`, { headers: { authorization: `Bearer ${keys.m}` } }));
    const abort = new AbortController();
    const sse = await fetch(`${url}/v1/streams/transactions/tail?from=earliest`, { headers: { authorization: `Bearer ${keys.tap}` }, signal: abort.signal });
    statuses.tap = sse.status;
    abort.abort();
    await note('503 redis error', post('/v1/transactions', keys.broken, tx(BROKEN)));
    // an upload the client abandons halfway
    const partial = tx(M);
    await sendRaw(
      port,
      Buffer.from(
        `POST /v1/transactions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${keys.m}\r\nContent-Type: application/json\r\nContent-Length: ${partial.length + 50}\r\n\r\n${partial}`,
      ),
      200,
    );
    await new Promise((ok) => setTimeout(ok, 300));

    // the requests did what they should (so their log paths were taken)
    assert.equal(statuses['202'], 202);
    assert.equal(statuses['401 wrong key'], 401);
    assert.equal(statuses['403 other merchant'], 403);
    assert.equal(statuses['413'], 413);
    assert.equal(statuses.tap, 200);
    assert.equal(statuses['503 redis error'], 503);

    await rill.kill('SIGTERM');
    const out = rill.output();
    assert.match(out, /"ingest listening"/, 'the logs were captured');
    assert.match(out, /"level":50/, 'the failures were logged (at error level)');

    const leaks: string[] = [];
    const lines = out.split('\n');
    const find = (what: string, needle: string) => {
      const line = lines.find((l) => l.includes(needle));
      if (!line) return;
      const at = line.indexOf(needle);
      const msg = /"msg":"([^"]*)"/.exec(line)?.[1];
      leaks.push(`${what} in the log line "${msg}": …${line.slice(Math.max(0, at - 160), at + needle.length + 40)}…`);
    };
    for (const [name, k] of Object.entries(keys)) {
      find(`the ${name} key`, k);
      find(`the ${name} key's secret`, parseApiKey(k)!.secret);
    }
    find('a wrong key', wrongKey);
    for (const m of markers) find('body content', m);
    assert.deepEqual(leaks, [], `the logs carry secrets or request bodies (${leaks.length}):\n${leaks.join('\n')}`);
  });
});
