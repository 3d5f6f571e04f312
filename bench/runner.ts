// The bench runner: runs a profile's scenarios against Rill driven through its CLI and HTTP API
// (each scenario on its own RILL_PREFIX / RILL_PG_SCHEMA, removed afterwards), the baselines beside
// them, and writes bench/results/<date>-<profile>.{json,md,svg} and latest-<profile>.{json,md,svg}.
import { cpus, loadavg, release, totalmem, type } from 'node:os';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { PROFILES } from './profiles.ts';
import type { ProfileName, ScenarioId } from './profiles.ts';
import { summarizeCpuProfile } from './lib/cpuprofile.ts';
import { BenchInstance } from './lib/instance.ts';
import type { InstanceContext } from './lib/instance.ts';
import { LoadGenerator } from './lib/loadgen-client.ts';
import { ensureDir, RESULTS_DIR, ROOT } from './lib/paths.ts';
import { serverVersion } from './lib/pg-stats.ts';
import { stopAll } from './lib/procs.ts';
import { isLocalUrl } from './lib/proc-stats.ts';
import { Progress } from './lib/progress.ts';
import { deletePrefix, redisServerInfo } from './lib/redis-stats.ts';
import { resolveServices } from './lib/services.ts';
import { writeBenchTopology } from './lib/topology.ts';
import type { BenchTopology, TopologyVariant } from './lib/topology.ts';
import { renderMarkdown, targetsTable } from './report/markdown.ts';
import { renderSvg } from './report/svg.ts';
import type { BenchResults, CpuProfileSummary } from './report/types.ts';
import { endToEnd } from './scenarios/end-to-end.ts';
import { ingestBatch } from './scenarios/ingest-batch.ts';
import { ingestSingle } from './scenarios/ingest-single.ts';
import { priority } from './scenarios/priority.ts';
import { noisyNeighbour } from './scenarios/noisy-neighbour.ts';
import { processing } from './scenarios/processing.ts';
import { rollout } from './scenarios/rollout.ts';
import { scale } from './scenarios/scale.ts';
import { sink } from './scenarios/sink.ts';
import { soak } from './scenarios/soak.ts';
import { webhooks } from './scenarios/webhooks.ts';
import type { RunContext, Scenario, ScenarioResult } from './scenarios/types.ts';

export const SCENARIOS: Record<ScenarioId, Scenario> = {
  'ingest-single': ingestSingle,
  'ingest-batch': ingestBatch,
  processing,
  sink,
  'end-to-end': endToEnd,
  priority,
  'noisy-neighbour': noisyNeighbour,
  soak,
  rollout,
  scale,
  webhooks,
};

/** Instances a scenario leaves for later ones (the ingest fixture, the settled backlog). */
const HANDS_OVER: Partial<Record<ScenarioId, ScenarioId[]>> = {
  'ingest-single': ['ingest-batch'],
  processing: ['sink'],
};

export interface BenchOptions {
  profile: ProfileName;
  only?: ScenarioId[];
  /** --cpu-prof on the ingest, worker and bare-http processes, summarized in the report. */
  cpuProf?: boolean;
  /** A private redis-server for the run instead of REDIS_URL's. */
  ownRedis?: boolean;
  topology?: string;
  rate?: number;
  durationMs?: number;
  /** A terminal progress bar (default: when stderr is a TTY). */
  tty?: boolean;
}

export interface BenchOutcome {
  results: BenchResults;
  files: string[];
  ok: boolean;
}

function runIdNow(): string {
  return `b${Date.now().toString(36)}`;
}

