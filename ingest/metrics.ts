// The edge's Prometheus instruments (design §7). Routes are labelled by pattern, never by raw
// path, so a scan of random URLs cannot blow up label cardinality.
import type { MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { counter, histogram, LATENCY_BUCKETS } from '../core/metrics.ts';
import type { Registry } from '../core/metrics.ts';

export interface IngestMetrics {
  requests: ReturnType<typeof counter<'route' | 'status'>>;
  duration: ReturnType<typeof histogram<'route'>>;
  accepted: ReturnType<typeof counter<'topic' | 'lane'>>;
}

export function ingestMetrics(registry: Registry): IngestMetrics {
  return {
    requests: counter(registry, 'rill_ingest_requests_total', 'Ingest HTTP requests by route pattern and status.', ['route', 'status']),
    duration: histogram(registry, 'rill_ingest_request_duration_seconds', 'Ingest HTTP request latency.', ['route'], LATENCY_BUCKETS),
    accepted: counter(registry, 'rill_events_accepted_total', 'Events appended to a topic, by lane.', ['topic', 'lane']),
  };
}

/** Outermost middleware: sees the final status, error responses included. */
export function recordRequests(m: IngestMetrics): MiddlewareHandler {
  // the instruments' children per label set, looked up once: routes and statuses are few
  const counts = new Map<string, { inc(): void }>();
  const durations = new Map<string, { observe(v: number): void }>();
  return async (c, next) => {
    const start = performance.now();
    try {
      await next();
    } finally {
      const route = routeLabel(matchedRoutes(c));
      const status = c.res.status;
      const key = `${status} ${route}`;
      let count = counts.get(key);
      if (!count) counts.set(key, (count = m.requests.labels({ route, status: String(status) })));
      count.inc();
      let duration = durations.get(route);
      if (!duration) durations.set(route, (duration = m.duration.labels({ route })));
      duration.observe((performance.now() - start) / 1000);
    }
  };
}

// The handler's pattern: the last matched route registered for a method (middleware is "ALL").
function routeLabel(routes: ReturnType<typeof matchedRoutes>): string {
  for (let i = routes.length - 1; i >= 0; i--) if (routes[i]!.method !== 'ALL') return routes[i]!.path;
  return 'unmatched';
}
