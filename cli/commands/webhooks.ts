// `rill webhooks list|deliveries|redeliver`: merchant webhook endpoints for operators. Secrets are
// never printed; URLs show their host only (a path may carry a token).
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { readEnv } from '../../core/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { Keys } from '../../core/keys.ts';
import { partitionOf } from '../../core/partition.ts';
import { createPool } from '../../core/postgres.ts';
import { connectRedis } from '../../core/redis.ts';
import { loadTopology } from '../../core/topology/load.ts';
import { migrate } from '../../sinks/postgres/migrate.ts';
import { deliveries } from '../../core/webhooks/deliveries.ts';
import { EndpointStore } from '../../core/webhooks/endpoints.ts';
import { WebhookEnqueuer } from '../../core/webhooks/enqueue.ts';
import { QueueKeys } from '../../core/webhooks/queue.ts';
import { secretKey } from '../../core/webhooks/secrets.ts';

const HELP = `usage: rill webhooks list [--merchant ID]
       rill webhooks deliveries ENDPOINT_ID [--limit N]
       rill webhooks redeliver EVENT_ID [--endpoint ENDPOINT_ID]

list        endpoints (id, merchant, host, enabled, failing since, deliveries waiting)
deliveries  an endpoint's latest deliveries: status, attempts, last status code, next retry
redeliver   queue an event again to its merchant's subscribed endpoints (or one endpoint)`;

const host = (url: string) => {
  try {
    return new URL(url).host;
  } catch {
    return '?';
  }
};

export async function webhooksCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { merchant: { type: 'string' }, endpoint: { type: 'string' }, limit: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const [action, target] = positionals;
  if (values.help || !action) {
    console.log(HELP);
    return values.help ? 0 : 1;
  }
  if (!['list', 'deliveries', 'redeliver'].includes(action)) throw new ConfigError(`unknown webhooks action "${action}" (list, deliveries or redeliver)`);
  if (action !== 'list' && !target) throw new ConfigError(`give the ${action === 'deliveries' ? 'endpoint' : 'event'} id`);
  const limit = values.limit === undefined ? 20 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new ConfigError('--limit must be a whole number from 1 to 100');
  const env = readEnv();
  const topology = loadTopology(env.topologyPath);
  const sink = Object.values(topology.sinks).find((s) => s.type === 'webhooks');
  const partitions = topology.topics[sink?.input ?? topology.ingest.topic]?.partitions ?? 1;
  const pool = createPool(env, { max: 2, name: 'rill-webhooks-cli' });
  const redis = connectRedis(env, { name: 'rill-webhooks-cli' }) as Redis;
  const keys = new Keys(env.prefix);
  const qk = new QueueKeys(keys);
  try {
    await migrate(pool, env.pgSchema);
    const store = new EndpointStore(pool, secretKey());
    if (action === 'list') {
      const { rows } = await pool.query<{ id: string }>(
        'SELECT id FROM webhook_endpoints WHERE deleted_at IS NULL AND ($1::text IS NULL OR merchant_id = $1) ORDER BY merchant_id, created_at',
        [values.merchant ?? null],
      );
      console.log(['ENDPOINT', 'MERCHANT', 'HOST', 'ENABLED', 'FAILING_SINCE', 'WAITING'].join('\t'));
      for (const { id } of rows) {
        const e = await store.get(undefined, id);
        if (!e) continue;
        const waiting = await redis.llen(qk.queue(partitionOf(e.merchant_id, partitions), e.id));
        console.log(
          [
            e.id,
            e.merchant_id,
            host(e.url),
            e.enabled ? 'yes' : `no (${e.disabled_reason ?? 'by merchant'})`,
            e.failing_since?.toISOString() ?? '-',
            waiting,
          ].join('\t'),
        );
      }
      return 0;
    }
    if (action === 'deliveries') {
      const e = await store.get(undefined, target!);
      if (!e) throw new ConfigError(`no webhook endpoint ${target}`);
      console.log(['EVENT', 'TYPE', 'STATUS', 'ATTEMPTS', 'LAST_STATUS', 'LAST_ERROR', 'NEXT_RETRY'].join('\t'));
      for (const d of await deliveries(redis, pool, qk, e, partitions, limit)) {
        const last = d.attempts[d.attempts.length - 1];
        console.log([d.event_id, d.event_type, d.status, d.attempts.length, last?.status_code ?? '-', last?.error ?? '-', d.next_retry_at ?? '-'].join('\t'));
      }
      return 0;
    }
    const { rows } = await pool.query<{ merchant_id: string }>('SELECT merchant_id FROM webhook_events WHERE id = $1', [target]);
    const merchant = rows[0]?.merchant_id;
    if (!merchant) throw new ConfigError(`no webhook event ${target}`);
    const enqueuer = new WebhookEnqueuer(redis, pool, keys, partitions);
    const event = (await enqueuer.event(merchant, target!))!;
    const targets = values.endpoint ? [await store.get(merchant, values.endpoint)] : await store.list(merchant);
    if (values.endpoint && !targets[0]) throw new ConfigError(`no webhook endpoint ${values.endpoint} of merchant ${merchant}`);
    let queued = 0;
    for (const t of targets) if (t?.enabled) queued += await enqueuer.toEndpoint(t, [event], !values.endpoint);
    console.log(`queued ${queued} deliver${queued === 1 ? 'y' : 'ies'} of ${target}`);
    return 0;
  } finally {
    redis.disconnect();
    await pool.end();
  }
}
