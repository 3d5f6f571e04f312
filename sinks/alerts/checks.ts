// The checks the alerts sink runs itself, on its check interval (one worker per interval), each
// raising alert events onto the alerts topic, where they are delivered like any other alert:
//  - dead letters: per stage and sink, the dead-letter streams' total length over partitions;
//    when it grew by at least `threshold` since that stage's last alert, raise one. The count at
//    the last alert is kept in Redis (hash stage → count), so workers and restarts agree; when
//    the count shrinks (purge, redrive) the mark follows it down.
//  - heartbeats: workers whose last heartbeat (the `workers-seen` sorted set, worker → unix ms) is
//    older than `missing_after`; one alert per worker and last-seen time (hash worker → last seen
//    alerted), forgotten when the worker beats again or its entry is removed. A missing key is
//    simply no workers.
// An alert is appended before its mark is written: a crash in between raises it again on the next
// pass, and the dedupe window keeps that from reaching anyone twice.
import type { Redis } from 'ioredis';
import type { Keys } from '../../core/keys.ts';
import { entryArgs } from '../../core/entry.ts';
import { LaneMap } from '../../core/lanes.ts';
import { partitionOf } from '../../core/partition.ts';
import type { Topology } from '../../core/topology/schema.ts';
import { slotPipeline } from '../../core/slot-pipeline.ts';
import type { DeadLettersAlert, WorkerMissingAlert } from './alert.ts';

export interface AlertChecksOptions {
  redis: Redis;
  keys: Keys;
  topology: Topology;
  /** The alerts sink: names the state keys; its own dead letters are watched too. */
  sink: string;
  /** Where raised alerts are appended. */
  topic: string;
  deadLetters?: { threshold: number } | undefined;
  heartbeat?: { missing_after: number } | undefined;
  now?: () => number;
}

export type RaisedAlert = DeadLettersAlert | WorkerMissingAlert;

export function deadLetterMarkKey(keys: Keys, sink: string): string {
  return keys.global('alerts', sink, 'dead-letters-alerted');
}

export function workersMarkKey(keys: Keys, sink: string): string {
  return keys.global('alerts', sink, 'workers-alerted');
}

/** Stages and sinks with a dead-letter stream, and their partition counts. */
function components(o: Pick<AlertChecksOptions, 'topology' | 'sink' | 'topic'>): [string, number][] {
  const t = o.topology;
  const parts = (topic: string) => t.topics[topic]?.partitions ?? 0;
  const out = new Map<string, number>();
  for (const [name, s] of Object.entries(t.stages)) out.set(name, parts(s.input));
  for (const [name, s] of Object.entries(t.sinks)) out.set(name, parts(s.input));
  if (!out.has(o.sink)) out.set(o.sink, parts(o.topic));
  return [...out];
}

/** Dead letters per stage and sink, over all partitions. */
export async function deadLetterCounts(o: Pick<AlertChecksOptions, 'redis' | 'keys' | 'topology' | 'sink' | 'topic'>): Promise<Map<string, number>> {
  const list = components(o);
  const pipe = slotPipeline(o.redis);
  for (const [name, partitions] of list) {
    for (let p = 0; p < partitions; p++) {
      const key = o.keys.deadLetter(name, p);
      pipe.add(key, (q) => q.xlen(key));
    }
  }
  const res = await pipe.exec();
  const counts = new Map<string, number>();
  let i = 0;
  for (const [name, partitions] of list) {
    let n = 0;
    for (let p = 0; p < partitions; p++, i++) {
      const [err, v] = res[i]!;
      if (err) throw err;
      n += Number(v);
    }
    counts.set(name, n);
  }
  return counts;
}

/** Run both checks once; returns the alerts raised (already appended to the topic). */
export async function runAlertChecks(o: AlertChecksOptions): Promise<RaisedAlert[]> {
  const raised: RaisedAlert[] = [];
  if (o.deadLetters) raised.push(...(await checkDeadLetters(o, o.deadLetters.threshold)));
  if (o.heartbeat) raised.push(...(await checkHeartbeats(o, o.heartbeat.missing_after)));
  return raised;
}

async function checkDeadLetters(o: AlertChecksOptions, threshold: number): Promise<RaisedAlert[]> {
  const now = (o.now ?? Date.now)();
  const counts = await deadLetterCounts(o);
  const markKey = deadLetterMarkKey(o.keys, o.sink);
  const marks = await o.redis.hgetall(markKey);
  const raised: RaisedAlert[] = [];
  for (const [stage, count] of counts) {
    const previous = Number(marks[stage] ?? 0) || 0;
    if (count < previous) {
      await o.redis.hset(markKey, stage, String(count));
      continue;
    }
    if (count - previous < threshold) continue;
    const alert: DeadLettersAlert = { id: `alert_dead_letters_${stage}_${now}`, type: 'dead_letters', stage, count, previous, threshold, at: now };
    await append(o, stage, alert);
    await o.redis.hset(markKey, stage, String(count));
    raised.push(alert);
  }
  return raised;
}

async function checkHeartbeats(o: AlertChecksOptions, missingAfter: number): Promise<RaisedAlert[]> {
  const now = (o.now ?? Date.now)();
  const flat = (await o.redis.zrangebyscore(o.keys.global('workers-seen'), '-inf', `(${now - missingAfter}`, 'WITHSCORES')) as string[];
  const stale = new Map<string, number>();
  for (let i = 0; i + 1 < flat.length; i += 2) stale.set(flat[i]!, Number(flat[i + 1]));
  const markKey = workersMarkKey(o.keys, o.sink);
  const marks = await o.redis.hgetall(markKey);
  const gone = Object.keys(marks).filter((w) => !stale.has(w));
  if (gone.length) await o.redis.hdel(markKey, ...gone);
  const raised: RaisedAlert[] = [];
  for (const [worker, lastSeen] of stale) {
    if (marks[worker] === String(lastSeen)) continue;
    const alert: WorkerMissingAlert = {
      id: `alert_worker_missing_${worker}_${lastSeen}`,
      type: 'worker_missing',
      worker,
      last_seen: lastSeen,
      missing_after: missingAfter,
      at: now,
    };
    await append(o, worker, alert);
    await o.redis.hset(markKey, worker, String(lastSeen));
    raised.push(alert);
  }
  return raised;
}

/** Append to the alerts topic: partition by the alert's subject, lane by its type. */
async function append(o: AlertChecksOptions, subject: string, alert: RaisedAlert): Promise<void> {
  const partitions = o.topology.topics[o.topic]?.partitions ?? 1;
  const lane = new LaneMap(o.topology.priorities).laneOf(alert.type);
  const key = o.keys.lane(o.topic, partitionOf(subject, partitions), lane);
  await o.redis.xadd(key, '*', ...entryArgs({ txId: alert.id, event: JSON.stringify(alert) }));
}
