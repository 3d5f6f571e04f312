// The topology.yaml schema: the one source for validation, the typed config and the reference doc.
// Every field carries a description; `rill topology check` and the README reference read them.
import { z } from 'zod';
import { parseDuration } from '../duration.ts';
import { parseSize } from '../size.ts';

const NAME = /^[a-z][a-z0-9_-]{0,47}$/;
const name = (what: string) => z.string().regex(NAME, `a ${what} name: lowercase letters, digits, "_" or "-", starting with a letter`);

const duration = (what: string) =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `${what}: expected a duration like 250ms, 30s, 5m, 24h, 7d or whole milliseconds` });
      return z.NEVER;
    }
    return ms;
  });

/** A byte size (64mb, 2gb or bytes); `format: bytes` tells the reference doc generator. */
const size = (what: string) =>
  z
    .union([z.number(), z.string()])
    .transform((v, ctx) => {
      const bytes = parseSize(v);
      if (bytes === undefined) {
        ctx.addIssue({ code: 'custom', message: `${what}: expected a size like 512kb, 64mb, 2gb or whole bytes` });
        return z.NEVER;
      }
      return bytes;
    })
    .meta({ format: 'bytes' });

export const PrioritySchema = z
  .object({
    name: name('priority class').describe('Lane name, e.g. critical.'),
    types: z.array(z.string().min(1)).default([]).describe('Event types that go to this lane; types matching no lane go to the lowest.'),
    min_share: z.number().min(0).max(1).default(0).describe('Starvation guard: the share of each read this lane still gets while higher lanes are saturated.'),
  })
  .strict();

// Redis is the hot tier: a topic's entries stay replayable from Redis for `hot` (history is in
// Postgres), within `max_bytes`. No rule ever trims an entry some group has not acknowledged.
export const RetentionSchema = z
  .object({
    hot: duration('retention.hot')
      .optional()
      .describe(
        'How long entries stay replayable from Redis: acknowledged entries older than this are trimmed. ' +
          '0s for an intermediate topic (read only by its groups): trimmed as soon as every group has acknowledged.',
      ),
    max_bytes: size('retention.max_bytes')
      .optional()
      .describe("The topic's Redis memory cap, all partitions and lanes together: past it the oldest acknowledged entries are trimmed."),
    max_age: duration('retention.max_age').optional().describe('The older name of `hot`; with both, the shorter applies.'),
    max_len: z.number().int().positive().optional().describe('Keep about this many entries per lane stream.'),
  })
  .strict();

export const TopicSchema = z
  .object({
    partitions: z.number().int().min(1).max(1024).describe('Partition count; every topic of a topology has the same one.'),
    retention: RetentionSchema.optional(),
    external: z.boolean().default(false).describe("Read outside the topology (the data team's tap, alert delivery): no stage or sink needs to read it."),
    materialize: z
      .boolean()
      .default(false)
      .describe('Keep this topic written even between chained stages (tappable, replayable): the stages on either side then run apart.'),
  })
  .strict();

export const RetrySchema = z
  .object({
    attempts: z.number().int().min(1).max(100).default(5).describe('Attempts in all, the first included.'),
    base: duration('retry.base').default(100).describe('First backoff.'),
    factor: z.number().min(1).max(10).default(2).describe('Backoff growth per attempt.'),
    max: duration('retry.max').default(30_000).describe('Backoff ceiling.'),
    jitter: z.enum(['full', 'none']).default('full').describe('Full jitter draws the wait uniformly from [0, backoff].'),
  })
  .strict();

export const DeadLetterSchema = z
  .object({
    max_len: z.number().int().positive().default(1_000_000).describe('Approximate cap per partition dead-letter stream.'),
  })
  .strict();

export const RoutesSchema = z
  .object({
    by: z.string().min(1).describe('The event field whose value picks the topic, e.g. type.'),
    to: z.record(z.string(), name('topic')).describe('Field value → topic; other values go to `output`.'),
  })
  .strict();

export const ParkingSchema = z
  .object({
    max_per_key: z
      .number()
      .int()
      .min(1)
      .default(1_000)
      .describe("ordering key: most events parked for one merchant in one lane of a partition (a waiting event and the merchant's later ones)."),
    max_per_partition: z
      .number()
      .int()
      .min(1)
      .default(100_000)
      .describe('ordering key: most events parked in one partition of this stage, all merchants together.'),
  })
  .strict();

