// h. Merchant webhooks: one endpoint per merchant (registered through the API) on a local
// receiver in this process. (1) Deliveries/s: a backlog of N events already made into webhook
// events (validate → risk → ledger → webhook-events drained first), then `rill worker --stages
// webhooks` alone delivering them; timed from the first to the last arrival at the receiver, with
// the worker's CPU per delivery. (2) Added end-to-end cost: the same backlog size drained by one
// full `rill worker` (every stage and sink) with webhooks on and delivering, against the payments
// pipeline without webhooks; the difference in worker CPU per event, and both drain rates
// (not in the smoke profile: part 1 alone proves the scenario works).
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { BenchInstance } from '../lib/instance.ts';
import type { Merchant } from '../lib/payload.ts';
import { cpuMs } from '../lib/proc-stats.ts';
import { deadLetters } from '../lib/redis-stats.ts';
import { stageOrder } from '../lib/topology.ts';
import { drain, int, preload, waitFor } from './common.ts';
import { merchantInstance } from './fixtures.ts';
import type { Comparison, RunContext, Scenario, ScenarioOutput } from './types.ts';
import { compare } from './types.ts';

class CountingReceiver {
  count = 0;
  first = 0;
  last = 0;
  private readonly server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const now = performance.now();
      if (!this.count) this.first = now;
      this.last = now;
      this.count++;
      res.writeHead(204).end();
    });
  });
  base = '';
  async start(): Promise<void> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  reset(): void {
    this.count = 0;
    this.first = 0;
    this.last = 0;
  }
  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
  }
}

