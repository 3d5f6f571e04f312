// `rill tap` in a child process: NDJSON and CSV, --from a unix ms, --to a time or an entry id,
// filters, --follow until signalled, one-line errors; and it joins no consumer group.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { createInstance } from './helpers/instance.ts';
import type { TestInstance } from './helpers/instance.ts';
import { spawnRill } from './helpers/rill-process.ts';
import { ENGINE_TOPOLOGY } from './helpers/topology-file.ts';
import { merchantIds, registerReferencedPayins, sampleBody } from './helpers/transactions.ts';
import { waitFor } from './helpers/wait.ts';
import { compareIds } from '../core/stream-id.ts';
import { loadTopology } from '../core/topology/load.ts';
import { EventAppender } from '../ingest/append/index.ts';
import type { TransactionBody } from '../ingest/validation.ts';
import { CSV_COLUMNS } from '../cli/commands/tap.ts';

interface Proc {
  stdout(): string;
  stderr(): string;
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

/** `rill tap ...` in a child process, stdout and stderr apart. */
function spawnTap(args: string[], vars: Record<string, string>): Proc {
  const p = spawnRill(['tap', ...args], vars);
  let out = '';
  let err = '';
  p.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  p.child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { stdout: () => out, stderr: () => err, exited: p.exited, kill: (s) => void p.kill(s) };
}

async function tap(...args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const p = spawnTap(args, vars());
  const code = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

let inst: TestInstance;
const vars = () => ({ ...inst.vars, RILL_TOPOLOGY: ENGINE_TOPOLOGY });
const topology = loadTopology(ENGINE_TOPOLOGY);
const merchants = merchantIds(2);
const batch1: string[] = [];
const batch2: string[] = [];
let between = 0;

type Line = { _id: string; _stream: string; id: string; merchant_id: string; type: string; reference?: string };
const ndjson = (s: string): Line[] =>
  s
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);

/** RFC 4180 rows (quoted fields may hold commas, quotes and line breaks). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  if (field || row.length) rows.push([...row, field]);
  return rows;
}

describe('rill tap', () => {
  before(async () => {
    inst = await createInstance('tap-cli');
    const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
    // the refunds and chargebacks of the mix name payins ingest must know
    await registerReferencedPayins(
      inst.redis,
      inst.keys,
      topology,
      Array.from({ length: 100 }, (_, i) => sampleBody(i, merchants)),
    );
    const add = async (i: number, into: string[], extra: Partial<TransactionBody> = {}) =>
      into.push((await appender.append({ ...sampleBody(i, merchants), ...extra })).id);
    await add(0, batch1, { reference: 'quote " and, comma' });
    for (let i = 1; i < 8; i++) await add(i, batch1);
    await delay(5);
    between = Date.now();
    await delay(5);
    for (let i = 8; i < 12; i++) await add(i, batch2);
  });
  after(async () => {
    await inst?.cleanup();
  });

  test('NDJSON: every event in entry-id order, with _id and _stream', async () => {
    const r = await tap('transactions');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const lines = ndjson(r.stdout);
    assert.deepEqual(lines.map((l) => l.id).sort(), [...batch1, ...batch2].sort());
    for (let i = 1; i < lines.length; i++) assert.ok(compareIds(lines[i - 1]!._id, lines[i]!._id) <= 0, 'time order');
    for (const l of lines) {
      assert.match(l._id, /^\d+-\d+$/);
      assert.ok(l._stream.startsWith(`${inst.env.prefix}:{`), l._stream);
      assert.ok(l._stream.endsWith(':transactions:critical') || l._stream.endsWith(':transactions:high') || l._stream.endsWith(':transactions:normal'));
    }
    assert.equal(lines.find((l) => l.id === batch1[0])!.reference, 'quote " and, comma');
  });

  test('CSV: a header and the transaction columns, quoted where needed', async () => {
    const r = await tap('transactions', '--format', 'csv');
    assert.equal(r.code, 0, r.stderr);
    const rows = parseCsv(r.stdout);
    assert.deepEqual(rows[0], [...CSV_COLUMNS]);
    assert.equal(rows[0]!.slice(10, 12).join(','), 'failure_code,failure_reason', 'failure_code right before failure_reason');
    assert.equal(rows.length, 1 + batch1.length + batch2.length);
    const col = (name: string) => CSV_COLUMNS.indexOf(name as (typeof CSV_COLUMNS)[number]);
    const first = rows.find((row) => row[col('id')] === batch1[0])!;
    const body = sampleBody(0, merchants);
    assert.equal(first[col('merchant_id')], body.merchant_id);
    assert.equal(first[col('type')], body.type);
    assert.equal(first[col('amount')], String(body.amount));
    assert.equal(first[col('currency')], body.currency);
    assert.equal(first[col('status')], 'accepted');
    assert.equal(first[col('failure_code')], '');
    assert.equal(first[col('reference')], 'quote " and, comma');
    assert.match(first[col('ingested_at')]!, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.match(first[col('_id')]!, /^\d+-\d+$/);
    assert.match(r.stdout.split('\n')[1]!, /^\d+-\d+,/);
  });

  test('--from a unix ms, --to a unix ms or an entry id', async () => {
    const [later, earlier] = await Promise.all([tap('transactions', '--from', String(between)), tap('transactions', '--to', String(between))]);
    assert.equal(later.code, 0, later.stderr);
    assert.deepEqual(
      ndjson(later.stdout)
        .map((l) => l.id)
        .sort(),
      [...batch2].sort(),
    );

    assert.equal(earlier.code, 0, earlier.stderr);
    const firstBatch = ndjson(earlier.stdout);
    assert.deepEqual(firstBatch.map((l) => l.id).sort(), [...batch1].sort());

    const third = firstBatch[2]!;
    const [upTo, window] = await Promise.all([
      tap('transactions', '--from', 'earliest', '--to', third._id, '--format', 'ndjson'),
      tap('transactions', '--from', firstBatch[1]!._id, '--to', String(between)),
    ]);
    assert.equal(upTo.code, 0, upTo.stderr);
    // inclusive; an entry of another stream may carry the very same id
    assert.deepEqual(
      ndjson(upTo.stdout).map((l) => l.id),
      firstBatch.filter((l) => compareIds(l._id, third._id) <= 0).map((l) => l.id),
    );
    assert.ok(ndjson(upTo.stdout).length >= 3);

    assert.equal(window.code, 0, window.stderr);
    assert.deepEqual(
      ndjson(window.stdout).map((l) => l.id),
      firstBatch.filter((l) => compareIds(l._id, firstBatch[1]!._id) >= 0).map((l) => l.id),
    );
  });

  test('--merchant, --type, --limit', async () => {
    const m = merchants[1]!;
    const [r, t, limited] = await Promise.all([
      tap('transactions', '--merchant', m),
      tap('transactions', '--type', 'refund', '--format', 'csv'),
      tap('transactions', '--limit', '3'),
    ]);
    const want = [...batch1, ...batch2].filter((_, i) => sampleBody(i, merchants).merchant_id === m);
    assert.deepEqual(
      ndjson(r.stdout)
        .map((l) => l.id)
        .sort(),
      want.sort(),
    );
    const rows = parseCsv(t.stdout).slice(1);
    assert.ok(rows.length > 0);
    for (const row of rows) assert.equal(row[CSV_COLUMNS.indexOf('type')], 'refund');
    assert.equal(ndjson(limited.stdout).length, 3);
  });

  test('--follow prints new events as they arrive, until signalled', async () => {
    const p = spawnTap(['transactions', '--follow', '--from', String(Date.now())], vars());
    const appender = new EventAppender(inst.redis, topology, inst.keys, { timeoutMs: 5_000 });
    const live: string[] = [];
    for (let i = 20; i < 23; i++) live.push((await appender.append(sampleBody(i, merchants))).id);
    await waitFor('live events', () => ndjson(p.stdout()).length >= 3, 30_000);
    await delay(200);
    for (let i = 23; i < 25; i++) live.push((await appender.append(sampleBody(i, merchants))).id);
    await waitFor('more live events', () => ndjson(p.stdout()).length >= 5, 10_000);
    p.kill('SIGTERM');
    assert.equal(await p.exited, 0, p.stderr());
    assert.deepEqual(
      ndjson(p.stdout())
        .map((l) => l.id)
        .sort(),
      live.sort(),
    );
  });

  test('one-line errors, exit 1; --help', async () => {
    const cases = [
      [['nope'], /^rill tap: no topic named "nope"/],
      [[], /^rill tap: missing topic/],
      [['transactions', '--from', 'yesterday'], /^rill tap: --from "yesterday": expected/],
      [['transactions', '--format', 'xml'], /^rill tap: --format must be ndjson or csv/],
      [['transactions', '--bogus'], /^rill tap: Unknown option '--bogus'/],
    ] as const;
    const runs = await Promise.all(cases.map(([args]) => tap(...args)));
    runs.forEach((r, i) => {
      const [args, pattern] = cases[i]!;
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    });
    const h = await tap('--help');
    assert.equal(h.code, 0);
    assert.match(h.stdout, /^usage: rill tap <topic>/);
  });

  test('joins no consumer group', async () => {
    for (let p = 0; p < topology.topics.transactions!.partitions; p++) {
      for (const lane of topology.priorities) {
        const key = inst.keys.lane('transactions', p, lane.name);
        if (await inst.redis.exists(key)) assert.deepEqual(await inst.redis.xinfo('GROUPS', key), [], key);
      }
    }
  });
});
