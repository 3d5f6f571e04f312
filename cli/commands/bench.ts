// `rill bench [--profile smoke|standard|soak]`: the bench suite (bench/): Rill driven through its
// CLI and HTTP API, with baselines, written to bench/results/. Exit 1 when a scenario failed or
// found a correctness problem (lost events, errors); missed performance targets are reported only.
import { parseArgs } from 'node:util';
import { ConfigError } from '../../core/errors.ts';
import { parseDuration } from '../../core/duration.ts';
import { PROFILES, SCENARIO_IDS } from '../../bench/profiles.ts';
import type { ProfileName, ScenarioId } from '../../bench/profiles.ts';

const HELP = `usage: rill bench [--profile smoke|standard|soak] [--only a,b] [--cpu-prof] [--own-redis]
                  [--topology FILE] [--rate N] [--duration 10m] [--no-tty]

Runs the bench suite against the configured Redis and Postgres (REDIS_URL, DATABASE_URL), or
local ones it starts when none answers. Each scenario runs its own Rill instance (RILL_PREFIX,
RILL_PG_SCHEMA) through \`rill ingest\`, \`rill worker\` and \`rill sink\` child processes, the load
generator in a process of its own, and removes it afterwards.

  --profile    smoke: under a minute, proves the bench works (CI); standard: about 5 minutes
               (default); soak: 10 minutes at half the sustainable rate, memory must stay flat
  --only       scenarios to run: ${SCENARIO_IDS.join(', ')}
  --cpu-prof   CPU-profile the ingest, worker and baseline server processes (node --cpu-prof);
               summaries in the report, profiles in bench/results/tmp/<run>/cpuprof
  --own-redis  a private redis-server for the run (nothing else on it)
  --rate N     soak: events/s (default: half the latest standard run's sustained rate)
  --duration   soak: how long (default 10m)

Writes bench/results/<date>-<profile>.json, .md (every ratio) and .svg (the chart), and
latest-<profile>.*; prints the targets table.`;

export async function benchCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      profile: { type: 'string', default: 'standard' },
      only: { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      'own-redis': { type: 'boolean' },
      topology: { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string' },
      'no-tty': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const profile = values.profile as ProfileName;
  if (!(profile in PROFILES)) throw new ConfigError(`--profile must be smoke, standard or soak, got "${values.profile}"`);
  const known: readonly string[] = SCENARIO_IDS;
  const only = values.only
    ? values.only
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : undefined;
  for (const s of only ?? []) if (!known.includes(s as ScenarioId)) throw new ConfigError(`--only: unknown scenario "${s}" (${known.join(', ')})`);
  const rate = values.rate === undefined ? undefined : Number(values.rate);
  if (rate !== undefined && (!Number.isFinite(rate) || rate <= 0)) throw new ConfigError(`--rate takes events per second, got "${values.rate}"`);
  const durationMs = values.duration === undefined ? undefined : parseDuration(values.duration);
  if (values.duration !== undefined && !durationMs) throw new ConfigError(`--duration takes a duration like 90s or 10m, got "${values.duration}"`);

  const { runBench, summaryText } = await import('../../bench/runner.ts');
  const out = await runBench({
    profile,
    only: only as ScenarioId[] | undefined,
    cpuProf: values['cpu-prof'],
    ownRedis: values['own-redis'],
    topology: values.topology,
    rate,
    durationMs,
    tty: values['no-tty'] ? false : undefined,
  });
  console.log(summaryText(out.results));
  console.log('');
  for (const f of out.files) console.log(`wrote ${f}`);
  if (!out.ok) {
    const problems = out.results.problems;
    console.error(
      `rill bench: ${problems.length ? problems[0] : 'a scenario failed'}${problems.length > 1 ? ` (and ${problems.length - 1} more problems, see the report)` : ''}`,
    );
    return 1;
  }
  return 0;
}
