// The Redis connection types, apart from redis.ts (connections and scripts) so modules below it,
// like slot-pipeline.ts, can name them without importing it.
import type { ChainableCommander, Cluster, Redis } from 'ioredis';

export type RedisClient = Redis | Cluster;
export type RedisPipeline = ChainableCommander;
