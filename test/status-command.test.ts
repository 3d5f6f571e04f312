// `rill status` against a real pipeline: a worker (with its heartbeat and stream statistics, as
// cli/start-worker.ts starts them) and some traffic. --json reports the topology's topics and lanes with
// the right lengths, the stage with a live worker, rates while traffic flows; the plain output is
// a table; --watch redraws until stopped; an unreachable Redis is one line and exit 1. The command
// runs in-process with captured output.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { waitFor } from './helpers/wait.ts';
import { outstanding } from './helpers/pipeline.ts';
import { writeTopology } from './helpers/topology-file.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from './helpers/transactions.ts';
import { createLogger } from '../core/logger.ts';
import { createRegistry } from '../core/metrics.ts';
import { LaneMap } from '../core/lanes.ts';
import { startWorkerObservability } from '../core/observability/worker-observability.ts';
import { EventAppender } from '../ingest/append/index.ts';
import { startWorker } from '../cli/start-worker.ts';
import type { Worker } from '../cli/start-worker.ts';
import { statusCommand } from '../cli/commands/status.ts';
import type { StatusIO, StatusReport } from '../cli/commands/status.ts';
import { runCaptured } from './helpers/cli.ts';
import type { CommandRun } from './helpers/cli.ts';

let inst: TestInstance;
let worker: Worker | undefined;
let observability: { stop(): Promise<void> } | undefined;
const WORKER_ID = `status-test-${process.pid}`;
const { path, topology } = writeTopology({ 'sinks.postgres.max_wait': '20ms' });
const N = 120;
const expected = new Map<string, number>(); // lane → events appended to the ingest topic

before(async () => {
  inst = await createInstance('statuscmd');
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(12);
  const lanes = new LaneMap(topology.priorities);
  // the refunds and chargebacks of the mix name payins ingest must know
  await registerReferencedPayins(
    inst.redis,
    inst.keys,
    topology,
    Array.from({ length: N }, (_, i) => sampleBody(i, merchants)),
  );
  for (let i = 0; i < N; i++) {
    const body = sampleBody(i, merchants);
    expected.set(lanes.laneOf(body.type), (expected.get(lanes.laneOf(body.type)) ?? 0) + 1);
    await appender.append(body);
  }
  const registry = createRegistry();
  const logger = createLogger('silent');
  worker = await startWorker({ env: inst.env, topology, registry, logger });
  observability = startWorkerObservability({
    redis: inst.redis,
    keys: inst.keys,
    topology,
    id: WORKER_ID,
    host: 'status-host',
    components: worker.components,
    registry,
    logger,
    heartbeatMs: 200,
    streamStatsMs: 500,
  });
  await waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 60_000);
});
after(async () => {
  await observability?.stop();
  await worker?.stop();
  await inst?.cleanup();
});

function status(argv: string[], extra: Partial<StatusIO> = {}, vars: Record<string, string> = {}): Promise<CommandRun> {
  return runCaptured(statusCommand, argv, { env: { ...process.env, ...inst.vars, RILL_TOPOLOGY: path, ...vars }, tty: false, ...extra });
}

