// Baseline: a BullMQ chain of three queues, each worker at concurrency 100 doing the same no-op
// work as a pass-through stage (take the event, hand it to the next queue), in one process like
// one `rill worker`. The jobs (the same event JSON ingest appends) are added in bulk first; the
// clock runs from the first job picked up to the last one completed at the end of the chain.
//
//   node --import tsx bench/baselines/bullmq-chain.ts --prefix rillbench:x:bull [--events N] [--concurrency C]
// REDIS_URL picks the server. Prints one JSON line: { eventsPerSec, events, ms, ... }. Its queues are
// obliterated afterwards.
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Queue, Worker } from 'bullmq';
import type { ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { entryFields, merchantIds, transactionBody } from '../lib/payload.ts';
import { isLocalUrl } from '../lib/proc-stats.ts';
import { redisServerInfo } from '../lib/redis-stats.ts';
import { runBaseline, startCpu } from './run-baseline.ts';

function connection(url: string): ConnectionOptions {
  const u = new URL(url);
  return {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 6379),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    maxRetriesPerRequest: null,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { prefix: { type: 'string' }, events: { type: 'string', default: '30000' }, concurrency: { type: 'string', default: '100' } },
  });
  if (!values.prefix) throw new Error('--prefix is required');
  const events = Number(values.events);
  const concurrency = Number(values.concurrency);
  const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
  const conn = connection(url);
  const prefix = values.prefix;
  const names = ['stage1', 'stage2', 'stage3'];
  const queues = names.map((n) => new Queue(n, { connection: conn, prefix }));
  const merchants = merchantIds(16);
  const opts = { removeOnComplete: true, removeOnFail: 1000 };

  // the backlog: the same entries ingest would have appended
  const addStart = performance.now();
  for (let i = 0; i < events; i += 1000) {
    const jobs = [];
    for (let j = i; j < Math.min(events, i + 1000); j++) {
      const [, tx, , ev] = entryFields(transactionBody(j, merchants[j % merchants.length]!, 'default'));
      jobs.push({ name: 'tx', data: { tx, ev }, opts });
    }
    await queues[0]!.addBulk(jobs);
  }
  const addMs = performance.now() - addStart;
  // CPU of the chain alone (adding the jobs left out): this process and a local Redis (its pid from INFO)
  const probe = new Redis(url);
  const { pid } = await redisServerInfo(probe);
  probe.disconnect();
  const cpuUsed = startCpu(isLocalUrl(url) && pid > 0 ? [pid] : []);

  let first = 0;
  let done = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((r) => (finish = r));
  const workers = names.map(
    (n, i) =>
      new Worker(
        n,
        async (job) => {
          if (!first) first = performance.now();
          const next = queues[i + 1];
          if (next) await next.add('tx', job.data, opts);
          else if (++done === events) finish();
        },
        { connection: conn, prefix, concurrency },
      ),
  );
  const timeout = setTimeout(finish, Math.max(120_000, events * 2));
  await finished;
  clearTimeout(timeout);
  const end = performance.now();
  const cpu = cpuUsed();
  await Promise.all(workers.map((w) => w.close()));
  for (const q of queues) {
    await q.obliterate({ force: true }).catch(() => undefined);
    await q.close();
  }
  const ms = end - first;
  console.log(
    JSON.stringify({
      tool: 'bullmq',
      queues: names.length,
      concurrency,
      events,
      completed: done,
      ms: Math.round(ms),
      eventsPerSec: (done / ms) * 1000,
      addBulkPerSec: (events / addMs) * 1000,
      cpuUs: cpu.own,
      serverCpuUs: cpu.server,
    }),
  );
}

runBaseline('bullmq-chain', main);
