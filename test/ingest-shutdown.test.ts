// `rill ingest` stopped the way Kubernetes stops a pod: SIGTERM arrives while the endpoints still
// route to it. /readyz fails at once, requests are still served for RILL_SHUTDOWN_DELAY_MS, then
// the server drains and the process exits 0.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { spawnRill } from './helpers/rill-process.ts';
import { waitFor } from './helpers/wait.ts';
import { createApiKey } from '../core/api-keys.ts';

let inst: TestInstance;
before(async () => {
  inst = await createInstance('ingeststop', { LOG_LEVEL: 'info' });
});
after(async () => {
  await inst?.cleanup();
});

test('SIGTERM: unready at once, still serving through the delay, then exit 0', async () => {
  const key = await createApiKey(inst.pool, { merchantId: 'm_stop' });
  // the delay only has to outlast the few requests below
  const proc = spawnRill(['ingest'], { ...inst.vars, PORT: '0', RILL_SHUTDOWN_DELAY_MS: '4000' });
  await waitFor('ingest listening', () => /"port":\d+,"msg":"ingest listening"/.test(proc.output()), 60_000);
  const url = `http://127.0.0.1:${/"port":(\d+),"msg":"ingest listening"/.exec(proc.output())![1]}`;
  await waitFor('ready', async () => (await fetch(`${url}/readyz`)).status === 200, 30_000);
  const post = () =>
    fetch(`${url}/v1/transactions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'payin', merchant_id: 'm_stop', amount: 100, currency: 'USD' }),
    });
  assert.equal((await post()).status, 202);

  proc.child.kill('SIGTERM');
  await waitFor('/readyz fails', async () => (await fetch(`${url}/readyz`)).status === 503, 10_000, 5);
  const readyz = await fetch(`${url}/readyz`);
  assert.equal(readyz.headers.get('content-type'), 'application/problem+json');
  assert.match(((await readyz.json()) as { detail: string }).detail, /Shutting down/);
  assert.equal((await fetch(`${url}/healthz`)).status, 200, 'still alive');
  assert.equal((await post()).status, 202, 'still accepting: load balancers may not know yet');
  assert.equal(proc.child.exitCode, null, 'still running through the delay');
  assert.equal(await proc.exited, 0, proc.output());
  assert.match(proc.output(), /stopping: unready, serving until the delay has passed/);
});
