// `rill dlq` against a real pipeline: events a stage gives up on (a test stage `flaky` after
// validate, failing them past their last attempt) land in its dead-letter streams; list/show find
// exactly those; a redrive (the cause gone: the stage lets them through now) puts them back with
// their transaction ids, and they reach Postgres exactly once; purge needs --yes. The command runs
// in-process with captured output (`rill dlq` dispatches to it). Merchant mistakes (a currency such
// as ZAR) are not dead letters: they end as failed rows, never listed here.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from './helpers/transactions.ts';
import { flakyStage, writeTopology } from './helpers/topology-file.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import type { Topology } from '../core/topology/schema.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { startWorker } from '../cli/start-worker.ts';
import type { Worker } from '../cli/start-worker.ts';
import { dlqCommand } from '../cli/commands/dlq.ts';
import { runCaptured } from './helpers/cli.ts';
import type { CommandRun } from './helpers/cli.ts';

let inst: TestInstance;
let worker: Worker | undefined;
// validate → flaky → sink: flaky fails an event metadata.fail = N times, and gives up after 2 attempts
const ATTEMPTS = 2;
const pipeline = writeTopology(flakyStage(ATTEMPTS));

before(async () => {
  inst = await createInstance('dlqcli');
});
after(async () => {
  await worker?.stop();
  await inst?.cleanup();
});

function dlq(...argv: string[]): Promise<CommandRun> {
  return runCaptured(dlqCommand, argv, { env: { ...process.env, ...inst.vars, RILL_TOPOLOGY: pipeline.path } });
}

async function listJson(
  ...extra: string[]
): Promise<
  { id: string; tx: string; error: string; message: string; stage: string; event: { currency: string; reference: string; metadata?: Record<string, string> } }[]
> {
  const r = await dlq('list', '--json', ...extra);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function runWorker(t: { topology: Topology; path: string }): Promise<void> {
  await worker?.stop();
  worker = await startWorker({
    env: { ...inst.env, topologyPath: t.path },
    topology: t.topology,
    registry: createRegistry({ defaults: false }),
    logger: createLogger('silent'),
  });
}

const drained = () => waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, pipeline.topology)) === 0, 60_000);

async function rowsFor(ids: readonly string[]): Promise<Map<string, number>> {
  const { rows } = await inst.pool.query<{ id: string; n: string }>('SELECT id, count(*) AS n FROM transactions WHERE id = ANY($1) GROUP BY id', [ids]);
  return new Map(rows.map((r) => [r.id, Number(r.n)]));
}

const oneLine = (s: string) => s.trim().split('\n').length === 1;

