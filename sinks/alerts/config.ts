// The alerts sink's settings (a `type: alerts` entry under `sinks:` in topology.yaml) and the
// start-time resolution of its webhooks (`${VAR}` references to the environment).
//
// AlertsSinkSchema below is the schema proposed for core/topology/schema.ts, where `sinks` becomes
// a discriminated union on `type` (postgres | alerts). Until it is there, this module carries its
// own copy (with local copies of schema.ts's `name` and `duration` helpers); afterwards this file
// re-exports `AlertsSinkSchema` / `AlertsSinkConfig` from core and keeps only the resolution part.
import { ConfigError } from '../../core/errors.ts';
import type { WebhookConfig } from '../../core/topology/schema.ts';

export { AlertsSinkSchema, WebhookSchema } from '../../core/topology/schema.ts';
export type { AlertsSinkConfig, WebhookConfig } from '../../core/topology/schema.ts';

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
