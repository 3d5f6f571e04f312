// Wires a worker process: the topology's stages and sinks (or the chosen ones), each with its
// own consumer loops and Redis connections, sharing one metrics registry.
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { Redis } from 'ioredis';
import type { RillEnv } from '../core/config.ts';
import { ConfigError } from '../core/errors.ts';
import { Keys } from '../core/keys.ts';
import type { Logger } from '../core/logger.ts';
import type { Registry } from '../core/metrics.ts';
import { connectRedis, defineScripts } from '../core/redis.ts';
import { CORE_SCRIPTS } from '../core/scripts.ts';
import type { RedisClient } from '../core/redis.ts';
import { registerProcessor, resolveProcessor } from '../core/registry.ts';
import type { Topology } from '../core/topology/schema.ts';
import { StageRunner } from '../core/consumer/index.ts';
import type { ChainedStageOptions } from '../core/consumer/index.ts';
import { planChains } from '../core/topology/chains.ts';
import { PostgresSink } from '../sinks/postgres/sink.ts';
import { AlertsSink } from '../sinks/alerts/sink.ts';
import { WebhooksSink } from '../sinks/webhooks/sink.ts';
import { BatchWriter } from '../sinks/postgres/batch-writer.ts';
import { registerBuiltinProcessors } from '../processors/index.ts';
import { retentionInterval, startRetention } from '../core/retention/retention.ts';
import { redeliveryHorizon } from '../core/retention/horizon.ts';
import { leaderPass } from '../core/leases/leader-pass.ts';
import { createPool } from '../core/postgres.ts';
import { startMaintenance } from '../sinks/postgres/maintenance.ts';
import { startWorkerObservability } from '../core/observability/worker-observability.ts';
import { LeaseHandover } from '../core/leases/handover.ts';

export interface WorkerOptions {
  env: RillEnv;
  topology: Topology;
  /** Stage and sink names to run; all when empty. */
  only?: readonly string[];
  /** Stable id: a restarted worker with the same id resumes its own pending entries first. */
  consumerId?: string;
  registry: Registry;
  logger: Logger;
  /** Run the cluster-wide periodic jobs (retention, table maintenance) when leader (default true). */
  leaderJobs?: boolean;
}

const RETENTION_INTERVAL_MS = 30_000;
/** A stage's pause after a small batch (a few ms of latency per stage, far fewer reads at moderate rates). */
const STAGE_LINGER_MS = 5;
/** The sink's pause after a small read (its batches wait for max_wait anyway). */
const SINK_LINGER_MS = 25;

export interface Worker {
  readonly components: string[];
  stop(): Promise<void>;
}

interface Component {
  stop(): Promise<void>;
}

