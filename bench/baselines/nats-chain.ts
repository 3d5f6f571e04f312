// Peer baseline: the same 3-stage chain (validate → risk → ledger-like work) on NATS JetStream, as
// a user would build it instead of Rill: one stream per topic (in, validated, scored, settled), one
// durable pull consumer per stage with explicit acks, each stage in a loop of fetch a batch → do
// the work → publish every result to the next stream (awaiting JetStream's publish acks) → ack the
// inputs (at-least-once, like a Rill stage: the output is stored before the input is acked). One
// consumer per stage keeps each merchant's order. The stages' state (velocity counters, balances,
// decisions) lives in this process's memory: lighter than Rill's atomic Redis scripts, and lost on
// a crash. The backlog (the same entries ingest appends) is published first; the clock runs from
// the first fetch to the last event settled; CPU (this process's, and a local nats-server's from
// /proc) over the stages' run alone.
//
//   node --import tsx bench/baselines/nats-chain.ts --prefix rb_x [--events N] [--batch 500] [--storage file|memory]
// NATS_URL picks the server (default nats://127.0.0.1:4222). Prints one JSON line: { eventsPerSec,
// events, completed, ms, ... }. Its streams are deleted afterwards.
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { AckPolicy, connect, DeliverPolicy, StorageType } from 'nats';
import type { JetStreamClient, JsMsg, PubAck } from 'nats';
import { entryFields, merchantIds, transactionBody } from '../lib/payload.ts';
import { isLocalUrl, pidsByName } from '../lib/proc-stats.ts';
import { runBaseline, startCpu } from './run-baseline.ts';

const TOPICS = ['in', 'validated', 'scored', 'settled'] as const;
const TYPES = new Set(['payin', 'payout', 'refund', 'chargeback']);
const CURRENCIES = new Set(['USD', 'EUR', 'GBP', 'JPY', 'CHF', 'CAD', 'AUD']);

interface Ev {
  id: string;
  type: string;
  merchant_id: string;
  amount: number;
  currency: string;
  status: string;
  risk_score?: number;
  failure_code?: string;
}

/** The work of each stage, on one event (JSON in, JSON out). */
function stages(): ((ev: Ev) => Ev)[] {
  const velocity = new Map<string, { minute: number; count: number; amount: number }>();
  const balances = new Map<string, number>();
  const decisions = new Map<string, string>();
  const validate = (ev: Ev): Ev => {
    const ok = TYPES.has(ev.type) && Number.isInteger(ev.amount) && ev.amount > 0 && CURRENCIES.has(ev.currency) && typeof ev.merchant_id === 'string';
    return ok ? { ...ev, status: 'processing' } : { ...ev, status: 'failed', failure_code: 'invalid' };
  };
  const risk = (ev: Ev): Ev => {
    const minute = Math.floor(Date.now() / 60_000);
    let v = velocity.get(ev.merchant_id);
    if (!v || v.minute !== minute) velocity.set(ev.merchant_id, (v = { minute, count: 0, amount: 0 }));
    v.count++;
    v.amount += ev.amount;
    return { ...ev, risk_score: Math.min(100, Math.round((v.count / 1e9) * 100)) };
  };
  const ledger = (ev: Ev): Ev => {
    const seen = decisions.get(ev.id); // a redelivery gets the same answer
    if (seen) return { ...ev, status: seen };
    const key = `${ev.merchant_id}:${ev.currency}`;
    const bal = balances.get(key) ?? 0;
    let status = 'succeeded';
    if (ev.status === 'failed') status = 'failed';
    else if (ev.type === 'payin') balances.set(key, bal + ev.amount);
    else if (bal >= ev.amount) balances.set(key, bal - ev.amount);
    else status = 'failed';
    decisions.set(ev.id, status);
    return { ...ev, status };
  };
  return [validate, risk, ledger];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      prefix: { type: 'string' },
      events: { type: 'string', default: '30000' },
      batch: { type: 'string', default: '500' },
      storage: { type: 'string', default: 'file' },
    },
  });
  if (!values.prefix || !/^[A-Za-z0-9_-]+$/.test(values.prefix)) throw new Error('--prefix (letters, digits, _ and -) is required');
  const events = Number(values.events);
  const batch = Number(values.batch);
  const prefix = values.prefix;
  const url = process.env.NATS_URL || 'nats://127.0.0.1:4222';
  const nc = await connect({ servers: url, timeout: 3_000 });
  const jsm = await nc.jetstreamManager();
  const js: JetStreamClient = nc.jetstream();
  const stream = (t: string) => `${prefix}_${t}`;
  const subject = (t: string) => `${prefix}.${t}`;
  const storage = values.storage === 'memory' ? StorageType.Memory : StorageType.File;
  try {
    for (const t of TOPICS) await jsm.streams.add({ name: stream(t), subjects: [subject(t)], storage });
    for (const t of TOPICS.slice(0, 3)) {
      await jsm.consumers.add(stream(t), { durable_name: 'stage', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, max_ack_pending: 20_000 });
    }

    // the backlog: the same entries ingest would have appended, published with their acks awaited per window
    const merchants = merchantIds(16);
    const pubStart = performance.now();
    for (let i = 0; i < events; i += 1000) {
      const acks: Promise<PubAck>[] = [];
      for (let j = i; j < Math.min(events, i + 1000); j++) {
        const [, , , ev] = entryFields(transactionBody(j, merchants[j % merchants.length]!, 'default'));
        acks.push(js.publish(subject('in'), ev));
      }
      await Promise.all(acks);
    }
    const publishMs = performance.now() - pubStart;
    // CPU of the chain alone (the backlog's publishing left out): this process and a local nats-server
    const cpuUsed = startCpu(isLocalUrl(url) ? pidsByName('nats-server') : []);

    const work = stages();
    let first = 0;
    let settled = 0;
    const deadline = Date.now() + Math.max(120_000, events * 2);
    const runStage = async (k: number) => {
      const consumer = await js.consumers.get(stream(TOPICS[k]!), 'stage');
      const next = subject(TOPICS[k + 1]!);
      const fn = work[k]!;
      let done = 0;
      while (done < events && Date.now() < deadline) {
        const msgs: JsMsg[] = [];
        for await (const m of await consumer.fetch({ max_messages: batch, expires: 1_000 })) msgs.push(m);
        if (!msgs.length) continue;
        if (!first) first = performance.now();
        await Promise.all(msgs.map((m) => js.publish(next, JSON.stringify(fn(m.json<Ev>())))));
        for (const m of msgs) m.ack();
        done += msgs.length;
        if (k === 2) settled = done;
      }
    };
    await Promise.all([0, 1, 2].map(runStage));
    const ms = performance.now() - first;
    const cpu = cpuUsed();
    await nc.flush();
    console.log(
      JSON.stringify({
        tool: 'nats-jetstream',
        server: nc.info?.version ?? '?',
        storage: values.storage === 'memory' ? 'memory' : 'file',
        stages: 3,
        batch,
        events,
        completed: settled,
        ms: Math.round(ms),
        eventsPerSec: (settled / ms) * 1000,
        publishPerSec: (events / publishMs) * 1000,
        cpuUs: cpu.own,
        serverCpuUs: cpu.server,
      }),
    );
  } finally {
    for (const t of TOPICS) await jsm.streams.delete(stream(t)).catch(() => undefined);
    await nc.close();
  }
}

runBaseline('nats-chain', main);
