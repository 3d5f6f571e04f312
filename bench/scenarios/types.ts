// What a scenario gets (the run's context) and gives back (its figures, tables and comparisons).
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { BenchInstance } from '../lib/instance.ts';
import type { LoadGenerator } from '../lib/loadgen-client.ts';
import type { Progress } from '../lib/progress.ts';
import type { BenchTopology, TopologyVariant } from '../lib/topology.ts';
import type { Profile, ScenarioId } from '../profiles.ts';

export interface RunContext {
  profile: Profile;
  runId: string;
  /** Scratch files of this run (topologies, row dumps, CPU profiles). */
  tmpDir: string;
  redisUrl: string;
  databaseUrl: string;
  redis: Redis;
  pg: pg.Pool;
  loadgen: LoadGenerator;
  progress: Progress;
  /** Redis's pid when it runs on this machine (its CPU is measured), else undefined. */
  redisPid?: number;
  cpuProfDir?: string;
  /** Options given on the command line (e.g. soak --rate). */
  options: { rate?: number; durationMs?: number };
  topology(variant: TopologyVariant): BenchTopology;
  /** A fresh Rill instance (own prefix and schema), removed at the end of the run. */
  instance(label: string, variant: TopologyVariant): BenchInstance;
  /** Hand-offs between scenarios (e.g. the backlog the sink scenario drains). */
  shared: Map<string, unknown>;
  /** Results of the scenarios run so far. */
  results: ScenarioResult[];
}

/** Rill's figure beside a baseline's, and the target for their ratio (or an absolute target). */
export interface Comparison {
  id: string;
  title: string;
  scenario: ScenarioId;
  rill: { label: string; value: number | null; unit: string };
  baseline?: { label: string; value: number | null; unit: string };
  /** Another figure of Rill's worth drawing beside it (e.g. the rate kept up at any latency). */
  alt?: { label: string; value: number | null; unit: string };
  /** rill / baseline */
  ratio?: number | null;
  target?: { kind: 'ratio-min' | 'ratio-max' | 'min' | 'max'; value: number; text: string };
  met?: boolean | null;
  note?: string;
}

export interface LatencyFigure {
  label: string;
  /** Rill or a baseline. */
  who: 'rill' | 'baseline';
  p50: number;
  p99: number;
  p999?: number;
  /** A ceiling for p99 (ms), drawn on the chart. */
  p99Limit?: number;
}

/** A line chart over time (the soak's memory): series of [x, y] points, a fitted line per series where given. */
export interface TimeChart {
  title: string;
  /** Unit of y, e.g. MB. */
  unit: string;
  /** Unit of x, e.g. s. */
  xUnit: string;
  series: { label: string; points: [number, number][]; fit?: { from: number; to: number; slope: number; intercept: number; text: string } }[];
  /** Vertical markers, e.g. the end of the warm-up. */
  markers?: { x: number; label: string }[];
}

export interface Table {
  title: string;
  columns: string[];
  rows: (string | number | null)[][];
  note?: string;
}

export interface ScenarioResult {
  id: ScenarioId;
  title: string;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  seconds: number;
  comparisons: Comparison[];
  latency: LatencyFigure[];
  tables: Table[];
  /** Line charts over time, drawn under the bars (the soak's memory). */
  charts?: TimeChart[];
  /** Everything measured, for the JSON. */
  data: Record<string, unknown>;
  /** Problems found on the way (lost events, dead letters, errors): the smoke run fails on these. */
  problems: string[];
}

export type ScenarioOutput = Omit<ScenarioResult, 'id' | 'title' | 'status' | 'seconds'> & { status?: ScenarioResult['status']; reason?: string };

export interface Scenario {
  id: ScenarioId;
  title: string;
  run(ctx: RunContext): Promise<ScenarioOutput>;
}

export function ratioTarget(value: number): Comparison['target'] {
  return { kind: 'ratio-min', value, text: `≥ ${value}×` };
}

/** Fill in ratio and met. */
export function compare(c: Comparison): Comparison {
  const r = c.rill.value;
  const b = c.baseline?.value;
  if (c.baseline) c.ratio = r !== null && b !== null && b !== undefined && b > 0 ? r / b : null;
  if (c.target) {
    if (c.target.kind === 'ratio-min') c.met = c.ratio === null || c.ratio === undefined ? null : c.ratio >= c.target.value;
    else if (c.target.kind === 'ratio-max') c.met = c.ratio === null || c.ratio === undefined ? null : c.ratio <= c.target.value;
    else if (r === null) c.met = null;
    else c.met = c.target.kind === 'min' ? r >= c.target.value : r <= c.target.value;
  }
  return c;
}