export async function startWorker(o: WorkerOptions): Promise<Worker> {
  registerBuiltinProcessors(registerProcessor);
  const { topology } = o;
  const wanted = new Set(o.only?.length ? o.only : [...Object.keys(topology.stages), ...Object.keys(topology.sinks)]);
  for (const name of wanted) {
    if (!topology.stages[name] && !topology.sinks[name]) throw new ConfigError(`no stage or sink named "${name}" in the topology`);
  }
  const keys = new Keys(o.env.prefix);
  const consumerBase = `${hostname()}-${o.consumerId ?? String(process.pid)}`;
  const connections: RedisClient[] = [];
  const connection = (name: string): Redis => {
    const r = connectRedis(o.env, { name }) as Redis;
    defineScripts(r, CORE_SCRIPTS);
    connections.push(r);
    return r;
  };
  const components: Component[] = [];
  // processors close after every loop using them has stopped
  const closers: (() => Promise<void>)[] = [];
  const names: string[] = [];
  const shutdown = async () => {
    await Promise.allSettled(components.map((c) => c.stop()));
    await Promise.allSettled(closers.map((close) => close()));
    for (const c of connections) c.disconnect();
  };
  const baseDir = dirname(resolve(o.env.topologyPath));
  // ordered stages hand partitions over through notices (one subscription for the process)
  const handover = Object.entries(topology.stages).some(([name, s]) => wanted.has(name) && s.ordering === 'key')
    ? new LeaseHandover(connection('rill:leases'), connection('rill:lease-notices'), keys.global('lease-notices'), o.logger.child({ job: 'leases' }))
    : undefined;
  try {
    await handover?.start();
    // chained stages run as one task (core/topology/chains.ts), among the stages this worker runs
    for (const chain of planChains(topology, wanted)) {
      const members: ChainedStageOptions[] = [];
      const first = topology.stages[chain.stages[0]!]!;
      for (const name of chain.stages) {
        const stage = topology.stages[name]!;
        const factory = await resolveProcessor(stage.processor, baseDir);
        const parsed = factory.configSchema.safeParse(stage.config);
        if (!parsed.success) {
          throw new ConfigError(`stage ${name}: config: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
        }
        const processor = await factory.create(parsed.data, {
          stage: name,
          redis: connection(`rill:${name}:proc`),
          keys,
          topics: Object.keys(topology.topics),
          refunds: topology.refunds,
          postgres: o.env,
          registry: o.registry,
          logger: o.logger.child({ stage: name }),
          // in a chain, entries are read, reclaimed and taken over under the first stage's group and
          // leases: its visibility timeout and lease ttl, this stage's retries
          redeliveryHorizonMs: redeliveryHorizon({ visibility_timeout: first.visibility_timeout, lease_ttl: first.lease_ttl, retry: stage.retry }),
        });
        if (processor.close) closers.push(() => processor.close!());
        members.push({ name, config: stage, processor });
        names.push(name);
      }
      const [head, ...chained] = members;
      const name = head!.name;
      const stage = head!.config;
      for (let i = 0; i < stage.concurrency; i++) {
        const runner = new StageRunner({
          name,
          config: stage,
          topology,
          keys,
          processor: head!.processor,
          chain: chained,
          redis: connection(`rill:${name}:${i}`),
          consumer: `${consumerBase}-${i}`,
          registry: o.registry,
          logger: o.logger.child({ stage: chain.stages.join('+'), loop: i }),
          leaseTtlMs: stage.lease_ttl,
          lingerMs: STAGE_LINGER_MS,
          handover,
        });
        await runner.start();
        components.push(runner);
      }
    }
    for (const [name, sink] of Object.entries(topology.sinks)) {
      if (!wanted.has(name)) continue;
      for (let i = 0; i < sink.concurrency; i++) {
        const common = {
          name,
          topology,
          keys,
          redis: connection(`rill:${name}:${i}`),
          consumer: `${consumerBase}-${i}`,
          registry: o.registry,
          logger: o.logger.child({ sink: name, loop: i }),
        };
        if (sink.type === 'webhooks') {
          const pool = createPool(o.env, { max: 4, name: `rill-webhooks-${name}` });
          closers.push(() => pool.end());
          const runner = new WebhooksSink({ ...common, config: sink, pool, deliveryRedis: connection(`rill:${name}:${i}:deliver`) });
          await runner.start();
          components.push(runner);
          continue;
        }
        // an alerts sink resolves its webhooks' ${VAR}s here: a missing one stops the start
        const runner =
          sink.type === 'alerts'
            ? new AlertsSink({ ...common, config: sink })
            : new PostgresSink({
                ...common,
                config: sink,
                writer: new BatchWriter(o.env, `rill-sink-${name}`),
                // write a batch while reading the next; acks on a connection no blocking read holds
                overlap: true,
                ackRedis: connection(`rill:${name}:${i}:ack`),
                lingerMs: SINK_LINGER_MS,
              });
        await runner.start();
        components.push(runner);
      }
      names.push(name);
    }
  } catch (err) {
    await shutdown();
    throw err;
  }
  if (o.leaderJobs ?? true) {
    // retention: every worker offers, one per interval trims (a mutex that lives one interval)
    const redis = connection('rill:retention');
    const intervalMs = retentionInterval(topology, RETENTION_INTERVAL_MS);
    const retention = startRetention({
      redis,
      keys,
      topology,
      registry: o.registry,
      logger: o.logger.child({ job: 'retention' }),
      intervalMs,
      slowestMs: RETENTION_INTERVAL_MS,
      shouldRun: leaderPass(redis, keys.global('leader', 'retention'), intervalMs),
    });
    closers.push(() => retention.stop());
    // table upkeep (partitions ahead, retention, the materialized view): in processes with a sink
    const pgSink = Object.entries(topology.sinks).flatMap(([name, s]) => (wanted.has(name) && s.type === 'postgres' ? [s] : []))[0];
    if (pgSink) {
      const pool = createPool(o.env, { max: 1, name: 'rill-pg-maintenance' });
      const maintenance = startMaintenance({
        pool,
        redis: connection('rill:pg-maintenance'),
        keys,
        config: pgSink.maintenance,
        logger: o.logger.child({ job: 'pg-maintenance' }),
        registry: o.registry,
      });
      closers.push(async () => {
        await maintenance.stop();
        await pool.end();
      });
    }
  }
  // heartbeat (rill status, rill_worker_heartbeat_timestamp_seconds) and Redis-side gauges (lag, pending, dead letters)
  const observability = startWorkerObservability({
    redis: connection('rill:observability'),
    keys,
    topology,
    id: consumerBase,
    host: hostname(),
    components: names,
    registry: o.registry,
    logger: o.logger.child({ job: 'observability' }),
  });
  closers.unshift(() => observability.stop());
  return {
    components: names,
    stop: shutdown,
  };
}