export const StageSchema = z
  .object({
    input: name('topic').describe('Topic this stage consumes (its consumer group is named after the stage).'),
    processor: z.string().min(1).describe('A registered processor name (validate, ...) or a module path (./my-processor.js).'),
    output: name('topic').describe('Topic the processor results are appended to (unless a route says otherwise).'),
    routes: RoutesSchema.optional().describe('Send results to other topics by the value of one event field.'),
    ordering: z.enum(['none', 'key']).default('none').describe('key: one consumer per partition at a time (per-merchant order).'),
    concurrency: z.number().int().min(1).max(64).default(1).describe('Consumer loops per worker process.'),
    batch: z.number().int().min(1).max(10_000).default(100).describe('Entries read per round trip.'),
    retry: RetrySchema.default(RetrySchema.parse({})),
    visibility_timeout: duration('visibility_timeout').default(30_000).describe('Pending entries idle longer than this are reclaimed (XAUTOCLAIM).'),
    lease_ttl: duration('lease_ttl')
      .default(5_000)
      .describe("ordering key: a dead worker's partitions move to others within this time (refreshed every third of it)."),
    dead_letter: DeadLetterSchema.describe('Where events go after the last attempt or a fatal error.'),
    parking: ParkingSchema.default(ParkingSchema.parse({})).describe(
      "ordering key: an event that must retry or wait is parked with its merchant's later events of that lane; everyone else goes on. " +
        'Past a cap the lane of that partition stops being read until parked events drain (nothing lost, order kept).',
    ),
    config: z.record(z.string(), z.unknown()).default({}).describe("The processor's own settings, checked by the processor."),
  })
  .strict();

export const MaintenanceSchema = z
  .object({
    partitions_ahead: z.number().int().min(1).max(60).default(7).describe('Daily partitions of transactions kept created ahead of today.'),
    retention: duration('retention').optional().describe('Detach (not drop) daily partitions older than this; keep all when unset.'),
    refresh_interval: duration('refresh_interval').default(600_000).describe('How often merchant_daily_volume is refreshed (CONCURRENTLY).'),
    interval: duration('interval').default(60_000).describe('How often the leader checks partitions.'),
  })
  .strict();

export const PostgresSinkSchema = z
  .object({
    type: z.literal('postgres').describe('Sink kind.'),
    input: name('topic').describe('Topic this sink consumes.'),
    table: z.literal('transactions').default('transactions').describe('Target table.'),
    batch_rows: z.number().int().min(1).max(100_000).default(5_000).describe('Flush when this many rows are buffered.'),
    max_wait: duration('max_wait').default(200).describe('Flush at the latest this long after the first buffered row.'),
    concurrency: z.number().int().min(1).max(16).default(1).describe('Consumer loops per worker process.'),
    visibility_timeout: duration('visibility_timeout')
      .default(10_000)
      .describe("Pending entries idle longer than this are reclaimed (a dead sink's batch; a rewrite is harmless: ON CONFLICT DO NOTHING)."),
    maintenance: MaintenanceSchema.default(MaintenanceSchema.parse({})).describe('Table upkeep, run by one leader at a time.'),
  })
  .strict();

export const WebhookSchema = z
  .object({
    name: name('webhook').describe('Names the webhook in logs, metrics and dead letters (never its URL: it holds a secret).'),
    kind: z.enum(['slack', 'telegram']).describe('slack: an incoming webhook; telegram: the Bot API sendMessage method.'),
    url: z
      .string()
      .min(1)
      .describe(
        'slack: the incoming-webhook URL. telegram: the Bot API base with the token, https://api.telegram.org/bot<token> ' +
          '(the sink posts to <url>/sendMessage). ${VAR} is replaced by an environment variable at start; an unset one is an error.',
      ),
    chat_id: z
      .union([z.string().min(1), z.number().int()])
      .optional()
      .describe('telegram only: the chat to post to (a number, @channel, or ${VAR}).'),
  })
  .strict()
  .superRefine((w, ctx) => {
    if (w.kind === 'telegram' && w.chat_id === undefined) {
      ctx.addIssue({ code: 'custom', path: ['chat_id'], message: 'a telegram webhook needs chat_id (the chat to post to)' });
    }
    if (w.kind === 'slack' && w.chat_id !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['chat_id'], message: 'chat_id is for telegram webhooks only (a Slack webhook posts to its own channel)' });
    }
  });

