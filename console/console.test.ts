// The web console in a real browser (Debian's Chromium through playwright-core), against a real
// pipeline (ingest, validate → risk → ledger → Postgres sink) on this test's own Redis prefix and
// Postgres schema: log in, live rates on the topology, a transaction's timeline, redrive a dead
// letter, tail a topic; a merchant key and a redrive without the CSRF token are refused; no
// serious or critical accessibility violation on any page (axe-core). Screenshots of every page go
// to $CONSOLE_SCREENSHOTS (default: a temp dir, named in the test output).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import AxeBuilder from '@axe-core/playwright';
import type { Page } from 'playwright-core';
import { startWorker } from '../cli/start-worker.ts';
import type { Worker } from '../cli/start-worker.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import { partitionOf } from '../core/partition.ts';
import { waitFor } from '../core/wait.ts';
import { loadTopology } from '../core/topology/load.ts';
import { createApiKey, KeyStore } from '../core/api-keys.ts';
import { startTestIngest } from '../ingest/testing.ts';
import type { TestIngest } from '../ingest/testing.ts';
import { newTxId } from '../core/tx-id.ts';
import { launchBrowser } from '../test/helpers/browser.ts';
import type { TestBrowser } from '../test/helpers/browser.ts';
import { createInstance } from '../test/helpers/instance.ts';
import type { TestInstance } from '../test/helpers/instance.ts';
import { SHIPPED_TOPOLOGY } from '../test/helpers/topology-file.ts';
import { startConsole } from './server.ts';
import type { ConsoleServer } from './server.ts';

const topology = loadTopology(SHIPPED_TOPOLOGY);
const PARTITIONS = topology.topics.transactions!.partitions;

