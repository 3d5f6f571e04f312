// Lane streams held because parking was at a cap (ordering: key). The settle script left the rest
// of such a lane's entries unsettled, still pending here: they wait in memory and are tried again,
// in order, after a short pause (a re-read would count a delivery against each of them). The
// stream's reader skips it meanwhile, so nothing read later overtakes them.
import type { LaneReader, RawEntry } from './lane-reader.ts';

/** What a lane stream left unsettled because parking was at a cap is tried again after this. */
const CAP_PAUSE_MS = 250;

export class CapHold {
  private readonly held = new Map<string, { entries: RawEntry[]; until: number }>();

  /** `readers`: every reader of the task (the first stage's input, a chain's intermediate topics). */
  constructor(private readonly readers: readonly LaneReader[]) {}

  /** After a settle stopped at a cap: hold what each stopped input left of `batch` for a pause from `now`, and pause it. */
  hold(stopped: readonly { input: string; ids: readonly string[] }[], batch: readonly RawEntry[], now: number): void {
    for (const { input, ids } of stopped) {
      const left = new Set(ids);
      this.held.set(input, { entries: batch.filter((e) => e.stream === input && !e.parked && left.has(e.id)), until: now + CAP_PAUSE_MS });
      this.readerOf(input)?.paused.add(input);
    }
  }

  /** The entries whose pause is over, in stream order (their streams stay paused until release()). */
  take(now: number): RawEntry[] {
    const out: RawEntry[] = [];
    for (const [stream, h] of this.held) {
      if (h.until > now) continue;
      this.held.delete(stream);
      out.push(...h.entries);
    }
    return out;
  }

  /** After the taken entries were handled: read again the streams that were not held anew. */
  release(taken: readonly RawEntry[]): void {
    for (const stream of new Set(taken.map((e) => e.stream))) if (!this.held.has(stream)) this.readerOf(stream)?.paused.delete(stream);
  }

  /** The earliest moment a pause is over (Infinity: nothing held). */
  nextDue(): number {
    let t = Infinity;
    for (const h of this.held.values()) t = Math.min(t, h.until);
    return t;
  }

  /** A partition this member no longer serves: nothing of its streams is held or paused here. */
  forgetPartition(partition: number): void {
    for (const r of this.readers) {
      for (const s of r.streamsOf(partition)) {
        this.held.delete(s);
        r.paused.delete(s);
      }
    }
  }

  /** After a failed step: unpause and forget everything held (still pending: the readers recover it, in order). */
  clear(): void {
    for (const stream of this.held.keys()) this.readerOf(stream)?.paused.delete(stream);
    this.held.clear();
  }

  /** The reader a lane stream belongs to. */
  private readerOf(stream: string): LaneReader | undefined {
    return this.readers.find((r) => r.streams.includes(stream));
  }
}
