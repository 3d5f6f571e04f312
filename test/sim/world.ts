// The deterministic simulation: one driver runs the real engine (StageRunner, PostgresSink and
// BatchWriter, the real processors and Lua scripts) against the real Redis and Postgres, with no
// background loops. Each simulated process is a StageRunner or PostgresSink with its own
// fault-injecting Redis connection (and Postgres client factory); the driver calls their public
// `step()` in an order drawn from the seed, moves the fake clock, injects faults at the Redis and
// Postgres boundaries, crashes processes between steps (and at boundary calls) and restarts them
// under the same or another consumer name. Then it drains the pipeline without faults and checks
// the invariants (invariants.ts). Everything a seed does follows from its number.
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { Keys } from '../../core/keys.ts';
import { LaneMap } from '../../core/lanes.ts';
import { createLogger } from '../../core/logger.ts';
import { createRegistry } from '../../core/metrics.ts';
import type { Registry } from '../../core/metrics.ts';
import { partitionOf } from '../../core/partition.ts';
import type { Processor, Outcome, ProcessorFactory } from '../../core/processor.ts';
import { connectRedis, defineScripts } from '../../core/redis.ts';
import { deleteByPattern } from '../../core/slot-pipeline.ts';
import { registerProcessor, resolveProcessor } from '../../core/registry.ts';
import { CORE_SCRIPTS } from '../../core/scripts.ts';
import { entryArgs } from '../../core/entry.ts';
import type { Topology } from '../../core/topology/schema.ts';
import { PAYIN_ACCEPTED, payinBucket } from '../../core/payins.ts';
import { StageRunner } from '../../core/consumer/stage-runner.ts';
import { PostgresSink } from '../../sinks/postgres/sink.ts';
import { BatchWriter } from '../../sinks/postgres/batch-writer.ts';
import type { SinkRow } from '../../sinks/postgres/rows.ts';
import { registerBuiltinProcessors } from '../../processors/index.ts';
import { createInstance } from '../helpers/instance.ts';
import type { TestInstance } from '../helpers/instance.ts';
import { FakeClock, SIM_EPOCH, Trace } from './clock.ts';
import { chooseProfile, CrashError, FaultInjector, InjectedFault } from './faults.ts';
import type { FaultKind, FaultProfile } from './faults.ts';
import { faultyPgClientFactory } from './pg-proxy.ts';
import type { PgProcess } from './pg-proxy.ts';
import { Random } from './prng.ts';
import { Deliveries, faultyRedis } from './redis-proxy.ts';
import type { RedisBoundary } from './redis-proxy.ts';
import { chooseShape, LEASE_TTL_MS, SINK, simTopology, STAGES } from './topology.ts';
import type { Shape } from './topology.ts';
import { makeWorkload } from './workload.ts';
import type { Workload } from './workload.ts';
import { checkInvariants } from './invariants.ts';
import type { Findings } from './invariants.ts';

export interface SeedResult {
  seed: number;
  violations: string[];
  /** Not invariant violations, but worth knowing (see invariants.ts). */
  findings: Findings;
  trace: string[];
  /** FNV-1a of the trace: two runs of a seed did the same exactly when their hashes match. */
  traceHash: string;
  faults: Map<FaultKind, number>;
  profile: FaultProfile;
  shape: Shape;
  events: number;
  steps: number;
  chaosSteps: number;
  drainRounds: number;
  realMs: number;
}

// what test/helpers/pipeline.ts `outstanding` counts (lag + pending of every group of every lane
// stream, plus the delay sets and the events parked by ordered stages), in one script: atomic, and
// a number instead of XINFO replies to parse
const OUTSTANDING = `local total = 0
for i = 1, tonumber(ARGV[1]) do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[i])) do
      for j = 1, #g, 2 do
        if (g[j] == 'pending' or g[j] == 'lag') and g[j + 1] then total = total + g[j + 1] end
      end
    end
  end
end
for i = tonumber(ARGV[1]) + 1, tonumber(ARGV[2]) do total = total + redis.call('ZCARD', KEYS[i]) end
for i = tonumber(ARGV[2]) + 1, #KEYS do total = total + tonumber(redis.call('GET', KEYS[i]) or '0') end
return total`;

