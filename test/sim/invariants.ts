// What must hold once a seed has drained (design §2), read back from Redis and Postgres:
//  1. every accepted transaction is in exactly one place: a `transactions` row or one dead letter;
//  2. every stage (and the sink) passed each input transaction on exactly once or dead-lettered
//     it exactly once; no topic holds a transaction twice (retries re-appended to an unordered
//     stage's input carry the `at` field and are told apart);
//  3. per-merchant order: an `ordering: key` stage's output lists a merchant's transactions (per
//     partition and lane) in the order of its input;
//  4. money: each succeeded row has its two ledger lines (wallet + external, summing to zero), a
//     failed one none; Postgres wallets = the sum of their ledger lines = what the succeeded rows
//     say; the ledger stage's own Redis wallets = Postgres wallets; the ledger's recorded decision
//     for a transaction agrees with its row; a refund/chargeback only succeeds against a succeeded
//     payin, and never for more than it;
//  5. on calm seeds (no faults, no crashes): each transaction ends where its kind says.
// Findings (reported, not failures): dead letters by stage and error, including any whose error
// is an injected infrastructure failure rather than something about the event.
import type { Redis } from 'ioredis';
import type { PgPool } from '../../core/postgres.ts';
import type { Keys } from '../../core/keys.ts';
import type { TransactionEvent } from '../../core/event.ts';
import type { Topology } from '../../core/topology/schema.ts';
import type { TransactionRow } from '../../core/transactions-table.ts';
import { partitionOf } from '../../core/partition.ts';
import { ORDERED_STAGES, RETRY_ATTEMPTS, SINK, STAGES } from './topology.ts';
import type { SimEvent, Workload } from './workload.ts';

export interface Findings {
  /** `stage/error` → how many dead letters. */
  deadLetters: Map<string, number>;
  /** Dead letters caused by an injected Redis/Postgres failure, not by the event. */
  infraDeadLetters: string[];
}

export interface CheckContext {
  seed: number;
  redis: Redis;
  pool: PgPool;
  keys: Keys;
  topology: Topology;
  workload: Workload;
  calm: boolean;
}

interface StreamItem {
  tx: string;
  event?: TransactionEvent;
  /** A retry put back on an unordered stage's input (it carries the attempts so far). */
  retry: boolean;
  fields: Map<string, string>;
}

type Place = { where: 'row'; status: string; code: string | null; reason: string | null } | { where: 'dlq'; stage: string; error: string; message: string };

const INFRA_ERRORS = new Set(['InjectedFault', 'CrashError', 'ReplyError']);

