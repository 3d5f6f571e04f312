// Bench profiles: how long and how hard each scenario runs.
//   smoke     a few minutes: every scenario and baseline runs briefly; proves the bench works
//             (CI runs it) and asserts nothing about speed
//   standard  about 5 minutes: the figures the README shows
//   soak      10 minutes at half the highest sustainable end-to-end rate: memory stays flat
export type ProfileName = 'smoke' | 'standard' | 'soak';
/** Every scenario, in the order the bench runs them (and `rill bench --help` lists them). */
export const SCENARIO_IDS = [
  'ingest-single',
  'ingest-batch',
  'processing',
  'sink',
  'end-to-end',
  'priority',
  'noisy-neighbour',
  'soak',
  'rollout',
  'scale',
  'webhooks',
] as const;
export type ScenarioId = (typeof SCENARIO_IDS)[number];

export interface Profile {
  name: ProfileName;
  scenarios: ScenarioId[];
  /** Merchants (API keys) the load is spread over. */
  merchants: number;
  ingest: {
    concurrencies: number[];
    /** The concurrency the ratio against bare node:http is taken at. */
    ratioConcurrency: number;
    durationMs: number;
    warmupMs: number;
    /** Open-loop rates tried, as shares of the best closed-loop req/s. */
    searchFactors: number[];
    searchStepMs: number;
  };
  batch: { batchSize: number; concurrency: number; durationMs: number; warmupMs: number };
  xadd: { requests: number; clients: number; pipeline: number };
  processing: { events: number };
  bullmq: { events: number; concurrency: number };
  /** The NATS JetStream chain (bench/baselines/nats-chain.ts): events, and the stages' fetch batch (Rill's stages take 500). */
  nats: { events: number; batch: number };
  e2e: {
    startRate: number;
    batchStartRate: number;
    batchSize: number;
    growth: number;
    maxSteps: number;
    bisect: boolean;
    stepMs: number;
    warmupMs: number;
    drainTimeoutMs: number;
  };
  priority: { seedsPerMerchant: number; criticalRate: number; quietMs: number; floodMs: number; defaultFloodRate: number };
  /** Good merchant's refunds/s, the stuck merchant's refunds/s, each phase's length, seeded payins. */
  noisy: { goodRate: number; stuckRate: number; phaseMs: number; seeds: number };
  soak: { durationMs: number; warmupMs: number; sampleMs: number; defaultRate: number };
  /** Payins/s; steady phase; replacement rounds (every process each); pause after a round; kill phase after the kill. */
  rollout: { rate: number; steadyMs: number; rounds: number; settleMs: number; killMs: number };
  /** Events in the backlog; payins/s arriving meanwhile; one worker's baseline; how long to watch for the throughput rise. */
  scale: { backlog: number; trickleRate: number; baselineMs: number; observeMs: number };
  /** Merchant webhooks: events delivered to a local receiver (one endpoint per merchant); `compare`: also the full pipeline with and without webhooks. */
  webhooks: { events: number; compare: boolean };
  /** Expected share of wall time per scenario (the progress bar's weights). */
  weights: Partial<Record<ScenarioId, number>>;
}

/** The latency ceiling a "sustainable" rate must keep (ingest p99, ms): the target. */
export const P99_LIMIT_MS = 20;

/** Every scenario but the soak (its own profile). */
const ALL: ScenarioId[] = SCENARIO_IDS.filter((s) => s !== 'soak');

