// Alert events (the alerts topic's entries) and how they read in Slack and Telegram. Everything
// here is pure: no I/O, no clock.
//   wallet_low      emitted by the ledger when a debit takes a wallet under its threshold
//   dead_letters    raised by the alerts sink: a stage's dead letters grew past the threshold
//   worker_missing  raised by the alerts sink: a worker's heartbeat is older than missing_after
// Any other type is delivered too, generically (an alert is never dropped for being new).

export interface WalletLowAlert {
  id: string;
  type: 'wallet_low';
  merchant_id: string;
  currency: string;
  /** Minor units. */
  balance: number;
  /** Minor units. */
  threshold: number;
  tx_id?: string;
  /** Unix ms. */
  at: number;
}

export interface DeadLettersAlert {
  id: string;
  type: 'dead_letters';
  /** The stage (or sink) whose dead letters grew. */
  stage: string;
  /** Dead letters now, over all partitions. */
  count: number;
  /** Dead letters when this stage last alerted (0 at first). */
  previous: number;
  threshold: number;
  at: number;
}

export interface WorkerMissingAlert {
  id: string;
  type: 'worker_missing';
  worker: string;
  /** Unix ms of its last heartbeat. */
  last_seen: number;
  missing_after: number;
  at: number;
}

/** An alert of a type this sink does not know: delivered with its fields listed. */
export interface OtherAlert {
  id: string;
  type: 'other';
  /** The event's own `type`. */
  event_type: string;
  at?: number;
  fields: Record<string, unknown>;
}

export type Alert = WalletLowAlert | DeadLettersAlert | WorkerMissingAlert | OtherAlert;

const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** An alert event from its JSON body; an Error says what is wrong with it. */
export function parseAlert(json: string): Alert | Error {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return new Error('alert entry body is not JSON');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return new Error('alert entry body is not a JSON object');
  const o = v as Record<string, unknown>;
  if (!isStr(o.id)) return new Error('alert has no id');
  if (!isStr(o.type)) return new Error(`alert ${o.id} has no type`);
  const bad = (fields: string[]) => new Error(`${o.type} alert ${o.id as string}: missing or invalid ${fields.join(', ')}`);
  switch (o.type) {
    case 'wallet_low': {
      const missing = [
        ...(isStr(o.merchant_id) ? [] : ['merchant_id']),
        ...(isStr(o.currency) ? [] : ['currency']),
        ...(isNum(o.balance) ? [] : ['balance']),
        ...(isNum(o.threshold) ? [] : ['threshold']),
      ];
      if (missing.length) return bad(missing);
      return {
        id: o.id,
        type: 'wallet_low',
        merchant_id: o.merchant_id as string,
        currency: o.currency as string,
        balance: o.balance as number,
        threshold: o.threshold as number,
        ...(isStr(o.tx_id) ? { tx_id: o.tx_id } : {}),
        at: isNum(o.at) ? o.at : 0,
      };
    }
    case 'dead_letters': {
      const missing = [...(isStr(o.stage) ? [] : ['stage']), ...(isNum(o.count) ? [] : ['count'])];
      if (missing.length) return bad(missing);
      return {
        id: o.id,
        type: 'dead_letters',
        stage: o.stage as string,
        count: o.count as number,
        previous: isNum(o.previous) ? o.previous : 0,
        threshold: isNum(o.threshold) ? o.threshold : 0,
        at: isNum(o.at) ? o.at : 0,
      };
    }
    case 'worker_missing': {
      const missing = [...(isStr(o.worker) ? [] : ['worker']), ...(isNum(o.last_seen) ? [] : ['last_seen'])];
      if (missing.length) return bad(missing);
      return {
        id: o.id,
        type: 'worker_missing',
        worker: o.worker as string,
        last_seen: o.last_seen as number,
        missing_after: isNum(o.missing_after) ? o.missing_after : 0,
        at: isNum(o.at) ? o.at : 0,
      };
    }
    default: {
      const { id, type, at, ...fields } = o;
      return { id: id as string, type: 'other', event_type: type as string, ...(isNum(at) ? { at } : {}), fields };
    }
  }
}

/**
 * What makes two alerts "the same" for the dedupe window: kind + merchant + currency, kind +
 * stage, kind + worker; an unknown kind only matches itself (its id).
 */
export function dedupeIdentity(a: Alert): string {
  switch (a.type) {
    case 'wallet_low':
      return `wallet_low:${a.merchant_id}:${a.currency}`;
    case 'dead_letters':
      return `dead_letters:${a.stage}`;
    case 'worker_missing':
      return `worker_missing:${a.worker}`;
    case 'other':
      return `${a.event_type}:${a.id}`;
  }
}