export const AlertsSinkSchema = z
  .object({
    type: z.literal('alerts').describe('Sink kind.'),
    input: name('topic').describe('The alerts topic (its consumer group is named after the sink; created at the end of the topic).'),
    webhooks: z.array(WebhookSchema).min(1).describe('Where every alert is delivered.'),
    dedupe_window: duration('dedupe_window')
      .default(900_000)
      .describe('The same alert (kind + merchant + currency, kind + stage, kind + worker) goes to a webhook at most once per window, across workers.'),
    retry: RetrySchema.default(RetrySchema.parse({ attempts: 5, base: 500, max: 10_000 })).describe(
      'Per webhook: network errors, timeouts, 5xx and 429 (after its Retry-After) are retried with backoff.',
    ),
    request_timeout: duration('request_timeout').default(5_000).describe('One webhook request, answer included.'),
    delivery_timeout: duration('delivery_timeout')
      .default(30_000)
      .describe('All attempts of one alert, waits included; past it the alert is dead-lettered (no partition waits longer).'),
    dead_letters: z
      .object({
        threshold: z.number().int().min(1).describe("Alert when a stage's or sink's dead letters grew by at least this many since its last alert."),
      })
      .strict()
      .optional()
      .describe('Dead-letter growth alerts (off when unset).'),
    heartbeat: z
      .object({
        missing_after: duration('heartbeat.missing_after').default(60_000).describe('Alert for a worker whose last heartbeat is older than this.'),
      })
      .strict()
      .optional()
      .describe('Missing worker heartbeat alerts (off when unset).'),
    check_interval: duration('check_interval').default(30_000).describe('How often (one worker at a time) dead letters and heartbeats are checked.'),
    batch: z.number().int().min(1).max(1_000).default(20).describe('Alerts read and delivered at once.'),
    concurrency: z.number().int().min(1).max(16).default(1).describe('Consumer loops per worker process.'),
    visibility_timeout: duration('visibility_timeout')
      .default(60_000)
      .describe('Pending alerts idle longer than this are reclaimed; must exceed delivery_timeout by 5s.'),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.visibility_timeout < s.delivery_timeout + 5_000) {
      ctx.addIssue({
        code: 'custom',
        path: ['visibility_timeout'],
        message: `must be at least delivery_timeout + 5s (${s.delivery_timeout + 5_000} ms), or an alert still being delivered is reclaimed and sent twice`,
      });
    }
    const seen = new Set<string>();
    s.webhooks.forEach((w, i) => {
      if (seen.has(w.name)) ctx.addIssue({ code: 'custom', path: ['webhooks', i, 'name'], message: `webhook name "${w.name}" is used twice` });
      seen.add(w.name);
    });
  });

export const MerchantWebhooksSinkSchema = z
  .object({
    type: z.literal('webhooks').describe('Sink kind: merchant webhooks (Standard Webhooks signatures).'),
    input: name('topic').describe('The webhook events topic (made by the webhook-events stage).'),
    schedule: z
      .array(duration('schedule'))
      .min(1)
      .max(20)
      .default([0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000])
      .describe('Wait before each attempt (the first is usually 0); after the last attempt fails the delivery is failed. Default: Svix.'),
    jitter: z.number().min(0).max(1).default(0.2).describe('Each retry wait is drawn uniformly from ±this share of its schedule value.'),
    connect_timeout: duration('connect_timeout').default(10_000).describe('TCP/TLS connect timeout of one attempt.'),
    request_timeout: duration('request_timeout').default(10_000).describe('One attempt, answer included.'),
    alerts_topic: name('topic').optional().describe('Where webhook_endpoint.disabled alerts go (the alerts topic); none when unset.'),
    secret_grace: duration('secret_grace').default(86_400_000).describe('After a secret rotation the old secret keeps signing (a second signature) this long.'),
    disable_after: duration('disable_after')
      .default(432_000_000)
      .describe('An endpoint failing without a success this long is disabled (a webhook_endpoint.disabled alert).'),
    max_connections: z.number().int().min(1).max(64).default(4).describe('Connections per endpoint (its undici pool bound).'),
    deliveries: z.number().int().min(1).max(1_024).default(64).describe('Attempts in flight per worker loop, over all endpoints.'),
    batch: z.number().int().min(1).max(1_000).default(200).describe('Events read and fanned out at once.'),
    concurrency: z.number().int().min(1).max(16).default(1).describe('Consumer loops per worker process.'),
    visibility_timeout: duration('visibility_timeout').default(60_000).describe('Pending events idle longer than this are reclaimed.'),
  })
  .strict();

/** A sink is a Postgres table writer or an alert notifier, told apart by `type`. */
export const SinkSchema = z.discriminatedUnion('type', [PostgresSinkSchema, AlertsSinkSchema, MerchantWebhooksSinkSchema]);

