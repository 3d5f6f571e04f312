// The latest standard bench report (bench/results/latest-standard.json and its SVG chart), as
// `rill bench` wrote it; the console shows its targets table and the chart.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** bench/results/ of the checkout: beside the sources, or two levels up from a build in dist/. */
export const BENCH_DIR =
  [new URL('../../bench/results/', import.meta.url), new URL('../../../bench/results/', import.meta.url)].find((u) => existsSync(u)) ??
  new URL('../../bench/results/', import.meta.url);

export interface BenchComparison {
  title: string;
  rill: { label: string; value: number; unit: string } | null;
  baseline: { label: string; value: number; unit: string } | null;
  ratio: number | null;
  target: { text: string } | null;
  met: boolean | null;
}

export interface BenchSummary {
  profile: string;
  startedAt: string;
  wallSeconds: number;
  machine: string;
  comparisons: BenchComparison[];
}

export async function latestBench(dir: URL = BENCH_DIR): Promise<BenchSummary | undefined> {
  let raw: string;
  try {
    raw = await readFile(new URL('latest-standard.json', dir), 'utf8');
  } catch {
    return undefined;
  }
  const j = JSON.parse(raw) as {
    profile: string;
    startedAt: string;
    wallSeconds: number;
    machine?: { cpus?: number; cpuModel?: string; node?: string; redis?: string; postgres?: string };
    comparisons?: BenchComparison[];
  };
  const m = j.machine ?? {};
  return {
    profile: j.profile,
    startedAt: j.startedAt,
    wallSeconds: j.wallSeconds,
    machine: `${m.cpus ?? '?'} × ${m.cpuModel ?? '?'}, Node ${m.node ?? '?'}, Redis ${m.redis ?? '?'}, PostgreSQL ${m.postgres ?? '?'}`,
    comparisons: j.comparisons ?? [],
  };
}

export async function latestBenchChart(dir: URL = BENCH_DIR): Promise<string | undefined> {
  return readFile(new URL('latest-standard.svg', dir), 'utf8').catch(() => undefined);
}
