// Rates for the live views, measured like `rill status` (collect + buildReport): one shared
// sampler per console process, so any number of open pages cost one Redis sample per interval.
// A sample older than `staleMs` is not used as the base of a rate (it would average over the
// idle time): the next report then starts measuring again.
import { buildReport, collect } from '../core/observability/status-report.ts';
import type { Sample, StatusReport } from '../core/observability/status-report.ts';
import type { Keys } from '../core/keys.ts';
import type { RedisClient } from '../core/redis.ts';
import type { Topology } from '../core/topology/schema.ts';

export class StatusSampler {
  private prev: Sample | undefined;
  private cur: Sample | undefined;
  private inflight: Promise<void> | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly topology: Topology,
    private readonly minIntervalMs = 900,
    private readonly staleMs = 5_000,
  ) {}

  /** The latest report; undefined until two samples exist (about one interval after the first call). */
  async report(): Promise<StatusReport | undefined> {
    if (!this.cur || Date.now() - this.cur.streams.at >= this.minIntervalMs) await (this.inflight ??= this.sample().finally(() => (this.inflight = undefined)));
    return this.prev && this.cur ? buildReport(this.topology, this.prev, this.cur) : undefined;
  }

  private async sample(): Promise<void> {
    const next = await collect(this.redis, this.keys, this.topology);
    this.prev = this.cur && next.streams.at - this.cur.streams.at <= this.staleMs ? this.cur : undefined;
    this.cur = next;
  }
}
