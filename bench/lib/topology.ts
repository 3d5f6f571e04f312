// The topology files a bench run uses: the project's topology.yaml (or --topology) with the
// per-merchant limits lifted, so a handful of bench merchants can carry a whole platform's load.
// The work per event stays the same: the rate-limit bucket and the risk velocity scripts still run
// for every event, only their thresholds are out of reach. Nothing else (stages, processors,
// ordering, batch sizes, partitions, sinks) is touched, except that merchant webhooks (the
// webhook-events stages, the webhooks sink and its topic) run only in the webhooks variant.
//
//   default   the shipped pipeline (validate → risk → ledger → sink), limits lifted
//   flood     the same with `payin` moved to the lowest lane (priority under flood)
//   noisy     the same with a `hold` stage (bench/plugins/hold.ts) between risk and ledger, which
//             never lets a payin marked hold=yes through (a merchant whose payins do not settle),
//             and refunds.await_payin 8s: the noisy-neighbour scenario
//   webhooks  the shipped pipeline with merchant webhooks on: the webhooks scenario
//   unchained the default with the top-level `chaining: false`: every stage reads and writes its
//             own topic (the processing scenario's chained-vs-unchained row)
//   soak      the same with everything Redis keeps per event (topic entries, idempotency, risk and
//             ledger records, refundable payins) kept 1 minute, so Redis reaches its steady state
//             within the soak's warm-up (with the shipped 7 days, 24 h and 180 days it grows with
//             every event for that long: memory = rate × retention × bytes per event)
import { readFileSync, writeFileSync } from 'node:fs';
import { parseTopology, planChains } from '../../core/index.ts';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { isMap, isSeq } from 'yaml';

export type TopologyVariant = 'default' | 'flood' | 'soak' | 'noisy' | 'webhooks' | 'unchained';

/** The noisy variant's wait of a refund for its payin. */
export const NOISY_AWAIT_PAYIN = '8s';

/** The soak variant's retention of topics and idempotency records. */
export const SOAK_RETENTION = '1m';
const SOAK_RETENTION_MS = 60_000;

export const LIFTED_RATE_LIMIT = { per_second: 10_000_000, burst: 10_000_000 };
const LIFTED_RISK = { per_minute_count: 1e9, per_minute_amount: 1e15, per_hour_count: 1e9, per_hour_amount: 1e15 };
/** The risk score still runs (its cost is measured), but never holds or blocks a bench event. */
const LIFTED_RISK_THRESHOLDS = { default: { review: 101, block: 101 } };

/** What the bench needs to know about a topology to watch it. */
export interface TopologySummary {
  ingestTopic: string;
  lanes: string[];
  topics: Record<string, { partitions: number; external: boolean }>;
  stages: Record<string, { input: string; output?: string; processor: string }>;
  sinks: Record<string, { input: string; type: string; table?: string }>;
  /** Lane of each transaction type (the first class listing it, else the lowest). */
  laneOf: Record<string, string>;
  /**
   * The ordered stages that hold partition leases: each chain's first stage (stages chained after
   * it run in its task, under its leases; core/topology/chains.ts).
   */
  leaseHolders: string[];
}

export interface BenchTopology {
  path: string;
  variant: TopologyVariant;
  summary: TopologySummary;
  /** What was changed from the base file, for the report. */
  changes: string[];
}

