// One shard of the simulation, in a process of its own: simulation.test.ts forks one per core
// (node runs JavaScript on one), each with its own Rill instance, and merges what they send.
//   argv: <shard index> <shard count>; env: SIM_SEEDS, SIM_CONCURRENCY as for the test.
import { Simulation } from './world.ts';
import type { SeedResult } from './world.ts';

/** What a shard sends back per seed: everything but the trace of a seed that passed. */
export type ShardMessage = { type: 'result'; result: SeedResult } | { type: 'done' } | { type: 'error'; message: string };

const [index, count] = process.argv.slice(2).map(Number) as [number, number];
const total = Number(process.env.SIM_SEEDS || 1000);
const seeds = Array.from({ length: total }, (_, i) => i + 1).filter((s) => s % count === index);
const send = (m: ShardMessage) => new Promise<void>((resolve) => process.send!(m, () => resolve()));

try {
  const sim = await Simulation.create();
  try {
    const sends: Promise<void>[] = [];
    await sim.runMany(seeds, Number(process.env.SIM_CONCURRENCY || 8), (r) => {
      sends.push(send({ type: 'result', result: r.violations.length ? r : { ...r, trace: [] } }));
    });
    await Promise.all(sends);
  } finally {
    await sim.close();
  }
  await send({ type: 'done' });
} catch (err) {
  await send({ type: 'error', message: (err as Error).stack ?? String(err) });
}
process.disconnect();
