// The load shedder: samples load on a timer, off the request path, and keeps the current
// decision in memory, so the hot path reads one boolean. A failed sample keeps the last decision:
// a blip in the measurement must neither stop shedding during overload nor start it.
import type { Logger } from '../../core/logger.ts';
import { counter, gauge } from '../../core/metrics.ts';
import type { Registry } from '../../core/metrics.ts';
import type { BackpressureConfig } from '../../core/topology/schema.ts';
import { withTimeout } from '../timeout.ts';
import { ACCEPTING, nextLoadState } from './hysteresis.ts';
import type { LoadSample, LoadState } from './hysteresis.ts';

/** What the request path sees of the shedder. */
export interface LoadGate {
  readonly state: LoadState;
  /** Retry-After of a shed request, in whole seconds (at least 1). */
  readonly retryAfterSeconds: number;
}

export interface ShedderOptions {
  measure: () => Promise<LoadSample>;
  config: BackpressureConfig;
  registry: Registry;
  logger: Logger;
  /** Longest wait for one sample. */
  timeoutMs: number;
}

export class LoadShedder implements LoadGate {
  state: LoadState = ACCEPTING;
  readonly retryAfterSeconds: number;
  private timer: NodeJS.Timeout | undefined;
  private tick: Promise<void> | undefined;
  /** The measurement itself; it may outlive its timeout, and then the next one waits. */
  private measuring = false;
  private failing = false;
  private started = false;
  private stopped = false;
  private readonly log: Logger;
  private readonly metrics: ReturnType<typeof shedderMetrics>;

  constructor(private readonly o: ShedderOptions) {
    this.retryAfterSeconds = Math.max(1, Math.ceil(o.config.retry_after / 1000));
    this.log = o.logger.child({ component: 'backpressure' });
    this.metrics = shedderMetrics(o.registry);
    this.metrics.shedding.set(0);
  }

  /** Sample now, then every check_interval until stop(). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    const loop = () => {
      this.tick = this.sample().finally(() => {
        if (!this.stopped) this.timer = setTimeout(loop, this.o.config.check_interval).unref();
      });
    };
    loop();
  }

  /** No sample starts after this; resolves once the one in flight (if any) is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.tick;
  }

  /** One sample and decision; never throws. */
  private sampled = false;

  async sample(): Promise<void> {
    if (this.measuring) return;
    this.measuring = true;
    const measuring = Promise.resolve()
      .then(() => this.o.measure())
      .finally(() => (this.measuring = false));
    let s: LoadSample;
    try {
      s = await withTimeout(measuring, this.o.timeoutMs, 'load sample');
    } catch (err) {
      this.metrics.failures.inc();
      // before the first good sample Redis is usually still connecting: not worth a warning (or a stack)
      const detail = { error: (err as Error).message, shedding: this.state.shedding };
      if (!this.failing && !this.stopped) {
        if (this.sampled) this.log.warn(detail, 'load sample failed; keeping the last decision');
        else this.log.debug(detail, 'first load sample failed (Redis still connecting?); trying again');
      }
      this.failing = true;
      return;
    }
    if (this.failing && this.sampled) this.log.info('load sampling recovered');
    this.failing = false;
    this.sampled = true;
    this.apply(s);
  }

  private apply(s: LoadSample): void {
    const prev = this.state;
    this.state = nextLoadState(prev, s, this.o.config);
    this.metrics.waiting.set(s.waiting);
    if (s.memoryShare !== undefined) this.metrics.memory.set(s.memoryShare);
    this.metrics.shedding.set(this.state.shedding ? 1 : 0);
    if (this.state.shedding && !prev.shedding) this.log.warn({ reasons: this.state.reasons, ...s }, 'shedding load');
    if (!this.state.shedding && prev.shedding) this.log.info({ ...s }, 'load back under the resume levels; accepting again');
  }
}

function shedderMetrics(registry: Registry) {
  return {
    shedding: gauge(registry, 'rill_ingest_shedding', '1 while ingest sheds load (503), else 0.', []),
    waiting: gauge(
      registry,
      'rill_pipeline_waiting_entries',
      'Entries waiting in the pipeline: lag + pending of every stage and sink group, plus delayed retries.',
      [],
    ),
    memory: gauge(registry, 'rill_redis_memory_share', 'Redis used_memory as a share of maxmemory (or max_memory_bytes).', []),
    failures: counter(registry, 'rill_ingest_load_sample_failures_total', 'Load samples that failed (the last decision stays).', []),
  };
}
