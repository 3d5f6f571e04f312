// Appending accepted transactions to the ingest topic: picks partition and lane, builds the
// stream entry and writes it in ONE Redis round trip (XADD, or the idempotent-append script).
import { entryArgs } from '../core/entry.ts';
import { ConfigError } from '../core/errors.ts';
import type { TransactionEvent } from '../core/event.ts';
import type { Keys } from '../core/keys.ts';
import { LaneMap } from '../core/lanes.ts';
import { partitionOf } from '../core/partition.ts';
import { defineScripts, readScripts, runScript } from '../core/redis.ts';
import type { RedisClient, ScriptSource } from '../core/redis.ts';
import type { Topology } from '../core/topology/schema.ts';
import { fingerprint } from './idempotency.ts';
import { withTimeout } from './timeout.ts';
import { newTxId } from './tx-id.ts';
import type { TransactionBody } from './validation.ts';

const SCRIPTS = readScripts(new URL('./scripts/', import.meta.url));
const IDEMPOTENT_APPEND = script('idempotentAppend');

function script(name: string): ScriptSource {
  const s = SCRIPTS.find((x) => x.name === name);
  if (!s) throw new Error(`ingest Lua script ${name} is missing`);
  return s;
}

export interface Route {
  partition: number;
  lane: string;
  stream: string;
}

export type AppendOutcome =
  | ({ kind: 'accepted'; id: string; entryId: string } & Route)
  /** Same Idempotency-Key, same body: the first answer's id; nothing appended. */
  | { kind: 'replayed'; id: string }
  /** Same Idempotency-Key, another body: nothing appended. */
  | { kind: 'conflict'; id: string };

export interface AppenderOptions {
  /** Longest wait for Redis before the request fails with 503. */
  timeoutMs: number;
}

export class EventAppender {
  readonly topic: string;
  private readonly partitions: number;
  private readonly lanes: LaneMap;
  private readonly idempotencyTtlMs: number;

  constructor(
    private readonly redis: RedisClient,
    topology: Topology,
    private readonly keys: Keys,
    private readonly opts: AppenderOptions,
  ) {
    const topic = topology.topics[topology.ingest.topic];
    if (!topic) throw new ConfigError(`ingest.topic "${topology.ingest.topic}" is not declared under topics`);
    this.topic = topology.ingest.topic;
    this.partitions = topic.partitions;
    this.lanes = new LaneMap(topology.priorities);
    this.idempotencyTtlMs = topology.ingest.idempotency_ttl;
    defineScripts(redis, SCRIPTS);
  }

  /** Where a merchant's event of this type goes: its partition keeps the merchant's order. */
  route(merchantId: string, type: string): Route {
    const partition = partitionOf(merchantId, this.partitions);
    const lane = this.lanes.laneOf(type);
    return { partition, lane, stream: this.keys.lane(this.topic, partition, lane) };
  }

  async append(body: TransactionBody, idempotencyKey?: string): Promise<AppendOutcome> {
    const route = this.route(body.merchant_id, body.type);
    const now = Date.now();
    const id = newTxId(now);
    const event: TransactionEvent = { ...body, id, ingested_at: now, status: 'accepted' };
    const fields = entryArgs({ tx: id, ev: JSON.stringify(event) });

    if (idempotencyKey === undefined) {
      // no MAXLEN: trimming here could drop entries a group has not acknowledged yet
      const entryId = await withTimeout(this.redis.call('XADD', route.stream, '*', ...fields), this.opts.timeoutMs, 'Redis XADD');
      return { kind: 'accepted', id, entryId: String(entryId), ...route };
    }

    const recordKey = this.keys.idempotency(route.partition, body.merchant_id, idempotencyKey);
    const reply = await withTimeout(
      runScript(this.redis, IDEMPOTENT_APPEND, [recordKey, route.stream], [
        fingerprint(body),
        id,
        this.idempotencyTtlMs,
        ...fields,
      ]),
      this.opts.timeoutMs,
      'Redis idempotent append',
    );
    const [kind, value] = parseReply(reply);
    if (kind === 'accepted') return { kind, id, entryId: value, ...route };
    return { kind, id: value };
  }
}

function parseReply(reply: unknown): ['accepted' | 'replayed' | 'conflict', string] {
  if (Array.isArray(reply) && reply.length === 2 && typeof reply[1] === 'string') {
    const kind: unknown = reply[0];
    if (kind === 'accepted' || kind === 'replayed' || kind === 'conflict') return [kind, reply[1]];
  }
  throw new Error(`unexpected reply from idempotentAppend: ${JSON.stringify(reply)}`);
}