test('dlq list, show, redrive and purge over a real pipeline', async () => {
  const appender = new EventAppender(inst.redis, pipeline.topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(16);
  await registerReferencedPayins(
    inst.redis,
    inst.keys,
    pipeline.topology,
    Array.from({ length: 40 }, (_, i) => sampleBody(i, merchants)),
  );
  const bad: string[] = [];
  const good: string[] = [];
  const zar: string[] = [];
  // failing every try the stage gives them: dead-lettered; its tries are counted, so a redrive passes
  for (let i = 0; i < 4; i++)
    bad.push(
      (await appender.append({ ...sampleBody(i, merchants), reference: `dl-${i}`, type: i % 2 ? 'payout' : 'payin', metadata: { fail: String(ATTEMPTS) } })).id,
    );
  for (let i = 4; i < 24; i++) good.push((await appender.append(sampleBody(i, merchants))).id);
  // a merchant's mistake: a failed row, not a dead letter
  for (let i = 24; i < 26; i++) zar.push((await appender.append({ ...sampleBody(i, merchants), currency: 'ZAR' })).id);

  await runWorker(pipeline);
  await drained();
  assert.equal((await rowsFor(good)).size, good.length);
  const { rows: zarRows } = await inst.pool.query<{ status: string; failure_code: string }>(
    'SELECT status, failure_code FROM transactions WHERE id = ANY($1)',
    [zar],
  );
  assert.deepEqual(
    zarRows.map((r) => [r.status, r.failure_code]),
    zar.map(() => ['failed', 'currency_not_allowed']),
  );

  // list: exactly the bad ones
  const listed = await listJson();
  assert.deepEqual(listed.map((d) => d.tx).sort(), [...bad].sort());
  for (const d of listed) {
    assert.equal(d.stage, 'flaky');
    assert.equal(d.error, 'RetryableError');
    assert.match(d.message, /told to fail/);
    assert.equal(d.event.metadata?.fail, String(ATTEMPTS));
    assert.match(d.event.reference, /^dl-\d$/);
    assert.match(d.id, /^flaky\/\d+\/\d+-\d+$/);
  }
  const table = await dlq('list');
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^ID\s+STAGE\s+ERROR\s+MESSAGE\s+ATTEMPTS\s+TX\s+LAST FAILURE\n/);
  for (const d of listed) assert.ok(table.stdout.includes(d.id) && table.stdout.includes(d.tx), `table shows ${d.id}`);
  assert.match(table.stdout, /\n4 dead letters\n$/);
  assert.match((await dlq('list', '--limit', '2')).stdout, /showing 2 of 4 dead letters/);
  assert.equal((await listJson('--stage', 'flaky', '--since', '10m')).length, 4);
  assert.equal((await listJson('--stage', 'validate')).length, 0);
  assert.equal((await listJson('--since', String(Date.now() + 60_000))).length, 0);
  assert.equal((await listJson('--stage', 'postgres')).length, 0);
  const noStage = await dlq('list', '--stage', 'nope');
  assert.equal(noStage.code, 1);
  assert.ok(oneLine(noStage.stderr) && /no stage or sink named "nope"/.test(noStage.stderr), noStage.stderr);
  const badSince = await dlq('list', '--since', 'yesterday');
  assert.equal(badSince.code, 1);
  assert.match(badSince.stderr, /^rill dlq: --since "yesterday"/);

  // show: one, everything, the event pretty-printed
  const [first, ...others] = listed;
  const shown = await dlq('show', first!.id);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, new RegExp(`^id:\\s+${first!.id}$`, 'm'));
  assert.match(shown.stdout, new RegExp(`^tx:\\s+${first!.tx}$`, 'm'));
  assert.match(shown.stdout, /^message:\s+.*told to fail/m);
  assert.match(shown.stdout, /^origin:\s+\S+:validated:\w+ \d+-\d+$/m);
  assert.match(shown.stdout, /^event:\n {2}\{\n {4}"[a-z_]+": /m, 'the event, pretty-printed');
  assert.match(shown.stdout, /^ {4}"type": "(payin|payout|refund|chargeback)",?$/m);
  assert.match(shown.stdout, new RegExp(`^ {4}"reference": "${first!.event.reference}",$`, 'm'));
  const unknown = await dlq('show', 'validate/0/1-0');
  assert.equal(unknown.code, 1);
  assert.ok(oneLine(unknown.stderr), unknown.stderr);
  assert.match(unknown.stderr, /no dead letter validate\/0\/1-0/);
  assert.equal((await dlq('show', 'not-an-id')).code, 1);

  // dry run: counts, changes nothing
  const origin = (
    await inst.redis.xrange(inst.keys.deadLetter('flaky', Number(first!.id.split('/')[1])), first!.id.split('/')[2]!, first!.id.split('/')[2]!)
  )[0]![1];
  const originStream = origin[origin.indexOf('origin_stream') + 1]!;
  const originLen = await inst.redis.xlen(originStream);
  const dry = await dlq('redrive', '--ids', first!.id, '--dry-run');
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /would redrive 1 dead letter \(dry run/);
  assert.match((await dlq('redrive', '--all', '--dry-run')).stdout, /would redrive 4 dead letters/);
  assert.equal((await listJson()).length, 4);
  assert.equal(await inst.redis.xlen(originStream), originLen);
  assert.equal((await dlq('redrive')).code, 1);
  assert.equal((await dlq('redrive', '--all', '--ids', first!.id)).code, 1);

  // the cause is gone (the stage lets them through now): a redriven event reaches Postgres once, under its own tx id
  const one = await dlq('redrive', '--ids', first!.id);
  assert.equal(one.code, 0, one.stderr);
  assert.match(one.stdout, /^redrove 1 dead letter$/m);
  await waitFor('the redriven event in Postgres', async () => (await rowsFor([first!.tx])).get(first!.tx) === 1);
  await drained();
  assert.deepEqual((await listJson()).map((d) => d.id).sort(), others.map((d) => d.id).sort());
  const again = await dlq('redrive', '--ids', first!.id);
  assert.equal(again.code, 1, 'a dead letter redriven already is not found');
  assert.match(again.stderr, /not found/);

  const rest = await dlq('redrive', '--all', '--stage', 'flaky');
  assert.equal(rest.code, 0, rest.stderr);
  assert.match(rest.stdout, /redrove 3 dead letters/);
  await waitFor('every redriven event in Postgres', async () => (await rowsFor(bad)).size === bad.length);
  await drained();
  assert.deepEqual(
    [...(await rowsFor(bad)).values()],
    bad.map(() => 1),
    'each redriven event exactly once',
  );
  const total = await inst.pool.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
  assert.equal(Number(total.rows[0]!.n), good.length + zar.length + bad.length);
  assert.equal((await listJson()).length, 0);

  // purge: refuses without --yes, then empties
  for (let i = 30; i < 32; i++) await appender.append({ ...sampleBody(i, merchants), metadata: { fail: 'fatal' } });
  await drained();
  assert.equal((await listJson()).length, 2);
  const refused = await dlq('purge');
  assert.equal(refused.code, 1);
  assert.ok(oneLine(refused.stderr), refused.stderr);
  assert.match(refused.stderr, /--yes/);
  assert.equal((await listJson()).length, 2);
  const purgedOne = await dlq('purge', '--yes', '--ids', (await listJson())[0]!.id);
  assert.equal(purgedOne.code, 0, purgedOne.stderr);
  assert.match(purgedOne.stdout, /^purged 1 dead letter$/m);
  assert.equal((await listJson()).length, 1);
  const purged = await dlq('purge', '--yes');
  assert.equal(purged.code, 0, purged.stderr);
  assert.match(purged.stdout, /^purged 1 dead letter$/m);
  assert.equal((await listJson()).length, 0);
  assert.match((await dlq('list')).stdout, /^0 dead letters$/m);
});

test('dlq --help and usage errors', async () => {
  const help = await dlq('--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: rill dlq list/);
  for (const argv of [[], ['frobnicate'], ['list', '--limit', '0'], ['list', '--bogus'], ['show'], ['redrive', '--ids', 'validate/0/x']]) {
    const r = await dlq(...argv);
    assert.equal(r.code, 1, `${argv.join(' ')} fails`);
    assert.ok(oneLine(r.stderr), `${argv.join(' ')}: one line, got ${r.stderr}`);
    assert.match(r.stderr, /^rill dlq: /);
  }
});