export async function runBench(o: BenchOptions): Promise<BenchOutcome> {
  const profile = PROFILES[o.profile];
  const ids = o.only?.length ? o.only : profile.scenarios;
  const runId = runIdNow();
  const startedAt = new Date();
  const tmpDir = ensureDir(join(RESULTS_DIR, 'tmp', runId));
  const cpuProfDir = o.cpuProf ? ensureDir(join(tmpDir, 'cpuprof')) : undefined;
  const weights = ids.map((id) => profile.weights[id] ?? 10);
  const progress = new Progress(weights.reduce((a, b) => a + b, 0) + 3, process.stderr, o.tty);
  const say = (s: string) => progress.say(s);
  const load0 = loadavg();

  progress.phase('setting up', 3);
  const services = await resolveServices(say, { ownRedis: o.ownRedis });
  const redis = new Redis(services.redisUrl, { maxRetriesPerRequest: 3 });
  const pool = new pg.Pool({ connectionString: services.databaseUrl, max: 4, application_name: 'rill-bench' });
  const instances: { inst: BenchInstance; owner: ScenarioId }[] = [];
  let loadgen: LoadGenerator | undefined;
  let current: ScenarioId = ids[0]!;
  let aborted = false;

  const cleanupInstances = async (which: (e: { inst: BenchInstance; owner: ScenarioId }) => boolean) => {
    for (const e of instances.filter(which)) {
      await e.inst.cleanup();
      instances.splice(instances.indexOf(e), 1);
    }
  };
  const onSignal = () => {
    if (aborted) process.exit(130);
    aborted = true;
    progress.say('interrupted: stopping processes and removing the bench instances…');
    void (async () => {
      await stopAll(3_000);
      await cleanupInstances(() => true).catch(() => undefined);
      await deletePrefix(redis, `rillbench:${runId}`).catch(() => undefined);
      await services.stop();
      process.exit(130);
    })();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const results: ScenarioResult[] = [];
  let redisVersion = '?';
  let pgVersion = '?';
  const topologies = new Map<TopologyVariant, BenchTopology>();
  const base = o.topology ?? process.env.RILL_TOPOLOGY ?? join(ROOT, 'topology.yaml');
  try {
    const info = await redisServerInfo(redis);
    redisVersion = info.version;
    pgVersion = await serverVersion(pool);
    const redisPid = isLocalUrl(services.redisUrl) && info.pid && existsSync(`/proc/${info.pid}`) ? info.pid : undefined;
    loadgen = await LoadGenerator.start();
    const ictx: InstanceContext = { runId, redisUrl: services.redisUrl, databaseUrl: services.databaseUrl, redis, pg: pool, cpuProfDir };
    const ctx: RunContext = {
      profile,
      runId,
      tmpDir,
      redisUrl: services.redisUrl,
      databaseUrl: services.databaseUrl,
      redis,
      pg: pool,
      loadgen,
      progress,
      redisPid,
      cpuProfDir,
      options: { rate: o.rate, durationMs: o.durationMs },
      topology(variant) {
        let t = topologies.get(variant);
        if (!t) topologies.set(variant, (t = writeBenchTopology(base, tmpDir, variant)));
        return t;
      },
      instance(label, variant) {
        const inst = new BenchInstance(ictx, label, ctx.topology(variant));
        instances.push({ inst, owner: current });
        return inst;
      },
      shared: new Map(),
      results,
    };
    if (services.started.length) say(`started for this run: ${services.started.join(', ')}`);

    for (const [i, id] of ids.entries()) {
      if (aborted) break;
      current = id;
      const s = SCENARIOS[id];
      progress.phase(s.title, weights[i]!);
      const t0 = performance.now();
      let result: ScenarioResult;
      try {
        const out = await s.run(ctx);
        result = {
          id,
          title: s.title,
          status: out.status ?? 'ok',
          reason: out.reason,
          seconds: 0,
          comparisons: out.comparisons,
          latency: out.latency,
          tables: out.tables,
          charts: out.charts,
          data: out.data,
          problems: out.problems,
        };
      } catch (err) {
        const e = err as Error;
        result = {
          id,
          title: s.title,
          status: 'failed',
          reason: e.message.split('\n')[0],
          seconds: 0,
          comparisons: [],
          latency: [],
          tables: [],
          data: { error: e.stack ?? e.message },
          problems: [`${s.title}: ${e.message}`],
        };
      }
      result.seconds = Math.round((performance.now() - t0) / 100) / 10;
      results.push(result);
      say(
        `${result.status === 'ok' ? '✔' : result.status === 'skipped' ? '–' : '✘'} ${s.title} (${result.seconds} s)${result.reason ? `: ${result.reason}` : ''}`,
      );
      for (const c of result.comparisons) {
        if (c.target)
          say(
            `    ${c.title}: ${c.met === true ? 'met' : c.met === false ? 'missed' : 'n/a'}${c.ratio !== undefined && c.ratio !== null ? ` (${c.ratio.toFixed(2)}×)` : ''}`,
          );
      }
      // instances no later scenario needs go now: their idle processes would only add noise
      const later = new Set(ids.slice(i + 1));
      await cleanupInstances((e) => !(HANDS_OVER[e.owner] ?? []).some((x) => later.has(x)));
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await loadgen?.stop();
    await cleanupInstances(() => true);
    await stopAll();
    await deletePrefix(redis, `rillbench:${runId}`).catch(() => undefined);
    redis.disconnect();
    await pool.end();
    await services.stop();
  }

  let cpuProfiles: CpuProfileSummary[] | undefined;
  if (cpuProfDir) {
    // one folder per process; its main thread's profile is the largest file in it
    cpuProfiles = readdirSync(cpuProfDir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((d) => {
        const dir = join(cpuProfDir, d.name);
        const main = readdirSync(dir)
          .filter((f) => f.endsWith('.cpuprofile'))
          .map((f) => ({ f, size: statSync(join(dir, f)).size }))
          .sort((a, b) => b.size - a.size)[0];
        try {
          return main ? summarizeCpuProfile(join(dir, main.f), d.name) : undefined;
        } catch {
          return undefined;
        }
      })
      .filter((x): x is CpuProfileSummary => Boolean(x));
  }

  const finishedAt = new Date();
  const cpu = cpus();
  const res: BenchResults = {
    version: 1,
    profile: profile.name,
    runId,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    wallSeconds: Math.round((finishedAt.getTime() - startedAt.getTime()) / 100) / 10,
    machine: {
      cpus: cpu.length,
      cpuModel: cpu[0]?.model.trim() ?? '?',
      memoryGb: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
      node: process.version,
      os: `${type()} ${release()}`,
      redis: redisVersion,
      postgres: pgVersion,
      loadAverageAtStart: load0.map((x) => Math.round(x * 100) / 100),
      loadAverageAtEnd: loadavg().map((x) => Math.round(x * 100) / 100),
    },
    services: { redisUrl: services.redisUrl, databaseUrl: services.databaseUrl.replace(/:[^:@/]*@/, ':***@'), startedForRun: services.started },
    topology: { base: relative(ROOT, base) || base, changes: [...new Set([...topologies.values()].flatMap((t) => t.changes))] },
    scenarios: results,
    comparisons: results.flatMap((r) => r.comparisons),
    problems: results.flatMap((r) => r.problems),
    cpuProfiles,
  };
  progress.finish();
  // scratch files go, CPU profiles stay (their summaries are in the report)
  for (const f of readdirSync(tmpDir)) if (f !== 'cpuprof') rmSync(join(tmpDir, f), { recursive: true, force: true });
  if (!cpuProfDir) rmSync(tmpDir, { recursive: true, force: true });
  const files = writeResults(res, o.only?.length ? o.only.join('+') : undefined);
  const ok = !aborted && res.problems.length === 0 && results.every((r) => r.status !== 'failed');
  return { results: res, files, ok };
}

/** A partial run (--only) gets its own file names and leaves latest-<profile> alone. */
function writeResults(r: BenchResults, partial?: string): string[] {
  ensureDir(RESULTS_DIR);
  const stem = `${r.startedAt.slice(0, 10)}-${r.profile}${partial ? `-${partial}` : ''}`;
  const written: string[] = [];
  const put = (name: string, text: string) => {
    const p = join(RESULTS_DIR, name);
    writeFileSync(p, text);
    written.push(relative(ROOT, p));
  };
  const json = `${JSON.stringify(r, null, 2)}\n`;
  const svg = renderSvg(r);
  put(`${stem}.json`, json);
  put(`${stem}.svg`, svg);
  put(`${stem}.md`, renderMarkdown(r, `${stem}.svg`));
  if (partial) return written;
  put(`latest-${r.profile}.json`, json);
  put(`latest-${r.profile}.svg`, svg);
  put(`latest-${r.profile}.md`, renderMarkdown(r, `latest-${r.profile}.svg`));
  return written;
}

/** The targets table, for the terminal. */
export function summaryText(r: BenchResults): string {
  return targetsTable(r.comparisons);
}