export const RateLimitSchema = z
  .object({
    per_second: z.number().positive().default(1_000).describe("Each merchant's sustained rate (token bucket refill)."),
    burst: z.number().int().positive().default(2_000).describe('Bucket size: how far above the rate a merchant may burst.'),
  })
  .strict();

export const BackpressureSchema = z
  .object({
    max_lag: z
      .number()
      .int()
      .positive()
      .default(1_000_000)
      .describe('Shed load (503) when entries waiting in the pipeline (lag + pending, all groups) pass this...'),
    resume_lag: z.number().int().nonnegative().default(800_000).describe('...until they are back under this.'),
    max_memory: z
      .number()
      .positive()
      .max(1)
      .default(0.8)
      .describe('Shed load when Redis used_memory passes this share of maxmemory (or of max_memory_bytes)...'),
    resume_memory: z.number().positive().max(1).default(0.7).describe('...until it is back under this share.'),
    max_memory_bytes: z
      .number()
      .int()
      .positive()
      .optional()
      .describe("The memory budget when Redis has no maxmemory set; without either, half of Redis's total_system_memory."),
    check_interval: duration('check_interval').default(500).describe('How often ingest samples lag and memory.'),
    retry_after: duration('retry_after').default(1_000).describe('Retry-After on 503s while shedding.'),
  })
  .strict();

export const IngestSchema = z
  .object({
    topic: name('topic').describe('Topic that accepted transactions are appended to.'),
    idempotency_ttl: duration('idempotency_ttl').default(86_400_000).describe('How long an Idempotency-Key is remembered.'),
    rate_limit: RateLimitSchema.default(RateLimitSchema.parse({})).describe('Per-merchant rate limit (429 past it).'),
    backpressure: BackpressureSchema.default(BackpressureSchema.parse({})).describe('Load shedding before Redis memory or pipeline lag run away.'),
  })
  .strict();

export const RefundsSchema = z
  .object({
    window: duration('window')
      .default(180 * 86_400_000)
      .describe('How long a payin stays refundable (refunds and chargebacks against it).'),
    await_payin: duration('await_payin')
      .default(60_000)
      .describe('A refund of a payin accepted but not settled yet waits this long (from its own acceptance) for the payin, then fails payin_not_settled.'),
    hot: duration('hot')
      .default(48 * 3_600_000)
      .describe('How long a payin stays in Redis (refunds checked there, no query); an older one is checked by the ledger against Postgres.'),
  })
  .strict();

export const TopologySchema = z
  .object({
    version: z.literal(1).describe('Schema version.'),
    ingest: IngestSchema,
    refunds: RefundsSchema.default(RefundsSchema.parse({})).describe(
      'Refunds and chargebacks: checked at ingest against accepted payins, settled by the ledger.',
    ),
    priorities: z.array(PrioritySchema).min(1).describe('Lanes, highest first.'),
    topics: z.record(name('topic'), TopicSchema),
    stages: z.record(name('stage'), StageSchema).default({}),
    sinks: z.record(name('sink'), SinkSchema).default({}),
    chaining: z
      .boolean()
      .default(true)
      .describe(
        'Run consecutive ordering: key stages whose intermediate topic nothing else reads (no stage, sink, external or materialize) as one task: ' +
          'one read, events passed in memory, one atomic settle per batch.',
      ),
  })
  .strict();

export type Topology = z.output<typeof TopologySchema>;
export type TopologyInput = z.input<typeof TopologySchema>;
export type PriorityConfig = z.output<typeof PrioritySchema>;
export type TopicConfig = z.output<typeof TopicSchema>;
export type StageConfig = z.output<typeof StageSchema>;
export type SinkConfig = z.output<typeof SinkSchema>;
export type PostgresSinkConfig = z.output<typeof PostgresSinkSchema>;
export type AlertsSinkConfig = z.output<typeof AlertsSinkSchema>;
export type WebhookConfig = z.output<typeof WebhookSchema>;
export type MerchantWebhooksSinkConfig = z.output<typeof MerchantWebhooksSinkSchema>;
export type RetryConfig = z.output<typeof RetrySchema>;
export type ParkingConfig = z.output<typeof ParkingSchema>;
export type RefundsConfig = z.output<typeof RefundsSchema>;
export type RateLimitConfig = z.output<typeof RateLimitSchema>;
export type BackpressureConfig = z.output<typeof BackpressureSchema>;
export type MaintenanceConfig = z.output<typeof MaintenanceSchema>;