async function registerEndpoints(url: string, merchants: readonly Merchant[], receiver: string): Promise<void> {
  for (const m of merchants) {
    const res = await fetch(`${url}/v1/webhook_endpoints`, {
      method: 'POST',
      headers: { authorization: `Bearer ${m.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: `${receiver}/hooks/${m.id}` }),
    });
    if (res.status !== 201) throw new Error(`endpoint for ${m.id}: HTTP ${res.status} ${await res.text()}`);
  }
}

interface FullRun {
  events: number;
  wallMs: number;
  cpuMs: number;
  eventsPerSec: number;
  cpuUsPerEvent: number;
}

/** A backlog of N drained by one full `rill worker`; with webhooks, until every delivery arrived. */
async function fullRun(ctx: RunContext, inst: BenchInstance, merchants: Merchant[], n: number, seed: string, receiver?: CountingReceiver): Promise<FullRun> {
  const ingest = await inst.startIngest('ingest-full');
  await preload(ctx, ingest.url, merchants, n, seed, `${inst.label} backlog`);
  await ingest.child.stop();
  receiver?.reset();
  const w = await inst.startWorker({ name: 'worker-full' });
  const cpu0 = cpuMs(w.child.pid) ?? 0;
  const t0 = performance.now();
  const timeout = Math.max(120_000, n * 10);
  await drain(ctx, inst, timeout, undefined, (left) => ctx.progress.update(0.7, `${inst.label}: ${int(left)} left`));
  if (receiver) await waitFor('every delivery', () => receiver.count >= n, timeout, 50);
  const wallMs = performance.now() - t0;
  const used = (cpuMs(w.child.pid) ?? 0) - cpu0;
  await w.child.stop();
  return { events: n, wallMs, cpuMs: used, eventsPerSec: (n / wallMs) * 1000, cpuUsPerEvent: (used * 1000) / n };
}

export const webhooks: Scenario = {
  id: 'webhooks',
  title: 'j. Merchant webhooks',
  async run(ctx: RunContext): Promise<ScenarioOutput> {
    const N = ctx.profile.webhooks.events;
    const problems: string[] = [];
    const receiver = new CountingReceiver();
    await receiver.start();
    try {
      // 1. deliveries/s: the webhooks sink alone on a backlog of webhook events
      const { inst, merchants } = await merchantInstance(ctx, 'wh', 'webhooks');
      inst.vars.RILL_WEBHOOKS_ALLOW_HTTP = '1'; // the receiver is http://127.0.0.1
      const ingest = await inst.startIngest();
      await registerEndpoints(ingest.url, merchants, receiver.base);
      ctx.progress.update(0.05, 'backlog');
      await preload(ctx, ingest.url, merchants, N, `${ctx.runId}-wh1`, 'backlog');
      await ingest.child.stop();
      const order = stageOrder(inst.topology.summary);
      ctx.progress.update(0.2, `${order.join(' → ')}`);
      const pipeline = await inst.startWorker({ stages: order, name: 'worker-events' });
      await drain(ctx, inst, Math.max(120_000, N * 10), order);
      await pipeline.child.stop();
      ctx.progress.update(0.35, 'webhooks sink alone');
      const sink = await inst.startWorker({ stages: ['webhooks'], name: 'worker-webhooks' });
      const cpu0 = cpuMs(sink.child.pid) ?? 0;
      await waitFor('every delivery', () => receiver.count >= N, Math.max(120_000, N * 10), 50);
      const sinkCpuMs = (cpuMs(sink.child.pid) ?? 0) - cpu0;
      const spanMs = Math.max(1, receiver.last - receiver.first);
      const delivered = receiver.count;
      await sink.child.stop();
      if (delivered !== N) problems.push(`webhooks: ${delivered} deliveries for ${N} events`);
      const deliveriesPerSec = (delivered / spanMs) * 1000;

      const sinkRow = [
        'webhooks sink alone',
        int(delivered),
        int(spanMs),
        int(deliveriesPerSec),
        int((sinkCpuMs * 1000) / Math.max(1, delivered)),
        'first to last arrival at the receiver; one in flight per endpoint',
      ];
      const deliveriesFigure = compare({
        id: 'webhooks-deliveries',
        title: 'Webhook deliveries/s (one worker, local receiver)',
        scenario: 'webhooks',
        rill: { label: 'rill webhooks sink', value: Math.round(deliveriesPerSec), unit: 'deliveries/s' },
      });
      const tableTitle = `Merchant webhooks (${int(N)} events, ${merchants.length} endpoints)`;
      if (!ctx.profile.webhooks.compare) {
        return {
          comparisons: [deliveriesFigure],
          latency: [],
          problems,
          tables: [{ title: tableTitle, columns: ['run', 'events', 'wall ms', 'events/s', 'worker CPU µs/event', 'notes'], rows: [sinkRow] }],
          data: { events: N, endpoints: merchants.length, deliveriesPerSec, spanMs, sinkCpuMs },
        };
      }

      // 2. the whole pipeline with webhooks on and delivering, against it without webhooks
      ctx.progress.update(0.5, 'full worker, webhooks on');
      const on = await fullRun(ctx, inst, merchants, N, `${ctx.runId}-wh2`, receiver);
      if (receiver.count !== N) problems.push(`full run: ${receiver.count} deliveries for ${N} events`);
      const dead = await deadLetters(ctx.redis, inst.prefix, inst.topology.summary);
      if (dead) problems.push(`webhooks instance: ${dead} dead letters`);
      ctx.progress.update(0.75, 'full worker, webhooks off');
      const plain = await merchantInstance(ctx, 'whoff', 'default');
      const off = await fullRun(ctx, plain.inst, plain.merchants, N, `${ctx.runId}-wh3`);
      const addedUs = on.cpuUsPerEvent - off.cpuUsPerEvent;

      const comparisons: Comparison[] = [
        deliveriesFigure,
        compare({
          id: 'webhooks-added-cpu',
          title: 'Worker CPU per event added by webhooks',
          scenario: 'webhooks',
          rill: { label: 'with webhooks', value: Math.round(on.cpuUsPerEvent), unit: 'µs/event' },
          baseline: { label: 'without', value: Math.round(off.cpuUsPerEvent), unit: 'µs/event' },
          note: `+${Math.round(addedUs)} µs/event; drain ${int(on.eventsPerSec)} vs ${int(off.eventsPerSec)} events/s`,
        }),
      ];
      return {
        comparisons,
        latency: [],
        tables: [
          {
            title: tableTitle,
            columns: ['run', 'events', 'wall ms', 'events/s', 'worker CPU µs/event', 'notes'],
            rows: [
              sinkRow,
              [
                'full worker, webhooks on',
                int(on.events),
                int(on.wallMs),
                int(on.eventsPerSec),
                int(on.cpuUsPerEvent),
                'until drained and every delivery arrived',
              ],
              ['full worker, webhooks off', int(off.events), int(off.wallMs), int(off.eventsPerSec), int(off.cpuUsPerEvent), 'the payments pipeline alone'],
            ],
            note: `webhooks add ${Math.round(addedUs)} µs of worker CPU per event (webhook-events stage, fan-out, signing, HTTP).`,
          },
        ],
        data: { events: N, endpoints: merchants.length, deliveriesPerSec, spanMs, sinkCpuMs, on, off, addedCpuUsPerEvent: addedUs },
        problems,
      };
    } finally {
      await receiver.close();
    }
  },
};