/** Minor units as an amount: 400050 EUR → "4,000.50 EUR"; unknown currencies stay in minor units. */
export function formatMoney(minor: number, currency: string): string {
  let digits: number;
  try {
    digits = new Intl.NumberFormat('en-US', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return `${minor} ${currency} (minor units)`;
  }
  const sign = minor < 0 ? '-' : '';
  const abs = Math.abs(Math.trunc(minor));
  const scale = 10 ** digits;
  const whole = Math.floor(abs / scale).toLocaleString('en-US');
  const frac = digits ? `.${String(abs % scale).padStart(digits, '0')}` : '';
  return `${sign}${whole}${frac} ${currency}`;
}

/** "5m", "90s", "2h 5m": short enough for a chat line. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h}h ${m % 60}m` : `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : 'unknown time');

/** One alert, medium-neutral: a title, a one-line summary, labelled facts. */
interface Described {
  title: string;
  emoji: string;
  summary: string;
  facts: [label: string, value: string][];
}

function describe(a: Alert): Described {
  switch (a.type) {
    case 'wallet_low':
      return {
        title: 'Low wallet balance',
        emoji: ':warning:',
        summary: `Merchant ${a.merchant_id}: ${a.currency} wallet at ${formatMoney(a.balance, a.currency)}, under the ${formatMoney(a.threshold, a.currency)} threshold.`,
        facts: [
          ['Merchant', a.merchant_id],
          ['Currency', a.currency],
          ['Balance', formatMoney(a.balance, a.currency)],
          ['Threshold', formatMoney(a.threshold, a.currency)],
          ...(a.tx_id ? ([['Transaction', a.tx_id]] as [string, string][]) : []),
          ['At', iso(a.at)],
        ],
      };
    case 'dead_letters':
      return {
        title: 'Dead letters piling up',
        emoji: ':rotating_light:',
        summary: `Stage ${a.stage} has ${a.count} dead letters (${a.count - a.previous} new since the last alert; threshold ${a.threshold}). Inspect with: rill dlq list --stage ${a.stage}`,
        facts: [
          ['Stage', a.stage],
          ['Dead letters', String(a.count)],
          ['New since last alert', String(a.count - a.previous)],
          ['Threshold', String(a.threshold)],
          ['At', iso(a.at)],
        ],
      };
    case 'worker_missing': {
      const age = a.at && a.last_seen ? formatAge(a.at - a.last_seen) : 'a while';
      return {
        title: 'Worker heartbeat missing',
        emoji: ':skull:',
        summary: `Worker ${a.worker} has not sent a heartbeat for ${age} (last seen ${iso(a.last_seen)}).`,
        facts: [
          ['Worker', a.worker],
          ['Last seen', iso(a.last_seen)],
          ['Missing after', formatAge(a.missing_after)],
          ['At', iso(a.at)],
        ],
      };
    }
    case 'other': {
      const facts = Object.entries(a.fields)
        .slice(0, 8)
        .map(([k, v]): [string, string] => [k, typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v))]);
      return { title: `Alert: ${a.event_type}`, emoji: ':bell:', summary: `Alert ${a.event_type} (${a.id}).`, facts: [...facts, ['At', iso(a.at)]] };
    }
  }
}

const clip = (s: string, max: number) => (s.length <= max ? s : `${s.slice(0, max - 1)}…`);

/** Slack mrkdwn / text: only &, < and > are special (https://api.slack.com/reference/surfaces/formatting#escaping). */
export function escapeSlack(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Telegram parse_mode HTML: &, < and > must be entities. */
export function escapeTelegramHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export interface SlackMessage {
  text: string;
  blocks?: unknown[];
}

/** A Slack incoming-webhook body: `text` (notifications, fallback) and Block Kit `blocks`. */
export function formatSlack(alert: Alert): SlackMessage {
  const d = describe(alert);
  // cut before escaping, so no entity is ever cut in half (escaping at most quintuples a character)
  const text = `${d.emoji} *${escapeSlack(clip(d.title, 100))}*: ${escapeSlack(clip(d.summary, 500))}`;
  const fields = d.facts
    .slice(0, 10)
    .map(([label, value]) => ({ type: 'mrkdwn', text: `*${escapeSlack(clip(label, 50))}*\n${escapeSlack(clip(value, 300))}` }));
  return {
    text,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: clip(d.title, 150), emoji: true } },
      { type: 'section', text: { type: 'mrkdwn', text: escapeSlack(clip(d.summary, 500)) } },
      ...(fields.length ? [{ type: 'section', fields }] : []),
      { type: 'context', elements: [{ type: 'mrkdwn', text: `Rill alert \`${escapeSlack(clip(alert.id, 200))}\`` }] },
    ],
  };
}

export interface TelegramMessage {
  chat_id: string | number;
  text: string;
  parse_mode?: 'HTML';
  disable_web_page_preview?: boolean;
}

/** A Telegram Bot API sendMessage body (HTML parse mode, at most 4096 characters of text). */
export function formatTelegram(alert: Alert, chatId: string | number): TelegramMessage {
  const d = describe(alert);
  const lines = [
    `<b>${escapeTelegramHtml(d.title)}</b>`,
    escapeTelegramHtml(clip(d.summary, 600)),
    '',
    ...d.facts.map(([label, value]) => `${escapeTelegramHtml(clip(label, 50))}: <code>${escapeTelegramHtml(clip(value, 300))}</code>`),
    '',
    `<i>Rill alert ${escapeTelegramHtml(alert.id)}</i>`,
  ];
  let text = lines.join('\n');
  // cut whole lines, never inside a tag or an entity
  while (text.length > 4_096 && lines.length > 2) {
    lines.splice(lines.length - 2, 1);
    text = lines.join('\n');
  }
  if (text.length > 4_096) text = escapeTelegramHtml(clip(`${d.title}: ${d.summary}`, 800));
  return { chat_id: chatId, text, parse_mode: 'HTML', disable_web_page_preview: true };
}