export async function checkInvariants(c: CheckContext): Promise<{ violations: string[]; findings: Findings }> {
  const v: string[] = [];
  const bad = (msg: string) => v.push(`seed ${c.seed}: ${msg}`);
  const { topology, keys } = c;
  const partitions = topology.topics[topology.ingest.topic]!.partitions;
  const lanes = topology.priorities.map((l) => l.name);
  const accepted = new Map(c.workload.events.map((e) => [e.id, e]));

  // --- read everything back: every topic's streams, every dead-letter stream, the tables, the ledger's Redis state
  const read = c.redis.pipeline();
  const streamKeys: { topic: string; p: number; lane: string }[] = [];
  for (const topic of Object.keys(topology.topics)) {
    for (let p = 0; p < partitions; p++) {
      for (const lane of lanes) {
        streamKeys.push({ topic, p, lane });
        read.xrange(keys.lane(topic, p, lane), '-', '+');
      }
    }
  }
  const dlqNames = [...STAGES, SINK];
  for (const stage of dlqNames) for (let p = 0; p < partitions; p++) read.xrange(keys.deadLetter(stage, p), '-', '+');
  for (const m of c.workload.merchants) read.hgetall(keys.partitioned(partitionOf(m, partitions), 'wallet', m));
  for (const e of c.workload.events) read.get(keys.partitioned(partitionOf(e.body.merchant_id, partitions), 'ledger', e.id));
  const replies = ((await read.exec()) ?? []).map(([err, value]) => {
    if (err) throw err;
    return value;
  });
  let at = 0;
  const toItem = ([, raw]: [string, string[]]): StreamItem => {
    const fields = new Map<string, string>();
    for (let i = 0; i + 1 < raw.length; i += 2) fields.set(raw[i]!, raw[i + 1]!);
    let event: TransactionEvent | undefined;
    try {
      event = JSON.parse(fields.get('ev') ?? '') as TransactionEvent;
    } catch {
      event = undefined;
    }
    return { tx: fields.get('tx') ?? '', event, retry: fields.has('at'), fields };
  };
  const streams = new Map<string, StreamItem[]>();
  for (const { topic, p, lane } of streamKeys) streams.set(`${topic}/${p}/${lane}`, (replies[at++] as [string, string[]][]).map(toItem));
  const dlq = new Map<string, StreamItem[]>();
  for (const stage of dlqNames) {
    const list: StreamItem[] = [];
    for (let p = 0; p < partitions; p++) list.push(...(replies[at++] as [string, string[]][]).map(toItem));
    dlq.set(stage, list);
  }
  const redisWallets = new Map<string, number>();
  for (const m of c.workload.merchants) {
    for (const [cur, bal] of Object.entries(replies[at++] as Record<string, string>)) redisWallets.set(`${m}/${cur}`, Number(bal));
  }
  const records = new Map<string, string>();
  for (const e of c.workload.events) {
    const r = replies[at++] as string | null;
    if (r !== null) records.set(e.id, r);
  }
  const like = `s${c.seed}-%`;
  const rows = (
    await c.pool.query<Pick<TransactionRow, 'id' | 'merchant_id' | 'type' | 'amount' | 'currency' | 'status' | 'failure_code' | 'failure_reason'>>(
      'SELECT id, merchant_id, type, amount::text, currency, status, failure_code, failure_reason FROM transactions WHERE merchant_id LIKE $1',
      [like],
    )
  ).rows;
  const lines = (
    await c.pool.query<{ tx_id: string; account: string; merchant_id: string; currency: string; amount: string }>(
      'SELECT tx_id, account, merchant_id, currency, amount::text FROM ledger_entries WHERE merchant_id LIKE $1',
      [like],
    )
  ).rows;
  const wallets = (
    await c.pool.query<{ merchant_id: string; currency: string; balance: string }>(
      'SELECT merchant_id, currency, balance::text FROM wallets WHERE merchant_id LIKE $1',
      [like],
    )
  ).rows;

  // --- 1. exactly one place
  const places = new Map<string, Place[]>();
  const place = (tx: string, p: Place) => places.set(tx, [...(places.get(tx) ?? []), p]);
  for (const r of rows) place(r.id, { where: 'row', status: r.status, code: r.failure_code, reason: r.failure_reason });
  for (const [stage, list] of dlq) {
    for (const d of list) place(d.tx, { where: 'dlq', stage, error: d.fields.get('error') ?? '', message: d.fields.get('message') ?? '' });
  }
  const describe = (p: Place) => (p.where === 'row' ? `row(${p.status}${p.code ? ` ${p.code}` : ''})` : `dead letter at ${p.stage} (${p.error}: ${p.message})`);
  // a failed row carries a stable code, a succeeded one none
  for (const r of rows) {
    if (r.status === 'failed' && !r.failure_code) bad(`failed ${r.type} ${r.id} has no failure_code (${r.failure_reason})`);
    if (r.status !== 'failed' && r.failure_code) bad(`${r.status} ${r.type} ${r.id} has failure_code ${r.failure_code}`);
  }
  for (const [tx, list] of places) {
    if (!accepted.has(tx)) bad(`${tx} is in ${list.map(describe).join(' and ')} but was never accepted`);
  }
  for (const e of c.workload.events) {
    const list = places.get(e.id) ?? [];
    if (list.length !== 1) bad(`${e.id} (${e.kind}) should be in exactly one place, is in ${list.length ? list.map(describe).join(' and ') : 'none'}`);
  }

  // --- 2. every stage: each input transaction passed on or dead-lettered, exactly once; no topic holds one twice
  const topicItems = (topic: string, originalsOnly: boolean) => {
    const out: StreamItem[] = [];
    for (let p = 0; p < partitions; p++) for (const lane of lanes) out.push(...streams.get(`${topic}/${p}/${lane}`)!.filter((i) => !originalsOnly || !i.retry));
    return out;
  };
  for (const topic of Object.keys(topology.topics)) {
    const seen = new Map<string, number>();
    for (const i of topicItems(topic, true)) seen.set(i.tx, (seen.get(i.tx) ?? 0) + 1);
    for (const [tx, n] of seen) if (n > 1) bad(`${tx} was appended to topic ${topic} ${n} times`);
  }
  const flows: [string, string, string | undefined][] = [
    ...STAGES.map((s): [string, string, string] => [s, topology.stages[s]!.input, topology.stages[s]!.output]),
    [SINK, topology.sinks[SINK]!.input, undefined],
  ];
  const rowIds = new Map<string, number>();
  for (const r of rows) rowIds.set(r.id, (rowIds.get(r.id) ?? 0) + 1);
  for (const [stage, input, output] of flows) {
    const inTx = new Set(topicItems(input, false).map((i) => i.tx));
    const passed = new Map<string, number>();
    if (output) for (const i of topicItems(output, true)) passed.set(i.tx, (passed.get(i.tx) ?? 0) + 1);
    else for (const [id, n] of rowIds) passed.set(id, n);
    const dead = new Map<string, number>();
    for (const d of dlq.get(stage)!) dead.set(d.tx, (dead.get(d.tx) ?? 0) + 1);
    for (const tx of inTx) {
      const n = (passed.get(tx) ?? 0) + (dead.get(tx) ?? 0);
      if (n !== 1)
        bad(`${stage}: input ${tx} was passed on ${passed.get(tx) ?? 0} times and dead-lettered ${dead.get(tx) ?? 0} times (want exactly one of them, once)`);
    }
    for (const tx of [...passed.keys(), ...dead.keys()]) if (!inTx.has(tx)) bad(`${stage}: ${tx} came out of it but was never in its input ${input}`);
  }

  // --- 3. per-merchant order through the ordering: key stages
  for (const stage of ORDERED_STAGES) {
    const { input, output } = topology.stages[stage]!;
    for (let p = 0; p < partitions; p++) {
      for (const lane of lanes) {
        const byMerchant = (items: StreamItem[]) => {
          const m = new Map<string, string[]>();
          const seen = new Set<string>();
          for (const i of items) {
            if (seen.has(i.tx) || !i.event) continue;
            seen.add(i.tx);
            m.set(i.event.merchant_id, [...(m.get(i.event.merchant_id) ?? []), i.tx]);
          }
          return m;
        };
        const ins = byMerchant(streams.get(`${input}/${p}/${lane}`)!);
        const outs = byMerchant(streams.get(`${output}/${p}/${lane}`)!.filter((i) => !i.retry));
        for (const [merchant, out] of outs) {
          const kept = new Set(out);
          const want = (ins.get(merchant) ?? []).filter((tx) => kept.has(tx));
          if (want.join() !== out.join()) {
            bad(`${stage} broke ${merchant}'s order in partition ${p} lane ${lane}: input order ${want.join(' ')}, output order ${out.join(' ')}`);
          }
        }
      }
    }
  }

  // --- 4. money
  const rowById = new Map(rows.map((r) => [r.id, r]));
  const linesByTx = new Map<string, typeof lines>();
  for (const l of lines) linesByTx.set(l.tx_id, [...(linesByTx.get(l.tx_id) ?? []), l]);
  for (const [tx, ls] of linesByTx) {
    const row = rowById.get(tx);
    if (!row) bad(`ledger lines for ${tx}, which has no row`);
    else if (row.status !== 'succeeded') bad(`ledger lines for ${tx}, whose row is ${row.status}`);
    const sum = ls.reduce((s, l) => s + Number(l.amount), 0);
    if (ls.length !== 2 || sum !== 0) bad(`${tx} has ${ls.length} ledger lines summing to ${sum} (want 2 summing to 0)`);
    const wallet = ls.find((l) => l.account === 'wallet');
    if (row && wallet) {
      const want = row.type === 'payin' ? Number(row.amount) : -Number(row.amount);
      if (Number(wallet.amount) !== want) bad(`${tx} (${row.type} ${row.amount}) moved the wallet by ${wallet.amount}`);
    }
  }
  for (const r of rows) if (r.status === 'succeeded' && !linesByTx.has(r.id)) bad(`succeeded ${r.type} ${r.id} has no ledger lines`);
  const expected = new Map<string, number>();
  for (const r of rows) {
    if (r.status !== 'succeeded') continue;
    const k = `${r.merchant_id}/${r.currency}`;
    expected.set(k, (expected.get(k) ?? 0) + (r.type === 'payin' ? Number(r.amount) : -Number(r.amount)));
  }
  const lineSums = new Map<string, number>();
  for (const l of lines)
    if (l.account === 'wallet') lineSums.set(`${l.merchant_id}/${l.currency}`, (lineSums.get(`${l.merchant_id}/${l.currency}`) ?? 0) + Number(l.amount));
  const pgWallets = new Map(wallets.map((w) => [`${w.merchant_id}/${w.currency}`, Number(w.balance)]));
  const allKeys = new Set([...expected.keys(), ...lineSums.keys(), ...pgWallets.keys(), ...redisWallets.keys()]);
  for (const k of [...allKeys].sort()) {
    const e = expected.get(k) ?? 0;
    const s = lineSums.get(k) ?? 0;
    const w = pgWallets.get(k) ?? 0;
    const r = redisWallets.get(k) ?? 0;
    if (e !== s || s !== w) bad(`money: ${k}: succeeded rows say ${e}, ledger lines sum to ${s}, wallets row says ${w}`);
    if (r !== w) bad(`money: ${k}: the ledger stage's Redis wallet says ${r}, the books (Postgres wallets) say ${w}`);
  }
  for (const e of c.workload.events) {
    const rec = records.get(e.id);
    const row = rowById.get(e.id);
    const decided = rec?.split('|')[0];
    if (decided === 'ok' && row?.status !== 'succeeded') {
      bad(
        `the ledger applied ${e.id} (${e.body.type} ${e.body.amount}: recorded ok, wallet moved) but it ended in ${(places.get(e.id) ?? []).map(describe).join(' and ') || 'no place'}`,
      );
    }
    if (decided === 'failed' && !(row?.status === 'failed' && row.failure_reason?.startsWith('ledger: '))) {
      bad(`the ledger failed ${e.id} (${rec}) but it ended in ${(places.get(e.id) ?? []).map(describe).join(' and ') || 'no place'}`);
    }
    if (row?.status === 'succeeded' && decided !== 'ok') bad(`${e.id} is a succeeded row without the ledger's ok record (${rec ?? 'none'})`);
  }
  const reversed = new Map<string, number>();
  for (const r of rows) {
    if (r.status !== 'succeeded' || (r.type !== 'refund' && r.type !== 'chargeback')) continue;
    const ref = accepted.get(r.id)?.body.reference ?? '';
    const payin = rowById.get(ref);
    if (payin?.status !== 'succeeded' || payin.type !== 'payin' || payin.merchant_id !== r.merchant_id) {
      bad(`${r.type} ${r.id} succeeded against ${ref}, which is not a succeeded payin of ${r.merchant_id}`);
      continue;
    }
    reversed.set(ref, (reversed.get(ref) ?? 0) + Number(r.amount));
  }
  for (const [ref, amount] of reversed) {
    const payin = Number(rowById.get(ref)!.amount);
    if (amount > payin) bad(`payin ${ref} of ${payin} was refunded/charged back ${amount} in all`);
  }

  // --- findings, and 5. the exact outcome on calm seeds
  const findings: Findings = { deadLetters: new Map(), infraDeadLetters: [] };
  for (const [stage, list] of dlq) {
    for (const d of list) {
      const error = d.fields.get('error') ?? '';
      const k = `${stage}/${error}`;
      findings.deadLetters.set(k, (findings.deadLetters.get(k) ?? 0) + 1);
      if (INFRA_ERRORS.has(error))
        findings.infraDeadLetters.push(`seed ${c.seed}: ${d.tx} dead-lettered by ${stage} for an infrastructure error: ${error}: ${d.fields.get('message')}`);
    }
  }
  if (c.calm) {
    for (const e of c.workload.events) {
      const got = places.get(e.id);
      if (got?.length !== 1) continue; // reported above
      const want = expectedPlace(e, rowById);
      if (!want(got[0]!)) bad(`calm seed: ${e.id} (${e.kind}${e.fail ? ` fail=${e.fail}` : ''}) ended as ${describe(got[0]!)}`);
    }
  }
  return { violations: v, findings };
}