describe('web console in Chromium', () => {
  let inst: TestInstance;
  let worker: Worker;
  let ingest: TestIngest;
  let server: ConsoleServer;
  let browser: TestBrowser;
  let page: Page;
  const merchantKeys: Record<string, string> = {};
  let operatorKey = '';
  const shots = process.env.CONSOLE_SCREENSHOTS || mkdtempSync(join(tmpdir(), 'rill-console-shots-'));
  const a11y: { page: string; id: string; impact: string; nodes: number }[] = [];
  const a11yChecked: string[] = [];
  const a11yMinor: string[] = [];

  const post = async (merchant: string, body: Record<string, unknown> = {}): Promise<string> => {
    const res = await fetch(`${ingest.url}/v1/transactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${merchantKeys[merchant]}` },
      body: JSON.stringify({ type: 'payin', merchant_id: merchant, amount: 1500, currency: 'USD', ...body }),
    });
    assert.equal(res.status, 202, await res.clone().text());
    return ((await res.json()) as { id: string }).id;
  };
  const inPostgres = async (id: string) =>
    (await inst.pool.query('SELECT status FROM transactions WHERE id = $1', [id])).rows[0] as { status: string } | undefined;

  /** Screenshot and axe pass of the page as it is now. */
  const check = async (name: string) => {
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
    const res = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
    a11yChecked.push(`${name} (${res.passes.length} rules passed)`);
    for (const v of res.violations) {
      if (v.impact === 'serious' || v.impact === 'critical') a11y.push({ page: name, id: v.id, impact: v.impact, nodes: v.nodes.length });
      else a11yMinor.push(`${name}: ${v.id} (${v.impact})`);
    }
  };

  /** A dead letter as the validate stage writes one, for a real payin of `merchant`. */
  const deadLetter = async (merchant: string): Promise<{ id: string; tx: string }> => {
    const now = Date.now();
    const tx = newTxId(now); // as ingest mints it: the id's time is the event's ingested_at
    const p = partitionOf(merchant, PARTITIONS);
    const ev = { id: tx, type: 'payin', merchant_id: merchant, amount: 700, currency: 'USD', ingested_at: now };
    const entry = await inst.redis.xadd(
      inst.keys.deadLetter('validate', p),
      '*',
      'tx',
      tx,
      'ev',
      JSON.stringify(ev),
      'error',
      'TimeoutError',
      'message',
      'risk service timed out',
      'stage',
      'validate',
      'attempts',
      '5',
      'origin_stream',
      inst.keys.lane('transactions', p, 'normal'),
      'origin_id',
      '1-0',
      'first_failed_at',
      String(now - 5_000),
      'last_failed_at',
      String(now),
    );
    await inst.redis.hset(
      inst.keys.deadLetterIndex(p),
      tx,
      JSON.stringify({ stage: 'validate', error: 'TimeoutError', message: 'risk service timed out', at: now }),
    );
    return { id: `validate/${p}/${entry}`, tx };
  };

  before(async () => {
    mkdirSync(shots, { recursive: true });
    inst = await createInstance('console');
    const logger = createLogger(process.env.LOG_LEVEL || 'silent');
    worker = await startWorker({ env: inst.env, topology, registry: createRegistry(), logger });
    ingest = await startTestIngest(inst, { topology });
    server = await startConsole({ env: inst.env, topology, redis: inst.redis, pool: inst.pool, keyStore: new KeyStore(inst.pool), logger }, 0);
    for (const m of ['m_console', 'm_flow', 'm_tail']) merchantKeys[m] = await createApiKey(inst.pool, { merchantId: m });
    operatorKey = await createApiKey(inst.pool, { scope: 'operator' });
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.on('dialog', (d) => void d.accept()); // the confirmations of redrive and purge
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    await ingest?.server.close();
    await worker?.stop();
    await inst?.cleanup();
  });

  test('a merchant key is refused at login; pages redirect to the login', async (t) => {
    await page.goto(`${server.url}/dead-letters`);
    assert.equal(new URL(page.url()).pathname, '/login');
    await check('login');
    await page.fill('#key', merchantKeys.m_console!);
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/login') && r.request().method() === 'POST'),
      page.click('button[type=submit]'),
    ]);
    assert.equal(res.status(), 403);
    assert.match(await page.locator('[role=alert]').innerText(), /merchant key; the console needs an operator key/);
    assert.deepEqual(
      (await browser.context.cookies()).filter((c) => c.name === 'rill_console'),
      [],
    );
    const api = await page.evaluate(async () => (await fetch('/workers')).status);
    assert.equal(api, 401);
    t.diagnostic(`screenshots: ${shots}`);
  });

  test('an operator logs in and sees the topology with live rates while events flow', async () => {
    // keyboard only: the skip link comes first, then the key field; Enter submits
    await page.goto(`${server.url}/login`);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'key');
    await page.keyboard.type(operatorKey);
    await Promise.all([page.waitForURL(`${server.url}/`), page.keyboard.press('Enter')]);
    const cookie = (await browser.context.cookies()).find((c) => c.name === 'rill_console')!;
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    // a steady trickle of payins while the page is open
    let flowing = true;
    const flow = (async () => {
      while (flowing) await post('m_flow');
    })();
    try {
      // the SSE update (once a second) turns the ingest edge live with a non-zero rate
      const edge = page.locator('g.edge.live[data-from="ingest"]');
      await edge.waitFor({ timeout: 30_000 });
      assert.ok(Number(await edge.getAttribute('data-rate')) > 0);
      await page.locator('g.edge.live[data-to="sink:postgres"]').waitFor({ timeout: 30_000 });
      assert.match((await edge.locator('text').textContent()) ?? '', /^\d[\d,.]*\/s$/);
      await check('topology');
    } finally {
      flowing = false;
      await flow;
    }
  });

  test('partitions, workers, wallets and bench pages render', async () => {
    await page.goto(`${server.url}/partitions?topic=transactions`);
    assert.equal(await page.locator('table.partitions tbody tr').count(), PARTITIONS * topology.priorities.length);
    // the one worker holds every partition's lease of the ordered validate stage
    const holders = await page.locator('table.partitions tbody tr td:last-child').allInnerTexts();
    assert.equal(holders.filter((h) => h.endsWith('-0')).length, PARTITIONS * topology.priorities.length, holders.join(','));
    const parked = await page.locator('table.partitions tbody tr td:nth-child(6)').allInnerTexts();
    assert.deepEqual(new Set(parked), new Set(['0']), 'nothing parked, and the count is read (not "–")');
    await check('partitions');
    await page.goto(`${server.url}/workers`);
    await page.locator('td.ok', { hasText: 'live' }).first().waitFor();
    await check('workers');
    await page.goto(`${server.url}/wallets?merchant=m_flow`);
    assert.equal(await page.locator('tbody th', { hasText: 'm_flow' }).count(), 1);
    await check('wallets');
    await page.goto(`${server.url}/bench`);
    await check('bench');
  });

  test('find a transaction by id and see its timeline', async () => {
    const id = await post('m_console', { reference: 'order-console' });
    await waitFor(`${id} in Postgres`, () => inPostgres(id), 30_000);
    await page.goto(`${server.url}/transactions`);
    await page.fill('input[name=id]', id);
    await Promise.all([page.waitForURL(/\/transactions\?id=/), page.click('search form button')]);
    assert.equal(await page.locator('#tx-status').innerText(), 'succeeded');
    const steps = await page.locator('#timeline li strong').allInnerTexts();
    assert.deepEqual(steps, ['accepted by ingest', 'validate done', 'risk done', 'ledger done', 'sink commit']);
    await check('transaction');
    // a merchant's mistake ends as a failed row with its code
    const zar = await post('m_console', { currency: 'ZAR' });
    await waitFor(`${zar} in Postgres`, () => inPostgres(zar), 30_000);
    await page.goto(`${server.url}/transactions?id=${zar}`);
    assert.equal(await page.locator('#tx-status').innerText(), 'failed');
    assert.match(await page.locator('#timeline li.commit').innerText(), /status failed, currency_not_allowed: .*ZAR/);
  });

  test('redrive a dead letter from the table; it reaches Postgres', async () => {
    const dl = await deadLetter('m_console');
    await page.goto(`${server.url}/dead-letters?stage=validate`);
    const row = page.locator(`tr[data-id="${dl.id}"]`);
    await row.waitFor();
    await check('dead-letters');
    await row.getByRole('button', { name: `Redrive ${dl.id}` }).click();
    await page.locator('.flash.ok', { hasText: 'Redrove 1 dead letter.' }).waitFor();
    assert.equal(await row.count(), 0);
    assert.match(await page.locator('ul.audit li').first().innerText(), new RegExp(`redrive · ${dl.id}: 1 redriven`));
    const landed = await waitFor(`${dl.tx} in Postgres`, () => inPostgres(dl.tx), 30_000);
    assert.equal(landed.status, 'succeeded', JSON.stringify(landed));
    await page.goto(`${server.url}/transactions?id=${dl.tx}`);
    assert.equal(await page.locator('#tx-status').innerText(), 'succeeded');
  });

  test('a redrive without the CSRF token is refused', async () => {
    const dl = await deadLetter('m_console');
    await page.goto(`${server.url}/dead-letters`);
    const attempt = (headers: Record<string, string>) =>
      page.evaluate(
        async ([id, h]) => {
          const res = await fetch('/dead-letters/redrive', { method: 'POST', headers: h, body: new URLSearchParams({ id }) });
          return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
        },
        [dl.id, headers] as const,
      );
    const tries: Record<string, string>[] = [{}, { 'x-csrf-token': 'forged' }];
    for (const headers of tries) {
      const res = await attempt(headers);
      assert.equal(res.status, 403);
      assert.match(res.type ?? '', /^application\/problem\+json/);
      assert.match(res.body, /CSRF token/);
    }
    const [, , entry] = dl.id.split('/');
    const p = partitionOf('m_console', PARTITIONS);
    assert.equal((await inst.redis.xrange(inst.keys.deadLetter('validate', p), entry!, entry!)).length, 1, 'still a dead letter');
  });

  test('tail a topic and see a posted event arrive', async () => {
    await page.goto(`${server.url}/tail?topic=transactions&merchant=m_tail`);
    await page.locator('#tail-state', { hasText: 'waiting for events' }).waitFor();
    const id = await post('m_tail');
    await page.locator(`#tail-rows tr[data-tx="${id}"]`).waitFor({ timeout: 15_000 });
    assert.equal(await page.locator('#tail-rows tr').count(), 1);
    await check('tail');
  });

  test('no serious or critical accessibility violation on any page', (t) => {
    assert.equal(a11yChecked.length, 9, 'every page was checked');
    t.diagnostic(`axe: ${a11yChecked.join(', ')}; minor or moderate: ${a11yMinor.join(', ') || 'none'}`);
    assert.deepEqual(a11y, []);
  });
});
