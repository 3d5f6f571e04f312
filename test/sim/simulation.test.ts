// Deterministic simulation of the pipeline (test/sim/world.ts): seeds 1..1000 by default, each a
// few dozen transactions through validate → flaky → risk → ledger → Postgres, with Redis and
// Postgres faults, crashes and restarts, then a fault-free drain and the invariants of design §2
// (test/sim/invariants.ts). A seed's behaviour depends on its number only, so seeds run side by
// side (several per process, one process per core: test/sim/shard.ts) and a failing one replays alone.
// Part of `npm test` (1,000 seeds); `npm run test:sim` runs it alone.
//   SIM_SEEDS=N npm run test:sim   run seeds 1..N
//   SIM_SEED=k npm run test:sim    run seed k alone, in this process, and print its trace
//   SIM_WORKERS=w                  processes (default: 2, or 1 on a single core)
//   SIM_CONCURRENCY=c              seeds side by side per process (default 8)
//   SIM_TRACE=1                    print the trace of every failing seed (default: the first only)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Simulation } from './world.ts';
import type { SeedResult } from './world.ts';
import type { ShardMessage } from './shard.ts';

const single = process.env.SIM_SEED ? Number(process.env.SIM_SEED) : undefined;
const count = Number(process.env.SIM_SEEDS || 1000);
const workers = single !== undefined ? 1 : Math.max(1, Number(process.env.SIM_WORKERS || Math.min(2, availableParallelism())));
const concurrency = Number(process.env.SIM_CONCURRENCY || 8);
const SHARD = fileURLToPath(new URL('./shard.ts', import.meta.url));

function printTrace(r: SeedResult): void {
  const out = [`\n--- trace of seed ${r.seed} (${r.trace.length} lines, hash ${r.traceHash}) ---`, ...r.trace];
  if (r.violations.length) out.push('--- violations ---', ...r.violations);
  out.push(`--- end of seed ${r.seed} ---`);
  console.log(out.join('\n'));
}

/** Seeds 1..count in `workers` processes; every result (traces of failing seeds only). */
async function runShards(): Promise<SeedResult[]> {
  const results: SeedResult[] = [];
  await Promise.all(
    Array.from(
      { length: workers },
      (_, i) =>
        new Promise<void>((resolve, reject) => {
          const child = fork(SHARD, [String(i), String(workers)], {
            execArgv: ['--import', 'tsx'],
            serialization: 'advanced',
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          });
          let done = false;
          child.on('message', (m: ShardMessage) => {
            if (m.type === 'result') results.push(m.result);
            else if (m.type === 'done') done = true;
            else reject(new Error(`simulation shard ${i} failed: ${m.message}`));
          });
          child.on('exit', (code) => (done ? resolve() : reject(new Error(`simulation shard ${i} exited with ${code} before it was done`))));
        }),
    ),
  );
  return results;
}

const tally = (into: Map<string, number>, from: Iterable<[string, number]>) => {
  for (const [k, n] of from) into.set(k, (into.get(k) ?? 0) + n);
};
const list = (m: Map<string, number>) =>
  [...m]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, n]) => `${k} ${n}`)
    .join(', ') || 'none';

test(`simulation: ${single !== undefined ? `seed ${single}` : `seeds 1..${count}`}, faults and crashes, invariants after each`, async (t) => {
  const started = performance.now();
  let sim: Simulation | undefined;
  try {
    let results: SeedResult[];
    if (single !== undefined || workers === 1) {
      sim = await Simulation.create();
      results = [];
      await sim.runMany(single !== undefined ? [single] : Array.from({ length: count }, (_, i) => i + 1), concurrency, (r) => results.push(r));
    } else {
      results = await runShards();
    }
    const ms = performance.now() - started;
    results.sort((a, b) => a.seed - b.seed);
    assert.equal(results.length, single !== undefined ? 1 : count, 'a result for every seed');
    const failed = results.filter((r) => r.violations.length);
    if (single !== undefined) printTrace(results[0]!);

    // determinism: a seed run again does exactly the same (the first failing one, else two samples)
    const again = failed.length ? [failed[0]!] : single !== undefined ? [] : [results[0]!, results[Math.floor(results.length / 2)]!];
    if (again.length) sim ??= await Simulation.create();
    for (const first of again) {
      const second = await sim!.runSeed(first.seed, { rerun: true });
      const i = first.trace.findIndex((line, k) => line !== second.trace[k]);
      assert.ok(
        second.traceHash === first.traceHash && i < 0,
        `seed ${first.seed} is not deterministic: ${i >= 0 ? `its traces differ at line ${i + 1}:\n  ${first.trace[i]}\n  ${second.trace[i]}` : 'its trace hashes differ'}`,
      );
      t.diagnostic(`determinism: seed ${first.seed} ran twice with identical traces (${second.trace.length} lines, hash ${second.traceHash})`);
    }

    const profiles = new Map<string, number>();
    const faults = new Map<string, number>();
    const deadLetters = new Map<string, number>();
    const infra: string[] = [];
    let events = 0;
    let steps = 0;
    for (const r of results) {
      tally(profiles, [[r.profile.name, 1]]);
      tally(faults, r.faults);
      tally(deadLetters, r.findings.deadLetters);
      infra.push(...r.findings.infraDeadLetters);
      events += r.events;
      steps += r.steps;
    }
    const slowest = results.reduce((a, b) => (b.realMs > a.realMs ? b : a));
    t.diagnostic(`seeds: ${results.length} (fault profiles: ${list(profiles)}); transactions: ${events}; process steps: ${steps}`);
    t.diagnostic(`faults injected by kind: ${list(faults)}`);
    t.diagnostic(`dead letters by stage/error: ${list(deadLetters)}`);
    if (infra.length) t.diagnostic(`dead letters caused by injected infrastructure errors: ${infra.length} (e.g. ${infra[0]})`);
    t.diagnostic(
      `run time: ${(ms / 1000).toFixed(1)} s (${workers} process${workers > 1 ? 'es' : ''} × ${concurrency} seeds side by side; slowest seed ${slowest.seed}: ${slowest.realMs.toFixed(0)} ms)`,
    );
    if (failed.length) {
      const kinds = new Map<string, number[]>();
      for (const f of failed) {
        const kind = f.violations[0]!.replace(/^seed \d+: /, '')
          .replace(/s\d+-[tm]\d+/g, '…')
          .replace(/\d+/g, 'N')
          .slice(0, 80);
        kinds.set(kind, [...(kinds.get(kind) ?? []), f.seed]);
      }
      t.diagnostic(`FAILED: ${failed.length} of ${results.length} seeds`);
      for (const [kind, s] of kinds) t.diagnostic(`  ${s.length}× ${kind} (seeds ${s.slice(0, 12).join(' ')}${s.length > 12 ? ' …' : ''})`);
      if (single === undefined) for (const f of process.env.SIM_TRACE ? failed : failed.slice(0, 1)) printTrace(f);
      t.diagnostic(`replay one: SIM_SEED=${failed[0]!.seed} npm run test:sim`);
    }
    assert.deepEqual(
      failed.map((f) => ({ seed: f.seed, violations: f.violations })),
      [],
      'every seed keeps every invariant',
    );
  } finally {
    await sim?.close();
  }
});