export function writeBenchTopology(base: string, dir: string, variant: TopologyVariant): BenchTopology {
  const doc = parseDocument(readFileSync(base, 'utf8'));
  const changes: string[] = [];
  doc.setIn(['ingest', 'rate_limit'], doc.createNode(LIFTED_RATE_LIMIT, { flow: true }));
  changes.push(`ingest.rate_limit → ${LIFTED_RATE_LIMIT.per_second}/s`);
  const stages = doc.get('stages');
  if (isMap(stages)) {
    for (const pair of stages.items) {
      const name = String((pair.key as { value?: unknown })?.value ?? pair.key);
      const stage = pair.value;
      if (!isMap(stage)) continue;
      const processor = String(stage.get('processor'));
      if (processor === 'risk') {
        for (const [k, v] of Object.entries(LIFTED_RISK)) stage.setIn(['config', k], v);
        stage.setIn(['config', 'thresholds'], doc.createNode(LIFTED_RISK_THRESHOLDS, { flow: true }));
        changes.push(`stages.${name}.config velocity limits and score thresholds → out of reach`);
      }
      // a plugin module path is relative to the topology file's folder: keep it pointing there
      if (processor.startsWith('.') || isAbsolute(processor)) stage.set('processor', resolve(dirname(base), processor));
    }
  }
  // merchant webhooks only where measured (the webhooks scenario): the other scenarios' figures
  // stay those of the payments pipeline alone
  if (variant !== 'webhooks') {
    const stagesMap = doc.get('stages');
    if (isMap(stagesMap)) stagesMap.items = stagesMap.items.filter((pair) => !(isMap(pair.value) && String(pair.value.get('processor')) === 'webhook-events'));
    const sinksMap = doc.get('sinks');
    if (isMap(sinksMap)) sinksMap.items = sinksMap.items.filter((pair) => !(isMap(pair.value) && String(pair.value.get('type')) === 'webhooks'));
    const topicsMap = doc.get('topics');
    if (isMap(topicsMap)) topicsMap.items = topicsMap.items.filter((pair) => String((pair.key as { value?: unknown })?.value ?? pair.key) !== 'webhook_events');
    changes.push('merchant webhooks off (the webhooks scenario measures them)');
  }
  if (variant === 'flood') {
    const prios = doc.get('priorities');
    if (isSeq(prios)) {
      for (const p of prios.items) {
        if (!isMap(p)) continue;
        const types = p.get('types');
        if (isSeq(types)) types.items = types.items.filter((t) => String((t as { value?: unknown })?.value ?? t) !== 'payin');
      }
    }
    changes.push('priorities: payin moved to the lowest lane');
  }
  if (variant === 'noisy') {
    const ledger = doc.getIn(['stages', 'ledger']);
    if (!isMap(ledger)) throw new Error('the noisy bench variant needs a stage named ledger');
    const scored = String(ledger.get('input'));
    doc.setIn(['topics', 'held'], doc.createNode({ partitions: doc.getIn(['topics', scored, 'partitions']), retention: { max_age: '1d' } }, { flow: true }));
    doc.setIn(
      ['stages', 'hold'],
      doc.createNode({
        input: scored,
        processor: new URL('../plugins/hold.ts', import.meta.url).pathname,
        output: 'held',
        ordering: 'key',
        batch: 500,
        retry: { attempts: 6, base: '1s', factor: 2, max: '4s', jitter: 'none' },
        dead_letter: {},
      }),
    );
    ledger.set('input', 'held');
    doc.setIn(['refunds', 'await_payin'], NOISY_AWAIT_PAYIN);
    changes.push(`stages.hold (bench/plugins/hold.ts) between risk and ledger; refunds.await_payin → ${NOISY_AWAIT_PAYIN}`);
  }
  if (variant === 'unchained') {
    doc.set('chaining', false);
    changes.push('chaining: false (the unchained run)');
  }
  if (variant === 'soak') {
    doc.setIn(['ingest', 'idempotency_ttl'], SOAK_RETENTION);
    const topics = doc.get('topics');
    if (isMap(topics)) {
      for (const pair of topics.items) {
        const topic = pair.value;
        if (!isMap(topic) || topic.get('external') === true) continue;
        topic.setIn(['retention', 'max_age'], SOAK_RETENTION);
      }
    }
    const stages = doc.get('stages');
    if (isMap(stages)) {
      for (const pair of stages.items) {
        const stage = pair.value;
        if (!isMap(stage)) continue;
        const processor = String(stage.get('processor'));
        if (processor === 'risk' || processor === 'ledger') stage.setIn(['config', 'record_ttl_ms'], SOAK_RETENTION_MS);
      }
    }
    doc.setIn(['refunds', 'window'], SOAK_RETENTION);
    changes.push(`topics' retention.max_age, ingest.idempotency_ttl, the risk and ledger records and the refund window → ${SOAK_RETENTION}`);
  }
  const text = doc.toString();
  const path = join(dir, `topology-${variant}.yaml`);
  writeFileSync(path, text);
  return { path, variant, summary: summarize(doc.toJS() as RawTopology, leaseHolders(text, path)), changes };
}

interface RawTopology {
  ingest: { topic: string };
  priorities: { name: string; types?: string[] }[];
  topics: Record<string, { partitions: number; external?: boolean }>;
  stages?: Record<string, { input: string; output?: string; processor: string }>;
  sinks?: Record<string, { input: string; type: string; table?: string }>;
}

/** Each task's first `ordering: key` stage, as the worker plans them. */
function leaseHolders(text: string, path: string): string[] {
  const t = parseTopology(text, path);
  return planChains(t)
    .map((c) => c.stages[0]!)
    .filter((s) => t.stages[s]!.ordering === 'key');
}

function summarize(t: RawTopology, holders: string[]): TopologySummary {
  const lanes = t.priorities.map((p) => p.name);
  const laneOf: Record<string, string> = {};
  for (const type of ['payin', 'payout', 'refund', 'chargeback']) {
    laneOf[type] = t.priorities.find((p) => p.types?.includes(type))?.name ?? lanes[lanes.length - 1]!;
  }
  const topics: TopologySummary['topics'] = {};
  for (const [name, topic] of Object.entries(t.topics)) topics[name] = { partitions: topic.partitions, external: Boolean(topic.external) };
  const stages: TopologySummary['stages'] = {};
  for (const [name, s] of Object.entries(t.stages ?? {})) stages[name] = { input: s.input, output: s.output, processor: s.processor };
  const sinks: TopologySummary['sinks'] = {};
  for (const [name, s] of Object.entries(t.sinks ?? {})) sinks[name] = { input: s.input, type: s.type, table: s.table };
  return { ingestTopic: t.ingest.topic, lanes, topics, stages, sinks, laneOf, leaseHolders: holders };
}

/** Stages in pipeline order: from the ingest topic, each stage's output feeding the next. */
export function stageOrder(s: TopologySummary): string[] {
  const order: string[] = [];
  let topic: string | undefined = s.ingestTopic;
  while (topic) {
    const next: [string, TopologySummary['stages'][string]] | undefined = Object.entries(s.stages).find(([n, st]) => st.input === topic && !order.includes(n));
    if (!next) break;
    order.push(next[0]);
    topic = next[1].output;
  }
  return order;
}

/** The Postgres sink (the one writing `transactions`). */
export function postgresSink(s: TopologySummary): { name: string; input: string } | undefined {
  const hit = Object.entries(s.sinks).find(([, k]) => k.type === 'postgres');
  return hit ? { name: hit[0], input: hit[1].input } : undefined;
}
