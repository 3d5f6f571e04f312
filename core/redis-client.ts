// The Redis connection types, apart from redis.ts so the modules redis.ts uses (slot-pipeline.ts)
// can name them without an import cycle.
import type { ChainableCommander, Cluster, Redis } from 'ioredis';

export type RedisClient = Redis | Cluster;
export type RedisPipeline = ChainableCommander;
