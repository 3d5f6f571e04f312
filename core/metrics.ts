// Prometheus metrics (prom-client), all prefixed rill_. One registry per process; each component
// registers its own instruments on it through the helpers here, so tests can use a fresh one.
import client from 'prom-client';

export type Registry = client.Registry;

export function createRegistry(opts: { defaults?: boolean } = {}): client.Registry {
  const registry = new client.Registry();
  if (opts.defaults ?? true) {
    client.collectDefaultMetrics({ register: registry, prefix: 'rill_' });
    // gauges named *_total break Prometheus naming rules (promtool check metrics flags them)
    for (const name of ['rill_nodejs_active_handles_total', 'rill_nodejs_active_requests_total', 'rill_nodejs_active_resources_total']) {
      registry.removeSingleMetric(name);
    }
  }
  return registry;
}

/** Get-or-create, so two components asking for one metric share it. */
export function counter<L extends string>(registry: client.Registry, name: string, help: string, labelNames: readonly L[]): client.Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as client.Counter<L>;
  return new client.Counter({ name, help, labelNames, registers: [registry] });
}

export function histogram<L extends string>(
  registry: client.Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
  buckets: number[],
): client.Histogram<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as client.Histogram<L>;
  return new client.Histogram({ name, help, labelNames, buckets, registers: [registry] });
}

export function gauge<L extends string>(registry: client.Registry, name: string, help: string, labelNames: readonly L[]): client.Gauge<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as client.Gauge<L>;
  return new client.Gauge({ name, help, labelNames, registers: [registry] });
}

export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
