// What a worker process runs for observability besides its stages and sinks: the heartbeat and
// the stream statistics collector, on one connection of their own, stopped together.
import type { Keys } from '../keys.ts';
import type { Logger } from '../logger.ts';
import type { Registry } from '../metrics.ts';
import type { RedisClient } from '../redis.ts';
import type { Topology } from '../topology/schema.ts';
import { startHeartbeat } from './heartbeat.ts';
import { startStreamStats } from './stream-stats.ts';

export interface WorkerObservabilityOptions {
  /** A connection for the heartbeat and the statistics (not one a consumer loop blocks on). */
  redis: RedisClient;
  keys: Keys;
  topology: Topology;
  /** The worker's id in heartbeats and in the rill_worker_heartbeat_timestamp_seconds label. */
  id: string;
  host: string;
  /** Stage and sink names the worker runs. */
  components: string[];
  registry: Registry;
  logger: Logger;
  heartbeatMs?: number;
  streamStatsMs?: number;
}

export function startWorkerObservability(o: WorkerObservabilityOptions): { stop(): Promise<void> } {
  const heartbeat = startHeartbeat({
    redis: o.redis,
    keys: o.keys,
    id: o.id,
    host: o.host,
    components: o.components,
    registry: o.registry,
    logger: o.logger,
    ...(o.heartbeatMs === undefined ? {} : { intervalMs: o.heartbeatMs }),
  });
  const stats = startStreamStats({
    redis: o.redis,
    keys: o.keys,
    topology: o.topology,
    registry: o.registry,
    logger: o.logger,
    ...(o.streamStatsMs === undefined ? {} : { intervalMs: o.streamStatsMs }),
  });
  return {
    async stop() {
      await Promise.all([heartbeat.stop(), stats.stop()]);
    },
  };
}
