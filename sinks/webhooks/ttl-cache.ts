// A short-lived read cache: the dispatcher and the deliverer read endpoint rows
// (core/webhooks/endpoints.ts) through it, so the delivery path does not query Postgres per attempt.
export class TtlCache<K, V> {
  private readonly m = new Map<K, { v: V; at: number }>();
  constructor(private readonly ttlMs: number) {}
  get(k: K): V | undefined {
    const e = this.m.get(k);
    if (!e) return undefined;
    if (Date.now() - e.at > this.ttlMs) {
      this.m.delete(k);
      return undefined;
    }
    return e.v;
  }
  set(k: K, v: V): void {
    this.m.set(k, { v, at: Date.now() });
  }
  delete(k: K): void {
    this.m.delete(k);
  }
}
