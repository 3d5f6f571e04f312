// Collects how each entry of a batch is settled, grouped by input stream (one partition and lane),
// and runs one settle script per stream, all in one pipeline: one round trip per batch (on Redis
// Cluster one pipeline per node, concurrently: each script's keys share its partition's slot).
import type { Redis } from 'ioredis';
import { runScript } from '../redis.ts';
import { slotPipeline } from '../slot-pipeline.ts';
import type { ScriptSource } from '../redis.ts';
import type { RawEntry } from './lane-reader.ts';

export type Output =
  /** XADD `fields` to `key`. */
  | { op: 'x'; key: string; fields: readonly string[] }
  /** ZADD `member` with `score` to `key`. */
  | { op: 'z'; key: string; score: number; member: string }
  /** HSET `field` `value` on `key`. */
  | { op: 'h'; key: string; field: string; value: string };

interface StreamCall {
  keys: string[];
  args: (string | number)[];
}

export class Settlement {
  private readonly calls = new Map<string, StreamCall>();

  constructor(private readonly group: string, private readonly script: ScriptSource) {}

  get size(): number {
    return this.calls.size;
  }

  /** Acknowledge `raw` and, if this acknowledges it, write `outputs`. */
  add(raw: Pick<RawEntry, 'stream' | 'id'>, outputs: readonly Output[]): void {
    let call = this.calls.get(raw.stream);
    if (!call) this.calls.set(raw.stream, (call = { keys: [raw.stream], args: [this.group] }));
    call.args.push(raw.id, outputs.length);
    for (const out of outputs) {
      let k = call.keys.indexOf(out.key);
      if (k < 0) k = call.keys.push(out.key) - 1;
      if (out.op === 'x') call.args.push('x', k + 1, out.fields.length, ...out.fields);
      else if (out.op === 'z') call.args.push('z', k + 1, 2, out.score, out.member);
      else call.args.push('h', k + 1, 2, out.field, out.value);
    }
  }

  /** Runs every call; returns how many entries this call acknowledged. */
  async exec(redis: Redis): Promise<number> {
    if (!this.calls.size) return 0;
    const pipe = slotPipeline(redis);
    for (const c of this.calls.values()) pipe.add(c.keys[0]!, (p) => void runScript(p, this.script, c.keys, c.args));
    const res = await pipe.exec();
    let n = 0;
    for (const [err, v] of res) {
      if (err) throw err;
      n += Number(v);
    }
    this.calls.clear();
    return n;
  }
}
