// The simulated pipeline: 2 partitions, two lanes (critical: refunds and chargebacks; normal: the
// rest, so a refund can overtake its payin and wait for it at the ledger), and
//   transactions → validate (key) → validated → flaky (none, the plugin-like fixture processor,
//   out-of-line retries through its delay set) → checked → risk (key) → scored → ledger (key)
//   → settled → postgres sink.
// Batch sizes and consumer counts vary by seed. Timeouts are fake-clock times; the lease TTL is
// also redis-semaphore's refresh period in real time (a third of it): long enough that a refresh
// timer hardly ever fires during a seed, and harmless when it does (see redis-proxy.ts).
import { fileURLToPath } from 'node:url';
import { parseTopology } from '../../core/topology/load.ts';
import type { Topology } from '../../core/topology/schema.ts';
import type { Random } from './prng.ts';

export const PARTITIONS = 2;
export const FLAKY_PROCESSOR = fileURLToPath(new URL('../fixtures/processors/flaky.ts', import.meta.url));
export const STAGES = ['validate', 'flaky', 'risk', 'ledger'] as const;
export const ORDERED_STAGES = ['validate', 'risk', 'ledger'] as const;
export const SINK = 'postgres';
export const LEASE_TTL_MS = 30_000;
export const VISIBILITY_MS = 20_000;
export const RETRY_ATTEMPTS = { validate: 3, flaky: 3, risk: 3, ledger: 4 } as const;

export interface Shape {
  batch: Record<(typeof STAGES)[number], number>;
  sinkRows: number;
  /** Consumer loops (simulated processes) per stage and for the sink. */
  consumers: Record<string, number>;
}

export function chooseShape(rng: Random): Shape {
  const b = () => rng.pick([1, 2, 3, 5, 8]);
  const c = () =>
    rng.weighted([
      [1, 2],
      [2, 3],
    ]);
  return {
    batch: { validate: b(), flaky: b(), risk: b(), ledger: b() },
    sinkRows: rng.pick([1, 3, 5, 10]),
    consumers: { validate: c(), flaky: c(), risk: c(), ledger: c(), [SINK]: c() },
  };
}

let base: Topology | undefined;

/** The topology with the shape's batch sizes (parsed and checked once, then copied). */
export function simTopology(shape: Shape): Topology {
  base ??= parse();
  const t = structuredClone(base);
  for (const name of STAGES) t.stages[name]!.batch = shape.batch[name];
  const sink = t.sinks[SINK]!;
  if (sink.type === 'postgres') sink.batch_rows = shape.sinkRows;
  return t;
}

function parse(): Topology {
  const shape: Shape = { batch: { validate: 1, flaky: 1, risk: 1, ledger: 1 }, sinkRows: 1, consumers: {} };
  const retry = (attempts: number) => `{ attempts: ${attempts}, base: 100ms, factor: 2, max: 2s, jitter: full }`;
  const text = `
version: 1
ingest: { topic: transactions }
priorities:
  - { name: critical, types: [chargeback, refund], min_share: 0 }
  - { name: normal, types: [], min_share: 0.1 }
topics:
  transactions: { partitions: ${PARTITIONS} }
  validated: { partitions: ${PARTITIONS} }
  checked: { partitions: ${PARTITIONS} }
  scored: { partitions: ${PARTITIONS} }
  settled: { partitions: ${PARTITIONS} }
  alerts: { partitions: ${PARTITIONS}, external: true }
stages:
  validate:
    input: transactions
    processor: validate
    output: validated
    ordering: key
    batch: ${shape.batch.validate}
    retry: ${retry(RETRY_ATTEMPTS.validate)}
    visibility_timeout: ${VISIBILITY_MS}
    lease_ttl: ${LEASE_TTL_MS}
    dead_letter: {}
    config: { currencies: [USD, EUR] }
  flaky:
    input: validated
    processor: ${JSON.stringify(FLAKY_PROCESSOR)}
    output: checked
    ordering: none
    batch: ${shape.batch.flaky}
    retry: ${retry(RETRY_ATTEMPTS.flaky)}
    visibility_timeout: ${VISIBILITY_MS}
    dead_letter: {}
  risk:
    input: checked
    processor: risk
    output: scored
    ordering: key
    batch: ${shape.batch.risk}
    retry: ${retry(RETRY_ATTEMPTS.risk)}
    visibility_timeout: ${VISIBILITY_MS}
    lease_ttl: ${LEASE_TTL_MS}
    dead_letter: {}
    config: { per_hour_amount: 5000000 }
  ledger:
    input: scored
    processor: ledger
    output: settled
    ordering: key
    batch: ${shape.batch.ledger}
    retry: ${retry(RETRY_ATTEMPTS.ledger)}
    visibility_timeout: ${VISIBILITY_MS}
    lease_ttl: ${LEASE_TTL_MS}
    dead_letter: {}
    config: { alerts_topic: alerts, low_balance: { default: 2000 } }
sinks:
  ${SINK}:
    type: postgres
    input: settled
    batch_rows: ${shape.sinkRows}
    max_wait: 200ms
    visibility_timeout: ${VISIBILITY_MS}
`;
  return parseTopology(text, 'sim-topology.yaml');
}