async function json(): Promise<StatusReport> {
  const r = await status(['--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as StatusReport;
}

async function streamLength(topic: string, lane: string): Promise<number> {
  let n = 0;
  for (let p = 0; p < topology.topics[topic]!.partitions; p++) n += await inst.redis.xlen(inst.keys.lane(topic, p, lane));
  return n;
}

test('--json: topics, lanes and lengths, groups caught up, the stage and sink with a live worker', async () => {
  const report = await json();
  assert.deepEqual(
    report.topics.map((t) => t.topic),
    Object.keys(topology.topics),
  );
  for (const t of report.topics) {
    assert.equal(t.partitions, 8);
    assert.deepEqual(
      t.lanes.map((l) => l.lane),
      topology.priorities.map((p) => p.name),
    );
    for (const l of t.lanes) {
      assert.equal(l.length, await streamLength(t.topic, l.lane), `${t.topic}/${l.lane} length`);
      // validate forwards every event to the same lane of validated
      assert.equal(l.length, expected.get(l.lane) ?? 0, `${t.topic}/${l.lane}: the events appended`);
      const group = t.topic === 'transactions' ? 'validate' : 'postgres';
      assert.deepEqual(
        l.groups.map((g) => [g.group, g.lag, g.lag_exact, g.pending]),
        [[group, 0, true, 0]],
        `${t.topic}/${l.lane} groups`,
      );
    }
  }
  assert.equal(
    report.topics[0]!.lanes.reduce((n, l) => n + l.length, 0),
    N,
  );

  const stage = report.stages.find((s) => s.stage === 'validate');
  assert.ok(stage, 'the validate stage');
  assert.ok(stage.live_workers >= 1, `validate has a live worker (${stage.live_workers})`);
  assert.equal(stage.input, 'transactions');
  assert.equal(stage.dead_letters, 0);
  assert.equal(stage.delay_set, 0);
  assert.equal(stage.parked, null, 'validate is ordering none here: nothing parks');
  const sink = report.sinks.find((s) => s.sink === 'postgres');
  assert.ok(sink && sink.live_workers >= 1, 'the sink has a live worker');
  assert.ok(sink.last_flush_at !== null && sink.last_flush_age_seconds !== null && sink.last_flush_age_seconds < 60, 'the sink flushed recently');

  const me = report.workers.find((w) => w.id === WORKER_ID);
  assert.ok(me, 'our worker is listed');
  assert.equal(me.live, true);
  assert.equal(me.host, 'status-host');
  assert.equal(me.pid, process.pid);
  assert.deepEqual([...me.components].sort(), ['postgres', 'validate']);
  assert.ok(me.seen_age_seconds < 2);
});

test('rates: events flowing in show up as rate in, acked progress as rate out, stage events/s from heartbeats', async () => {
  const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
  const merchants = merchantIds(12);
  let i = N;
  let stop = false;
  const feeding = (async () => {
    while (!stop) {
      for (let k = 0; k < 10; k++) await appender.append({ ...sampleBody(i++, merchants), type: 'payin' });
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    await new Promise((r) => setTimeout(r, 600)); // a couple of heartbeats with traffic
    const report = await json();
    const normal = (topic: string) => report.topics.find((t) => t.topic === topic)!.lanes.find((l) => l.lane === 'normal')!;
    assert.ok((normal('transactions').in_per_sec ?? 0) > 10, `rate in ${normal('transactions').in_per_sec}`);
    assert.ok((normal('transactions').groups[0]!.out_per_sec ?? 0) > 10, `rate out ${normal('transactions').groups[0]!.out_per_sec}`);
    assert.ok((normal('validated').in_per_sec ?? 0) > 10, 'validate appends to validated');
    assert.ok(report.sample_seconds >= 0.9 && report.sample_seconds < 3, `sampled over ${report.sample_seconds} s`);
    const stage = report.stages.find((s) => s.stage === 'validate')!;
    assert.ok((stage.events_per_sec ?? 0) > 10, `stage events/s ${stage.events_per_sec}`);
    assert.equal(stage.retries_per_sec, 0);
    assert.ok((report.sinks[0]!.rows_per_sec ?? 0) > 0, `sink rows/s ${report.sinks[0]!.rows_per_sec}`);
  } finally {
    stop = true;
    await feeding;
  }
  await waitFor('the pipeline to drain', async () => (await outstanding(inst.redis, inst.keys, topology)) === 0, 60_000);
});

test('plain output: the tables with their headers', async () => {
  const r = await status([]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const lines = r.stdout.split('\n');
  assert.match(lines[0]!, /^rill status /);
  const header = (first: string) => lines.find((l) => l.startsWith(first)) ?? '';
  assert.match(header('TOPIC'), /^TOPIC\s+LANE\s+LENGTH\s+IN\/S\s+GROUP\s+LAG\s+PENDING\s+OUT\/S$/);
  assert.match(header('STAGE'), /^STAGE\s+INPUT\s+ORDERING\s+WORKERS\s+EVENTS\/S\s+RETRIES\/S\s+DEAD LETTERS\s+DELAY SET\s+PARKED$/);
  assert.match(header('SINK'), /^SINK\s+INPUT\s+TABLE\s+WORKERS\s+ROWS\/S\s+LAST FLUSH\s+DEAD LETTERS$/);
  assert.match(header('WORKER'), /^WORKER\s+HOST\s+PID\s+COMPONENTS\s+UP\s+LAST SEEN\s+STATE$/);
  assert.match(r.stdout, new RegExp(`^transactions\\s+normal\\s+${(await streamLength('transactions', 'normal')).toLocaleString('en-US')}\\s`, 'm'));
  assert.match(r.stdout, /^validate\s+transactions\s+none\s+[1-9]/m);
  assert.match(r.stdout, new RegExp(`^${WORKER_ID}\\s+status-host\\s+${process.pid}\\s+validate,postgres\\s.*\\blive$`, 'm'));
  // columns line up: every row of a table is as wide as its header
  const topicRows = lines.slice(lines.indexOf(header('TOPIC')), lines.indexOf(header('TOPIC')) + 9);
  const outCol = header('TOPIC').indexOf('OUT/S') + 'OUT/S'.length;
  for (const row of topicRows) assert.equal(row.length, outCol, `aligned: "${row}"`);
});

test('a dead worker is shown as dead and not counted as live', async () => {
  const old = Date.now() - 60_000;
  const record = {
    id: 'gone-1',
    host: 'old-host',
    pid: 1,
    components: ['validate'],
    started_at: old - 1_000,
    seen_at: old,
    interval_ms: 5_000,
    stats: { stages: {}, sinks: {} },
  };
  await inst.redis.hset(inst.keys.global('workers'), 'gone-1', JSON.stringify(record));
  await inst.redis.zadd(inst.keys.global('workers-seen'), old, 'gone-1');
  try {
    const report = await json();
    const gone = report.workers.find((w) => w.id === 'gone-1');
    assert.ok(gone && gone.live === false, 'listed as dead');
    assert.ok(gone.seen_age_seconds >= 59);
    assert.equal(report.workers[report.workers.length - 1]!.id, 'gone-1', 'live workers first');
    const live = report.workers.filter((w) => w.live && w.components.includes('validate')).length;
    assert.equal(report.stages.find((s) => s.stage === 'validate')!.live_workers, live);
    const plain = await status([]);
    assert.match(plain.stdout, /^gone-1\s+old-host\s+1\s+validate\s.*\bDEAD$/m);
  } finally {
    await inst.redis.hdel(inst.keys.global('workers'), 'gone-1');
    await inst.redis.zrem(inst.keys.global('workers-seen'), 'gone-1');
  }
});

test('--watch redraws every period until stopped (--json: one object per line)', async () => {
  const ac = new AbortController();
  let frames = 0;
  let stdout = '';
  const done = statusCommand(['--watch', '0.3', '--json'], {
    stdout: {
      write: (s: string) => {
        stdout += s;
        if (++frames === 3) ac.abort();
      },
    },
    stderr: { write: (s: string) => (stdout += s) },
    env: { ...process.env, ...inst.vars, RILL_TOPOLOGY: path },
    signal: ac.signal,
    tty: false,
  });
  assert.equal(await done, 0);
  const lines = stdout.trim().split('\n');
  assert.equal(lines.length, 3, stdout);
  for (const l of lines) {
    const r = JSON.parse(l) as StatusReport;
    assert.equal(r.topics.length, 2);
    assert.ok(r.sample_seconds > 0.2 && r.sample_seconds < 2, `period ${r.sample_seconds}`);
  }

  // plain: one screen per period (no terminal: separated by a blank line)
  const ac2 = new AbortController();
  let screens = 0;
  let text = '';
  const code = await statusCommand(['--watch=0.3'], {
    stdout: {
      write: (s: string) => {
        text += s;
        if (++screens === 2) ac2.abort();
      },
    },
    stderr: { write: (s: string) => (text += s) },
    env: { ...process.env, ...inst.vars, RILL_TOPOLOGY: path },
    signal: ac2.signal,
    tty: false,
  });
  assert.equal(code, 0);
  assert.equal(text.match(/^rill status /gm)?.length, 2);
});

test('Redis unreachable: one line on stderr, exit 1', async () => {
  const started = Date.now();
  const r = await status(['--json'], {}, { REDIS_URL: 'redis://127.0.0.1:1' });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^rill status: cannot connect \(.*ECONNREFUSED.*\); is the service running\?/);
  assert.ok(Date.now() - started < 5_000, 'fails fast');
});

test('--help, and bad options are one line and exit 1', async () => {
  const help = await status(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: rill status \[--watch \[SECONDS\]\] \[--json\] \[--topology FILE\]/);
  for (const argv of [['--nope'], ['--watch', '0'], ['--watch=abc'], ['extra']]) {
    const r = await status(argv);
    assert.equal(r.code, 1, `${argv.join(' ')}: ${r.stdout}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^rill status: /);
  }
  const missing = await status([], {}, { RILL_TOPOLOGY: '/nonexistent/topology.yaml' });
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
});
