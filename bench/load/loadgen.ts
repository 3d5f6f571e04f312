// The load generator: a process of its own (so its CPU shows apart from Rill's), driven over IPC
// by the runner. HTTP/1.1 keep-alive through undici's Pool with raw dispatch (no streams, no
// per-request promises in the hot path), latencies into an HdrHistogram in microseconds.
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { encodeIntoCompressedBase64 } from 'hdr-histogram-js';
import { newHistogram, summarize } from '../lib/hdr.ts';
import { transactionBody } from '../lib/payload.ts';
import type { FromLoadgen, LoadJob, LoadResult, PayloadSpec, ToLoadgen } from './protocol.ts';

const send = (m: FromLoadgen) => process.send?.(m);

interface Built {
  headers: Record<string, string>;
  body: string;
}

/** Builds request i of a payload spec: headers (auth, idempotency) and body. */
function requestBuilder(p: PayloadSpec): (i: number) => Built {
  const auth = p.merchants.map((m) => `Bearer ${m.key}`);
  const n = p.merchants.length;
  if (p.kind === 'single') {
    return (i) => {
      const k = i % n;
      const m = p.merchants[k]!;
      const headers: Record<string, string> = { 'content-type': 'application/json', authorization: auth[k]! };
      if (p.idempotency) headers['idempotency-key'] = `${p.seed}-${i}`;
      return { headers, body: JSON.stringify(transactionBody(i, m.id, p.mix, p.refs?.[m.id])) };
    };
  }
  const size = p.batchSize ?? 1000;
  return (i) => {
    // one merchant per batch (a key belongs to one merchant); the batch's events are i*size …
    const k = i % n;
    const m = p.merchants[k]!;
    let body = '';
    for (let j = 0; j < size; j++) {
      const seq = i * size + j;
      const ev: Record<string, unknown> = { ...transactionBody(seq, m.id, p.mix, p.refs?.[m.id]) };
      if (p.idempotency) ev.idempotency_key = `${p.seed}-${seq}`;
      body += `${JSON.stringify(ev)}\n`;
    }
    return { headers: { 'content-type': 'application/x-ndjson', authorization: auth[k]! }, body };
  };
}

const ACCEPTED = '"status":"accepted"';

function countAccepted(body: string): number {
  let n = 0;
  let at = body.indexOf(ACCEPTED);
  while (at >= 0) {
    n++;
    at = body.indexOf(ACCEPTED, at + ACCEPTED.length);
  }
  return n;
}

