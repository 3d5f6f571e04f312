// The JSON a run writes (bench/results/<date>-<profile>.json).
import type { ProfileName } from '../profiles.ts';
import type { Comparison, ScenarioResult } from '../scenarios/types.ts';

export interface CpuProfileSummary {
  process: string;
  file: string;
  totalMs: number;
  /** Self time by function (top entries). */
  top: { fn: string; where: string; selfMs: number; share: number }[];
  /** Self time by area: project folders, packages, node internals, GC, idle. */
  byArea: { area: string; selfMs: number; share: number }[];
}

export interface BenchResults {
  version: 1;
  profile: ProfileName;
  runId: string;
  startedAt: string;
  finishedAt: string;
  wallSeconds: number;
  machine: {
    cpus: number;
    cpuModel: string;
    memoryGb: number;
    node: string;
    os: string;
    redis: string;
    postgres: string;
    loadAverageAtStart: number[];
    loadAverageAtEnd: number[];
  };
  services: { redisUrl: string; databaseUrl: string; startedForRun: string[] };
  topology: { base: string; changes: string[] };
  scenarios: ScenarioResult[];
  comparisons: Comparison[];
  problems: string[];
  cpuProfiles?: CpuProfileSummary[];
}
