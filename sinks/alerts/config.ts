// The alerts sink's settings (a `type: alerts` entry under `sinks:` in topology.yaml) and the
// start-time resolution of its webhooks (`${VAR}` references to the environment).
//
// AlertsSinkSchema below is the schema proposed for core/topology/schema.ts, where `sinks` becomes
// a discriminated union on `type` (postgres | alerts). Until it is there, this module carries its
// own copy (with local copies of schema.ts's `name` and `duration` helpers); afterwards this file
// re-exports `AlertsSinkSchema` / `AlertsSinkConfig` from core and keeps only the resolution part.
import { z } from 'zod';
import { parseDuration } from '../../core/duration.ts';
import { ConfigError } from '../../core/errors.ts';
import { RetrySchema } from '../../core/topology/schema.ts';

// --- local copies of core/topology/schema.ts's helpers (not exported there) ---
const NAME = /^[a-z][a-z0-9_-]{0,47}$/;
const name = (what: string) =>
  z.string().regex(NAME, `a ${what} name: lowercase letters, digits, "_" or "-", starting with a letter`);
const duration = (what: string) =>
  z
    .union([z.number(), z.string()])
    .transform((v, ctx) => {
      const ms = parseDuration(v);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: `${what}: expected a duration like 250ms, 30s, 5m, 24h, 7d or whole milliseconds` });
        return z.NEVER;
      }
      return ms;
    });

// --- proposed for core/topology/schema.ts (verbatim) ---
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
        threshold: z.number().int().min(1).describe('Alert when a stage\'s or sink\'s dead letters grew by at least this many since its last alert.'),
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

export type WebhookConfig = z.output<typeof WebhookSchema>;
export type AlertsSinkConfig = z.output<typeof AlertsSinkSchema>;
// --- end of the proposed schema ---

/** A webhook ready to call: environment references resolved, the POST target known. */
export interface ResolvedWebhook {
  name: string;
  kind: 'slack' | 'telegram';
  /** The URL requests go to (telegram: `<url>/sendMessage`). Holds secrets: never log it. */
  target: string;
  chatId?: string | number;
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Replace `${VAR}` references; an unset or empty variable is a configuration error. */
export function resolveEnvRefs(value: string, env: NodeJS.ProcessEnv, where: string): string {
  return value.replace(ENV_REF, (_, v: string) => {
    const got = env[v];
    if (got === undefined || got === '') throw new ConfigError(`${where}: environment variable ${v} is not set`);
    return got;
  });
}

/** Resolve every webhook of a sink at start; errors name the sink and webhook, never a secret. */
export function resolveWebhooks(sink: string, webhooks: readonly WebhookConfig[], env: NodeJS.ProcessEnv = process.env): ResolvedWebhook[] {
  return webhooks.map((w, i) => {
    const where = `sinks.${sink}.webhooks.${i} (${w.name})`;
    let url = resolveEnvRefs(w.url, env, `${where}.url`).trim();
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError(`${where}.url: not a URL after resolving environment variables (template: ${w.url})`);
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      throw new ConfigError(`${where}.url: expected an http(s) URL, got ${parsed.protocol}`);
    }
    if (w.kind === 'slack') return { name: w.name, kind: w.kind, target: url };
    url = url.replace(/\/+$/, '');
    const target = url.endsWith('/sendMessage') ? url : `${url}/sendMessage`;
    const chat = w.chat_id === undefined ? undefined : typeof w.chat_id === 'number' ? w.chat_id : resolveEnvRefs(w.chat_id, env, `${where}.chat_id`);
    if (chat === undefined) throw new ConfigError(`${where}: a telegram webhook needs chat_id`);
    return { name: w.name, kind: w.kind, target, chatId: chat };
  });
}