async function outstanding(redis: Redis, keys: Keys, topology: Topology): Promise<number> {
  const streams: string[] = [];
  const delays: string[] = [];
  const parked: string[] = [];
  for (const [topic, t] of Object.entries(topology.topics)) {
    for (let p = 0; p < t.partitions; p++) for (const lane of topology.priorities) streams.push(keys.lane(topic, p, lane.name));
  }
  for (const [stage, s] of Object.entries(topology.stages)) {
    for (let p = 0; p < topology.topics[s.input]!.partitions; p++) {
      delays.push(keys.delay(stage, p));
      if (s.ordering === 'key') parked.push(keys.parked(stage, p, 'count'));
    }
  }
  return Number(
    await redis.eval(
      OUTSTANDING,
      streams.length + delays.length + parked.length,
      ...streams,
      ...delays,
      ...parked,
      streams.length,
      streams.length + delays.length,
    ),
  );
}

export function traceHash(lines: readonly string[]): string {
  let h = 0x811c9dc5;
  for (const line of lines) for (let i = 0; i < line.length; i++) h = Math.imul(h ^ line.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

const DEL_IF_EQUAL = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";
const MAX_DRAIN_ROUNDS = 400;
/** Quiet drain rounds in a row (5 s of fake time each) after which the pipeline counts as stuck. */
const MAX_QUIET_ROUNDS = 24;

/** A simulated process: one consumer loop of a stage or the sink, with its own connections. */
class SimProcess implements PgProcess {
  dead = false;
  readonly pgClients: pg.Client[] = [];
  runner!: StageRunner | PostgresSink;

  constructor(
    readonly label: string,
    readonly slot: Slot,
    private readonly trace: Trace,
    private readonly keys: Keys,
  ) {}

  /** redis-semaphore mutexes of an ordered stage's leases (PartitionLeases keeps them private). */
  private mutexes(): Map<number, { stopRefresh(): void }> | undefined {
    return (this.runner as unknown as { leases?: { held: Map<number, { stopRefresh(): void }> } }).leases?.held;
  }

  holdsLease(key: string): boolean {
    for (const p of this.mutexes()?.keys() ?? []) if (`mutex:${this.keys.lease(this.slot.name, p)}` === key) return true;
    return false;
  }

  die(reason: string): void {
    if (this.dead) return;
    this.dead = true;
    this.trace.add(`CRASH ${this.label}: ${reason}`);
    // a dead process refreshes nothing: its leases now expire by the fake clock (LeaseWatch)
    for (const m of this.mutexes()?.values() ?? []) m.stopRefresh();
  }

  /** What the OS does when a process dies: its sockets close (Postgres rolls back what was open). */
  async closeConnections(): Promise<void> {
    await Promise.all(this.pgClients.splice(0).map((c) => c.end().catch(() => undefined)));
  }
}

interface Slot {
  kind: 'stage' | 'sink';
  name: string;
  base: string;
  consumer: string;
  gen: number;
  proc?: SimProcess;
  failures: number;
  nextRunAt: number;
  /** Likely to find work (its input just grew, or it just worked): the scheduler picks it more often. */
  hint: boolean;
}

/** Expires leases nobody refreshes (their holder died, or never knew it got them) after the TTL, by the fake clock. */
class LeaseWatch {
  private readonly leases = new Map<string, { identifier: string; proc: SimProcess; orphanSince?: number }>();

  acquired(key: string, identifier: string, proc: SimProcess): void {
    this.leases.set(key, { identifier, proc });
  }

  async tick(now: number, real: Redis, trace: Trace): Promise<void> {
    for (const [key, l] of this.leases) {
      if (!l.proc.dead && l.proc.holdsLease(key)) {
        l.orphanSince = undefined;
        continue;
      }
      l.orphanSince ??= now;
      if (now - l.orphanSince < LEASE_TTL_MS) continue;
      this.leases.delete(key);
      if (Number(await real.eval(DEL_IF_EQUAL, 1, key, l.identifier))) {
        trace.add(`lease ${key.replace(/^.*\{(\d+)\}:lease:/, '$1:')} of ${l.proc.label} expired (not refreshed for ${LEASE_TTL_MS} ms)`);
      }
    }
  }
}

function outcomeText(o: Outcome | undefined): string {
  if (!o) return '?';
  if (o.kind === 'ok') return o.event.status === 'failed' ? 'failed' : 'ok';
  if (o.kind === 'retry') return o.deferred ? 'wait' : 'retry';
  return `fatal(${o.error.name})`;
}

/** The real processor, with its batches and outcomes written to the trace. */
function traced(p: Processor, label: string, trace: Trace): Processor {
  return {
    async process(batch) {
      try {
        const out = await p.process(batch);
        trace.add(`${label} processed ${batch.map((e, i) => `${e.txId}${e.deliveries > 1 ? `(d${e.deliveries})` : ''}=${outcomeText(out[i])}`).join(' ')}`);
        return out;
      } catch (err) {
        trace.add(`${label} processor threw ${(err as Error).name}: ${(err as Error).message} [${batch.map((e) => e.txId).join(' ')}]`);
        throw err;
      }
    },
  };
}

/** The real BatchWriter, with its batches written to the trace. */
class TracedWriter extends BatchWriter {
  constructor(
    env: TestInstance['env'],
    createClient: (c: pg.ClientConfig) => pg.Client,
    private readonly label: string,
    private readonly trace: Trace,
  ) {
    super(env, 'rill-sim-sink', createClient);
  }

  override async writeBatch(rows: readonly SinkRow[]) {
    try {
      const res = await super.writeBatch(rows);
      this.trace.add(`${this.label} committed ${rows.map((r) => r.event.id).join(' ')}: ${res.transactions} new rows, ${res.ledgerEntries} new ledger lines`);
      return res;
    } catch (err) {
      this.trace.add(`${this.label} batch of ${rows.length} failed: ${(err as Error).name}: ${(err as Error).message}`);
      throw err;
    }
  }
}

export class Simulation {
  private readonly factories = new Map<string, ProcessorFactory<unknown>>();
  private readonly registry: Registry = createRegistry({ defaults: false });
  private readonly logger = createLogger('silent');

  private shared: Redis | undefined;

  private constructor(
    readonly inst: TestInstance,
    private readonly redis: Redis,
  ) {}

  /** The connection the simulated processes send through, made like a worker's (seeds side by side share it). */
  private connect(): Redis {
    const redis = connectRedis(this.inst.env, { name: 'rill-sim' }) as Redis;
    defineScripts(redis, CORE_SCRIPTS);
    return redis;
  }

  /**
   * Run `seeds`, up to `concurrency` at a time (side by side they share only the servers and one
   * connection: each has its own key prefix, merchants and Postgres clients, and its own commands
   * still go one after another), sweeping their keys every `sweepEvery` seeds.
   */
  async runMany(seeds: readonly number[], concurrency: number, onResult: (r: SeedResult) => void, sweepEvery = 50): Promise<void> {
    for (let i = 0; i < seeds.length; i += sweepEvery) {
      const chunk = seeds.slice(i, i + sweepEvery);
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(concurrency, chunk.length) }, async () => {
          while (next < chunk.length) onResult(await this.runSeed(chunk[next++]!, { noSweep: true }));
        }),
      );
      await this.sweep();
    }
  }

  static async create(): Promise<Simulation> {
    const inst = await createInstance('sim');
    // for sweeping keys (the seeds send through another, see connect())
    const redis = connectRedis(inst.env, { name: 'rill-sim-admin' }) as Redis;
    // the fake clock's day: created up front, so no seed takes the "create the partition" path
    const day = new Date(SIM_EPOCH).toISOString().slice(0, 10);
    await inst.pool.query('SELECT rill_ensure_partitions($1::date, $1::date)', [day]);
    const sim = new Simulation(inst, redis);
    registerBuiltinProcessors(registerProcessor);
    const topology = simTopology(chooseShape(new Random(0, 'shape')));
    for (const [name, stage] of Object.entries(topology.stages)) sim.factories.set(name, await resolveProcessor(stage.processor));
    return sim;
  }

  async close(): Promise<void> {
    await this.sweep();
    this.shared?.disconnect();
    this.redis.disconnect();
    await this.inst.cleanup();
  }

  private dirty = 0;

  /** Delete the keys of the seeds run so far (lease keys carry redis-semaphore's "mutex:" in front). */
  private async sweep(): Promise<void> {
    this.dirty = 0;
    await deleteByPattern(this.redis, `${this.inst.env.prefix}:s*`);
    await deleteByPattern(this.redis, `mutex:${this.inst.env.prefix}:*`);
  }

  /** One seed. `rerun`: it ran before in this instance; forget its keys and rows first. */
  async runSeed(seed: number, opts: { rerun?: boolean; noSweep?: boolean } = {}): Promise<SeedResult> {
    return this.seed(seed, (this.shared ??= this.connect()), performance.now(), opts);
  }

  private async seed(seed: number, redis: Redis, started: number, opts: { rerun?: boolean; noSweep?: boolean }): Promise<SeedResult> {
    if (opts.rerun) {
      await this.sweep();
      for (const table of ['ledger_entries', 'wallets', 'transactions'])
        await this.inst.pool.query(`DELETE FROM ${table} WHERE merchant_id LIKE $1`, [`s${seed}-%`]);
    }
    const clock = new FakeClock();
    const trace = new Trace(clock);
    const sched = new Random(seed, 'schedule');
    const jitter = new Random(seed, 'jitter');
    const profile = chooseProfile(new Random(seed, 'profile'));
    const shape = chooseShape(new Random(seed, 'shape'));
    const topology = simTopology(shape);
    const keys = new Keys(`${this.inst.env.prefix}:s${seed}`);
    const faults = new FaultInjector(new Random(seed, 'faults'), profile, trace);
    const leases = new LeaseWatch();
    const boundary: RedisBoundary = {
      real: redis,
      clock,
      faults,
      trace,
      deliveries: new Deliveries(),
      onLeaseAcquired: (key, identifier, proc) => leases.acquired(key, identifier, proc as SimProcess),
    };
    const workload = makeWorkload(seed, new Random(seed, 'workload'));
    const lanes = new LaneMap(topology.priorities);
    trace.add(`seed ${seed}: faults ${JSON.stringify(profile)}`);
    trace.add(`shape ${JSON.stringify(shape)}`);
    trace.add(
      `workload: ${workload.events.map((e) => `${e.id} ${e.kind}${e.body.type !== e.kind ? `(${e.body.type})` : ''} ${e.body.merchant_id} ${e.body.amount} ${e.body.currency}${e.body.reference ? ` ref ${e.body.reference}` : ''}${e.fail ? ` fail=${e.fail}` : ''}`).join('; ')}`,
    );

    await this.createGroups(redis, topology, keys);

    const slots: Slot[] = [];
    const order = [...STAGES, SINK];
    const downstream = new Map(order.map((name, i) => [name, order[i + 1]]));
    for (const name of [...STAGES, SINK]) {
      for (let i = 0; i < shape.consumers[name]!; i++) {
        const base = `${name}-${'abc'[i]}`;
        slots.push({ kind: name === SINK ? 'sink' : 'stage', name, base, consumer: base, gen: 0, failures: 0, nextRunAt: 0, hint: false });
      }
    }
    const spawn = async (slot: Slot): Promise<void> => {
      slot.gen++;
      const proc = new SimProcess(`${slot.consumer}/${slot.gen}`, slot, trace, keys);
      const redis = faultyRedis(boundary, proc);
      if (slot.kind === 'stage') {
        const config = topology.stages[slot.name]!;
        const factory = this.factories.get(slot.name)!;
        const processor = await factory.create(factory.configSchema.parse(config.config), {
          stage: slot.name,
          redis,
          keys,
          topics: Object.keys(topology.topics),
          refunds: topology.refunds,
          registry: this.registry,
          logger: this.logger,
          now: clock.now,
        });
        proc.runner = new StageRunner({
          name: slot.name,
          config,
          topology,
          keys,
          redis,
          processor: traced(processor, proc.label, trace),
          consumer: slot.consumer,
          registry: this.registry,
          logger: this.logger,
          blockMs: 0,
          leaseTtlMs: config.lease_ttl,
          now: clock.now,
          random: jitter.next,
        });
      } else {
        const config = topology.sinks[slot.name]!;
        if (config.type !== 'postgres') throw new Error(`sink ${slot.name} is not a postgres sink`);
        const writer = new TracedWriter(this.inst.env, faultyPgClientFactory(faults, proc), proc.label, trace);
        proc.runner = new PostgresSink({
          name: slot.name,
          config,
          topology,
          keys,
          redis,
          writer,
          consumer: slot.consumer,
          registry: this.registry,
          logger: this.logger,
          blockMs: 0,
          now: clock.now,
        });
      }
      slot.proc = proc;
      slot.hint = true;
      slot.failures = 0;
      slot.nextRunAt = clock.now();
    };
    const buried = async (slot: Slot): Promise<void> => {
      const proc = slot.proc!;
      slot.proc = undefined;
      await proc.closeConnections();
    };
    const restart = async (slot: Slot): Promise<void> => {
      // a restarted process keeps its consumer name (it finds its own pending entries) or gets a new one
      if (sched.chance(0.5)) slot.consumer = `${slot.base}.${slot.gen + 1}`;
      faults.count('restart');
      await spawn(slot);
      trace.add(`START ${slot.proc!.label}`);
    };
    const unexpected: string[] = [];
    let steps = 0;
    const step = async (slot: Slot): Promise<void> => {
      const proc = slot.proc!;
      steps++;
      try {
        await proc.runner.step();
        if (!proc.dead) slot.failures = 0;
      } catch (err) {
        if (!proc.dead) {
          // what runLoop does: log, back off (100 ms doubling, at most 5 s), try again
          slot.failures++;
          const wait = Math.min(5_000, 100 * 2 ** Math.min(slot.failures, 6));
          slot.nextRunAt = clock.now() + wait;
          const e = err as Error;
          trace.add(`${proc.label} step failed (${e.name}: ${e.message}); backing off ${wait} ms`);
          if (!(err instanceof InjectedFault) && !(err instanceof CrashError)) {
            unexpected.push(`seed ${seed}: ${proc.label} step failed with an error no fault explains: ${e.name}: ${e.message}`);
          }
        }
      }
      if (proc.dead) await buried(slot);
    };
    const advance = async (ms: number): Promise<void> => {
      clock.advance(ms);
      await leases.tick(clock.now(), redis, trace);
    };

    for (const slot of slots) {
      await spawn(slot);
      trace.add(`START ${slot.proc!.label}`);
    }

    // 1. chaos: ingest, steps, crashes, restarts and clock jumps in an order the seed picks
    faults.enabled = true;
    let next = 0;
    const events = workload.events;
    const maxTicks = events.length * 8 + 40;
    let idle = 0;
    for (let tick = 0; tick < maxTicks; tick++) {
      const live = slots.filter((s) => s.proc);
      const down = slots.filter((s) => !s.proc);
      const action = sched.weighted<string>([
        ['ingest', next < events.length ? 3 : 0],
        ['crash', live.length ? profile.crash * 10 : 0],
        ['restart', down.length ? 2.5 : 0],
        ['delay', profile.delay * 10],
        ['step', live.length ? 6.5 : 0],
      ]);
      if (action === 'ingest') {
        const n = Math.min(events.length - next, sched.int(1, 4));
        await this.ingest(redis, workload, next, n, keys, lanes, clock, topology);
        for (const s of slots) if (s.name === STAGES[0]) s.hint = true;
        trace.add(
          `ingest ${events
            .slice(next, next + n)
            .map((e) => e.id)
            .join(' ')}`,
        );
        next += n;
      } else if (action === 'crash') {
        const slot = sched.pick(live);
        faults.count('crash');
        slot.proc!.die('killed between steps');
        await buried(slot);
      } else if (action === 'restart') {
        await restart(sched.pick(down));
      } else if (action === 'delay') {
        const ms = sched.pick([sched.int(100, 2_000), sched.int(5_000, 20_000)]);
        faults.count('delay');
        trace.add(`DELAY ${ms} ms`);
        await advance(ms);
      } else if (action === 'step') {
        const ready = live.filter((s) => s.nextRunAt <= clock.now());
        if (!ready.length) {
          await advance(Math.min(...live.map((s) => s.nextRunAt)) - clock.now());
          continue;
        }
        // any ready process may go next; those likely to have work (their input just grew) are likelier
        const slot = sched.weighted(ready.map((s): [Slot, number] => [s, s.hint ? 8 : 1]));
        const mark = trace.lines.length;
        await step(slot);
        const worked = trace.lines.length > mark;
        slot.hint = worked;
        if (worked) for (const s of slots) if (s.name === downstream.get(slot.name)) s.hint = true;
        idle = worked ? 0 : idle + 1;
        if (idle > live.length) {
          // everyone is waiting (for a backoff, a visibility timeout, a lease), or all is through
          idle = 0;
          if (next === events.length && (await outstanding(redis, keys, topology)) === 0) break;
          await advance(sched.int(200, 3_000));
        }
      }
      await advance(sched.int(5, 60));
    }

    // 2. drain: no more faults; every process back; step everything until nothing is left
    //    (lag, pending, delay sets), moving the clock on so backoffs, visibility timeouts and leases run out
    faults.enabled = false;
    const chaosSteps = steps;
    for (const slot of slots) if (!slot.proc) await restart(slot);
    trace.add('DRAIN (no more faults)');
    let drainRounds = 0;
    let drained = false;
    let quiet = 0;
    for (; drainRounds < MAX_DRAIN_ROUNDS && quiet < MAX_QUIET_ROUNDS; drainRounds++) {
      const before = trace.lines.length;
      // stages in pipeline order (consumers of one stage in the seed's order), each stepped while it finds work
      for (const name of [...STAGES, SINK]) {
        for (const slot of sched.shuffle(slots.filter((s) => s.name === name))) {
          for (let n = 0; n < 20 && slot.proc && slot.nextRunAt <= clock.now(); n++) {
            const mark = trace.lines.length;
            await step(slot);
            if (trace.lines.length === mark) break;
          }
        }
      }
      if (trace.lines.length > before) {
        quiet = 0;
        await advance(250);
        continue;
      }
      // a quiet round: done, or waiting for a backoff, a visibility timeout or a lease to run out
      if ((await outstanding(redis, keys, topology)) === 0) {
        drained = true;
        break;
      }
      quiet++;
      await advance(5_000);
    }
    const violations = [...unexpected];
    if (!drained) {
      const left = await outstanding(redis, keys, topology);
      violations.push(
        quiet >= MAX_QUIET_ROUNDS
          ? `seed ${seed}: the pipeline is stuck: nothing moved for ${MAX_QUIET_ROUNDS * 5} s of fake time without faults, ${left} entries still outstanding`
          : `seed ${seed}: the pipeline did not drain in ${MAX_DRAIN_ROUNDS} rounds (${clock.elapsed} ms of fake time): ${left} entries still outstanding`,
      );
    }

    // 3. stop (releasing leases), check, clean up
    for (const slot of slots) {
      const proc = slot.proc;
      if (!proc) continue;
      await proc.runner.stop().catch((err: Error) => violations.push(`seed ${seed}: stopping ${proc.label} failed: ${err.message}`));
      await proc.closeConnections();
    }
    const { violations: broken, findings } = await checkInvariants({
      seed,
      redis: redis,
      pool: this.inst.pool,
      keys,
      topology,
      workload,
      calm: profile.name === 'calm',
    });
    violations.push(...broken);
    // every seed has keys of its own (prefix s<seed>); sweep them now and then, not per seed:
    // a SCAN walks the whole keyspace of a shared Redis
    if (!opts.noSweep && ++this.dirty >= 25) await this.sweep();
    return {
      seed,
      violations,
      findings,
      trace: trace.lines,
      traceHash: traceHash(trace.lines),
      faults: faults.counts,
      profile,
      shape,
      events: events.length,
      steps,
      chaosSteps,
      drainRounds,
      realMs: performance.now() - started,
    };
  }

  private async createGroups(redis: Redis, topology: Topology, keys: Keys): Promise<void> {
    // what StageRunner.start() / PostgresSink.start() do first (ensureGroups), for every group at once
    const pipe = redis.pipeline();
    const groups = [...Object.entries(topology.stages), ...Object.entries(topology.sinks)];
    for (const [group, { input }] of groups) {
      for (let p = 0; p < topology.topics[input]!.partitions; p++) {
        for (const lane of topology.priorities) pipe.xgroup('CREATE', keys.lane(input, p, lane.name), group, '0', 'MKSTREAM');
      }
    }
    for (const [err] of (await pipe.exec()) ?? []) if (err) throw err;
  }

  /** What ingest does once it has accepted an event: XADD it to its partition's lane (a payin also registered as accepted). */
  private async ingest(redis: Redis, w: Workload, from: number, n: number, keys: Keys, lanes: LaneMap, clock: FakeClock, topology: Topology): Promise<void> {
    const pipe = redis.pipeline();
    const partitions = topology.topics[topology.ingest.topic]!.partitions;
    for (const e of w.events.slice(from, from + n)) {
      const event = { ...e.body, ingested_at: clock.now() };
      const p = partitionOf(e.body.merchant_id, partitions);
      const stream = keys.lane(topology.ingest.topic, p, lanes.laneOf(e.body.type));
      pipe.xadd(stream, '*', ...entryArgs({ txId: e.id, event: JSON.stringify(event) }));
      if (e.body.type === 'payin') pipe.hsetnx(keys.payins(p, e.body.merchant_id, payinBucket(e.id, topology.refunds.hot).name), e.id, PAYIN_ACCEPTED);
    }
    for (const [err] of (await pipe.exec()) ?? []) if (err) throw err;
  }
}