export async function runJob(job: LoadJob, progress: (done: number, ok: number, elapsedMs: number) => void): Promise<LoadResult> {
  const pool = new Pool(job.origin, {
    connections: job.concurrency,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const make = requestBuilder(job.payload);
  const batch = job.payload.kind === 'batch';
  const hist = newHistogram();
  const status: Record<string, number> = {};
  const perSecond: number[] = [];
  const cpu0 = process.cpuUsage();
  let seq = 0;
  let requests = 0;
  let ok = 0;
  let events = 0;
  let errors = 0;
  let errorSample: string | undefined;
  let dropped = 0;
  let inflight = 0;
  let lastDone = 0;

  const t0 = performance.now();
  const warmEnd = t0 + (job.warmupMs ?? 0);
  const end = job.durationMs !== undefined ? warmEnd + job.durationMs : Infinity;
  const maxRequests = job.maxRequests ?? Infinity;
  let stopped = false;
  let settleAll: () => void = () => undefined;
  const allSettled = new Promise<void>((r) => (settleAll = r));

  const one = (scheduledAt: number, onDone: () => void) => {
    const i = seq++;
    const recorded = scheduledAt >= warmEnd;
    if (recorded) requests++;
    const { headers, body } = make(i);
    let code = 0;
    let text = '';
    const wantBody = batch || false;
    inflight++;
    const finish = (err?: Error) => {
      inflight--;
      const now = performance.now();
      if (recorded) {
        if (err) {
          errors++;
          errorSample ??= err.message;
        } else {
          status[code] = (status[code] ?? 0) + 1;
          if (code >= 200 && code < 300) {
            ok++;
            events += batch ? countAccepted(text) : 1;
            hist.recordValue(Math.max(1, Math.round((now - scheduledAt) * 1000)));
            const sec = Math.floor((now - warmEnd) / 1000);
            perSecond[sec] = (perSecond[sec] ?? 0) + 1;
            lastDone = now;
          } else if (!errorSample) {
            errorSample = `HTTP ${code}: ${text.slice(0, 300)}`;
          }
        }
      }
      onDone();
    };
    // undici's direct (legacy) handler interface: no wrapper object per request
    const handler: Dispatcher.DispatchHandler = {
      onConnect() {},
      onHeaders(statusCode) {
        code = statusCode;
        return true;
      },
      onData(chunk) {
        if (wantBody || code >= 300) text += chunk.toString();
        return true;
      },
      onComplete() {
        finish();
      },
      onError(err) {
        finish(err);
      },
    };
    pool.dispatch({ path: job.path, method: 'POST', headers, body }, handler);
  };

  const ticker = setInterval(() => progress(requests, ok, performance.now() - t0), 500);

  if (job.mode === 'closed') {
    // `concurrency` loops: each sends its next request when its last one is answered
    let running = job.concurrency;
    const next = () => {
      const now = performance.now();
      if (stopped || now >= end || seq >= maxRequests) {
        if (--running === 0) settleAll();
        return;
      }
      one(now, next);
    };
    for (let c = 0; c < job.concurrency; c++) next();
    await allSettled;
  } else {
    // fixed schedule: request k is due at t0 + k / rate, sent late when the timer is late, and its
    // latency counts from when it was due
    const rate = job.rate ?? 1000;
    const interval = 1000 / rate;
    const maxWaiting = Math.max(job.concurrency * 4, Math.ceil(rate * 2));
    let k = 0;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        const due = Math.min(Math.floor((now - t0) / interval) + 1, Number.isFinite(maxRequests) ? maxRequests : Infinity);
        while (k < due) {
          const at = t0 + k * interval;
          if (at >= end) break;
          k++;
          if (inflight >= maxWaiting) {
            if (at >= warmEnd) dropped++;
            continue;
          }
          one(at, () => undefined);
        }
        if (t0 + k * interval >= end || k >= maxRequests) resolve();
        else setTimeout(tick, 1);
      };
      tick();
    });
    const deadline = performance.now() + 30_000;
    while (inflight > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  }
  stopped = true;
  clearInterval(ticker);
  await pool.close().catch(() => undefined);
  const cpu = process.cpuUsage(cpu0);
  const measuredMs = Math.max(1, (lastDone || performance.now()) - warmEnd);
  progress(requests, ok, performance.now() - t0);
  return {
    requests,
    ok,
    status,
    errors,
    errorSample,
    dropped,
    events,
    measuredMs: Math.round(measuredMs),
    rps: (ok / measuredMs) * 1000,
    eventsPerSec: (events / measuredMs) * 1000,
    offeredRate: job.mode === 'open' ? job.rate : undefined,
    latencyMs: summarize(hist),
    hdr: encodeIntoCompressedBase64(hist),
    perSecond: Array.from(perSecond, (n) => n ?? 0),
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
  };
}

// as a child process: jobs arrive over IPC, one at a time
if (process.send) {
  process.on('message', (msg: ToLoadgen) => {
    if (msg.type === 'exit') process.exit(0);
    if (msg.type !== 'run') return;
    runJob(msg.job, (done, okCount, elapsedMs) => send({ type: 'progress', id: msg.id, done, ok: okCount, elapsedMs })).then(
      (result) => send({ type: 'result', id: msg.id, result }),
      (err: Error) => send({ type: 'error', id: msg.id, message: err.stack ?? err.message }),
    );
  });
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready' });
}