const STANDARD: Profile = {
  name: 'standard',
  scenarios: ALL,
  merchants: 16,
  ingest: {
    concurrencies: [10, 50, 100],
    ratioConcurrency: 50,
    durationMs: 6_000,
    warmupMs: 1_500,
    searchFactors: [0.5, 0.7, 0.85, 1.0],
    searchStepMs: 5_000,
  },
  batch: { batchSize: 1_000, concurrency: 4, durationMs: 8_000, warmupMs: 2_000 },
  xadd: { requests: 1_000_000, clients: 50, pipeline: 16 },
  processing: { events: 100_000 },
  bullmq: { events: 30_000, concurrency: 100 },
  nats: { events: 30_000, batch: 500 },
  e2e: {
    startRate: 3_000,
    batchStartRate: 6_000,
    batchSize: 100,
    growth: 1.3,
    maxSteps: 7,
    bisect: true,
    stepMs: 12_000,
    warmupMs: 2_000,
    drainTimeoutMs: 60_000,
  },
  priority: { seedsPerMerchant: 2, criticalRate: 100, quietMs: 5_000, floodMs: 15_000, defaultFloodRate: 8_000 },
  noisy: { goodRate: 10, stuckRate: 20, phaseMs: 12_000, seeds: 20 },
  soak: { durationMs: 600_000, warmupMs: 120_000, sampleMs: 10_000, defaultRate: 2_000 },
  rollout: { rate: 300, steadyMs: 15_000, rounds: 2, settleMs: 3_000, killMs: 12_000 },
  scale: { backlog: 120_000, trickleRate: 200, baselineMs: 3_000, observeMs: 8_000 },
  webhooks: { events: 20_000, compare: true },
  weights: {
    'ingest-single': 75,
    'ingest-batch': 15,
    processing: 60,
    sink: 15,
    'end-to-end': 100,
    priority: 30,
    'noisy-neighbour': 40,
    rollout: 70,
    scale: 40,
    webhooks: 20,
  },
};

export const PROFILES: Record<ProfileName, Profile> = {
  smoke: {
    name: 'smoke',
    scenarios: ALL,
    merchants: 2,
    ingest: { concurrencies: [50], ratioConcurrency: 50, durationMs: 1_000, warmupMs: 300, searchFactors: [0.5], searchStepMs: 1_000 },
    batch: { batchSize: 200, concurrency: 2, durationMs: 1_000, warmupMs: 300 },
    xadd: { requests: 50_000, clients: 50, pipeline: 16 },
    processing: { events: 2_000 },
    bullmq: { events: 1_000, concurrency: 100 },
    nats: { events: 1_000, batch: 500 },
    e2e: { startRate: 300, batchStartRate: 1_000, batchSize: 50, growth: 2, maxSteps: 1, bisect: false, stepMs: 1_500, warmupMs: 500, drainTimeoutMs: 20_000 },
    priority: { seedsPerMerchant: 1, criticalRate: 40, quietMs: 1_000, floodMs: 1_500, defaultFloodRate: 800 },
    noisy: { goodRate: 10, stuckRate: 20, phaseMs: 2_000, seeds: 5 },
    soak: { durationMs: 20_000, warmupMs: 5_000, sampleMs: 2_000, defaultRate: 300 },
    rollout: { rate: 100, steadyMs: 2_000, rounds: 1, settleMs: 500, killMs: 2_000 },
    scale: { backlog: 20_000, trickleRate: 50, baselineMs: 500, observeMs: 1_000 },
    webhooks: { events: 500, compare: false },
    weights: {
      'ingest-single': 10,
      'ingest-batch': 3,
      processing: 13,
      sink: 5,
      'end-to-end': 7,
      priority: 8,
      'noisy-neighbour': 15,
      rollout: 15,
      scale: 8,
      webhooks: 5,
    },
  },
  standard: STANDARD,
  // the soak finds the end-to-end rate again, with fewer steps, then holds half of it for 10 minutes
  soak: {
    ...STANDARD,
    name: 'soak',
    scenarios: ['soak'],
    ingest: { concurrencies: [50], ratioConcurrency: 50, durationMs: 5_000, warmupMs: 1_000, searchFactors: [0.5], searchStepMs: 5_000 },
    batch: { ...STANDARD.batch, durationMs: 5_000, warmupMs: 1_000 },
    xadd: { ...STANDARD.xadd, requests: 100_000 },
    processing: { events: 10_000 },
    bullmq: { ...STANDARD.bullmq, events: 5_000 },
    nats: { ...STANDARD.nats, events: 5_000 },
    e2e: { ...STANDARD.e2e, startRate: 2_000, maxSteps: 6, bisect: false, stepMs: 10_000 },
    webhooks: { ...STANDARD.webhooks, events: 5_000 },
    weights: { soak: 660 },
  },
};