/**
 * Where a transaction belongs when nothing went wrong: merchant mistakes end as failed rows with
 * their code (invalid: validate's, orphan: payin_not_found, since the sim appends without ingest's
 * check), only the flaky plugin's failures are dead letters; a refund or chargeback is a row,
 * succeeded only if its payin succeeded.
 */
function expectedPlace(e: SimEvent, rows: Map<string, { status: string; failure_reason: string | null }>): (p: Place) => boolean {
  const dead = (stage: string, error: string, message?: RegExp) => (p: Place) =>
    p.where === 'dlq' && p.stage === stage && p.error === error && (!message || message.test(p.message));
  const failed = (code: string | RegExp, reason: RegExp) => (p: Place) =>
    p.where === 'row' && p.status === 'failed' && (typeof code === 'string' ? p.code === code : code.test(p.code ?? '')) && reason.test(p.reason ?? '');
  if (e.kind === 'invalid') return failed(/^(currency_not_allowed|reference_missing)$/, /^validate: /);
  if (e.fail === 'fatal') return dead('flaky', 'FatalError');
  if (e.fail === 'always') return dead('flaky', 'RetryableError', new RegExp(`gave up after ${RETRY_ATTEMPTS.flaky} attempts`));
  if (e.kind === 'orphan') return failed('payin_not_found', /^ledger: /);
  if (e.kind === 'huge') return failed('risk_declined', /^risk: /);
  if (e.kind === 'refund' || e.kind === 'chargeback') {
    const payinOk = rows.get(e.body.reference ?? '')?.status === 'succeeded';
    return (p) => p.where === 'row' && (p.status !== 'succeeded' || payinOk);
  }
  return (p) => p.where === 'row';
}
