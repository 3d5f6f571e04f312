// Baseline: the Redis ceiling on this machine. `redis-benchmark -P 16` running XADD of the same
// stream entry ingest appends (fields tx and ev, ~240 bytes), then the stream is removed.
//
//   node --import tsx bench/baselines/redis-xadd.ts --key rillbench:x:xadd [--requests N] [--clients C] [--pipeline P]
// REDIS_URL picks the server. Prints one JSON line: { rps, p50Ms, p99Ms, requests, payloadBytes, ... }.
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { sampleEntry } from '../lib/payload.ts';

export interface XaddResult {
  tool: string;
  command: string;
  payloadBytes: number;
  requests: number;
  clients: number;
  pipeline: number;
  rps: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

export function redisBenchmarkArgs(url: string): string[] {
  const u = new URL(url);
  const args = ['-h', u.hostname || '127.0.0.1', '-p', u.port || '6379'];
  if (u.password) args.push('-a', decodeURIComponent(u.password), '--no-auth-warning');
  if (u.username && u.username !== 'default') args.push('--user', decodeURIComponent(u.username));
  const db = u.pathname.replace('/', '');
  if (db) args.push('--dbnum', db);
  return args;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      key: { type: 'string' },
      requests: { type: 'string', default: '1000000' },
      clients: { type: 'string', default: '50' },
      pipeline: { type: 'string', default: '16' },
    },
  });
  if (!values.key) throw new Error('--key is required (a stream key this run owns; it is removed afterwards)');
  const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
  const fields = sampleEntry();
  const payloadBytes = fields.reduce((n, f) => n + Buffer.byteLength(f), 0);
  const args = [...redisBenchmarkArgs(url), '-n', values.requests!, '-c', values.clients!, '-P', values.pipeline!, '--csv', 'XADD', values.key, '*', ...fields];
  const run = spawnSync('redis-benchmark', args, { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    await redis.unlink(values.key);
  } finally {
    redis.disconnect();
  }
  if (run.error) throw new Error(`redis-benchmark: ${run.error.message} (is it installed? apt-get install redis-tools)`);
  if (run.status !== 0) throw new Error(`redis-benchmark exited ${run.status}: ${run.stderr.slice(-300)}`);
  // CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  const line = run.stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => /"[\d.]+"\s*$/.test(l));
  const nums = line ? [...line.matchAll(/"([\d.]+)"/g)].map((m) => Number(m[1])) : [];
  if (!nums.length) throw new Error(`cannot read redis-benchmark's output: ${run.stdout.slice(-300)}`);
  const tail = nums.slice(-7);
  const result: XaddResult = {
    tool: 'redis-benchmark',
    command: `XADD <key> * tx <id> ev <event JSON>`,
    payloadBytes,
    requests: Number(values.requests),
    clients: Number(values.clients),
    pipeline: Number(values.pipeline),
    rps: tail.length === 7 ? tail[0]! : nums[nums.length - 1]!,
    p50Ms: tail.length === 7 ? tail[3]! : null,
    p99Ms: tail.length === 7 ? tail[5]! : null,
  };
  console.log(JSON.stringify(result));
}

main().catch((err: Error) => {
  console.error(`redis-xadd baseline: ${err.message}`);
  process.exit(1);
});
