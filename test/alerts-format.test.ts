// Alerts sink, pure parts: alert parsing and identity, the Slack and Telegram formats, the
// proposed sink config schema, ${VAR} resolution, Retry-After.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dedupeIdentity, formatMoney, formatSlack, formatTelegram, parseAlert } from '../sinks/alerts/alert.ts';
import type { Alert, WalletLowAlert } from '../sinks/alerts/alert.ts';
import { AlertsSinkSchema, resolveWebhooks } from '../sinks/alerts/config.ts';
import { parseRetryAfter } from '../sinks/alerts/deliver.ts';
import { ConfigError } from '../core/errors.ts';

const AT = Date.UTC(2026, 0, 2, 3, 4, 5);
const walletLow = (over: Partial<WalletLowAlert> = {}): WalletLowAlert => ({
  id: 'alert_tx_1',
  type: 'wallet_low',
  merchant_id: 'm_001',
  currency: 'EUR',
  balance: 400_050,
  threshold: 500_000,
  tx_id: 'tx_1',
  at: AT,
  ...over,
});

test('parseAlert reads the ledger event and says what is wrong with a bad one', () => {
  const a = parseAlert(JSON.stringify(walletLow()));
  assert.deepEqual(a, walletLow());
  assert.match(String(parseAlert('nope')), /not JSON/);
  assert.match(String(parseAlert('[1]')), /not a JSON object/);
  assert.match(String(parseAlert(JSON.stringify({ type: 'wallet_low' }))), /no id/);
  assert.match(String(parseAlert(JSON.stringify({ id: 'a', type: 'wallet_low', merchant_id: 'm' }))), /missing or invalid currency, balance, threshold/);
  const other = parseAlert(JSON.stringify({ id: 'a1', type: 'fraud_spike', merchant_id: 'm', score: 99, at: AT }));
  assert.deepEqual(other, { id: 'a1', type: 'other', event_type: 'fraud_spike', at: AT, fields: { merchant_id: 'm', score: 99 } });
});

test('dedupe identity: kind + merchant + currency, kind + stage, kind + worker', () => {
  assert.equal(dedupeIdentity(walletLow()), 'wallet_low:m_001:EUR');
  assert.equal(dedupeIdentity(walletLow({ id: 'other', balance: 1 })), 'wallet_low:m_001:EUR');
  assert.notEqual(dedupeIdentity(walletLow({ currency: 'USD' })), dedupeIdentity(walletLow()));
  assert.equal(dedupeIdentity({ id: 'x', type: 'dead_letters', stage: 'risk', count: 9, previous: 0, threshold: 5, at: AT }), 'dead_letters:risk');
  assert.equal(dedupeIdentity({ id: 'x', type: 'worker_missing', worker: 'h-1', last_seen: 1, missing_after: 1, at: AT }), 'worker_missing:h-1');
  assert.equal(dedupeIdentity({ id: 'x', type: 'other', event_type: 'e', fields: {} }), 'e:x');
});

test("money in minor units reads in the currency's own decimals", () => {
  assert.equal(formatMoney(400_050, 'EUR'), '4,000.50 EUR');
  assert.equal(formatMoney(5, 'USD'), '0.05 USD');
  assert.equal(formatMoney(12_345, 'JPY'), '12,345 JPY');
  assert.equal(formatMoney(-1_000, 'GBP'), '-10.00 GBP');
  assert.equal(formatMoney(7, 'not-a-code'), '7 not-a-code (minor units)');
});

test('formatSlack: text fallback and blocks, mrkdwn escaped', () => {
  const msg = formatSlack(walletLow());
  assert.match(msg.text, /^:warning: \*Low wallet balance\*: Merchant m_001: EUR wallet at 4,000\.50 EUR, under the 5,000\.00 EUR threshold\.$/);
  const blocks = msg.blocks as { type: string; text?: { text: string }; fields?: { text: string }[]; elements?: { text: string }[] }[];
  assert.deepEqual(
    blocks.map((b) => b.type),
    ['header', 'section', 'section', 'context'],
  );
  assert.equal(blocks[0]!.text!.text, 'Low wallet balance');
  assert.deepEqual(
    blocks[2]!.fields!.map((f) => f.text),
    ['*Merchant*\nm_001', '*Currency*\nEUR', '*Balance*\n4,000.50 EUR', '*Threshold*\n5,000.00 EUR', '*Transaction*\ntx_1', '*At*\n2026-01-02T03:04:05.000Z'],
  );
  assert.match(blocks[3]!.elements![0]!.text, /alert_tx_1/);
  const evil = formatSlack(walletLow({ merchant_id: '<!channel> & co' }));
  assert.ok(evil.text.includes('&lt;!channel&gt; &amp; co'));
  assert.ok(!JSON.stringify(evil).includes('<!channel>'));
});

test('formatTelegram: sendMessage body, HTML escaped, within 4096 characters', () => {
  const msg = formatTelegram(walletLow({ merchant_id: 'm<b>&' }), -100123);
  assert.equal(msg.chat_id, -100123);
  assert.equal(msg.parse_mode, 'HTML');
  assert.ok(msg.text.startsWith('<b>Low wallet balance</b>\nMerchant m&lt;b&gt;&amp;: EUR wallet at 4,000.50 EUR'));
  assert.ok(msg.text.includes('Merchant: <code>m&lt;b&gt;&amp;</code>'));
  assert.ok(msg.text.includes('<i>Rill alert alert_tx_1</i>'));
  const huge: Alert = {
    id: 'big',
    type: 'other',
    event_type: 'x',
    fields: Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, '<'.repeat(2_000)])),
  };
  const long = formatTelegram(huge, '@ops');
  assert.ok(long.text.length <= 4_096, `length ${long.text.length}`);
  assert.ok(
    !/&[a-z]*$/.test(
      long.text
        .split('\n')
        .find((l) => l.startsWith('k0'))!
        .replace('</code>', ''),
    ),
    'no entity cut in half',
  );
});

test('dead-letter and missing-worker alerts read as such in both formats', () => {
  const dl: Alert = { id: 'a_dl', type: 'dead_letters', stage: 'risk', count: 120, previous: 20, threshold: 100, at: AT };
  assert.match(formatSlack(dl).text, /Dead letters piling up\*: Stage risk has 120 dead letters \(100 new since the last alert; threshold 100\)/);
  assert.match(formatTelegram(dl, 1).text, /rill dlq list --stage risk/);
  const wm: Alert = { id: 'a_wm', type: 'worker_missing', worker: 'host-1-42', last_seen: AT - 300_000, missing_after: 60_000, at: AT };
  assert.match(formatSlack(wm).text, /Worker heartbeat missing\*: Worker host-1-42 has not sent a heartbeat for 5m/);
  assert.match(formatTelegram(wm, 1).text, /Missing after: <code>60s<\/code>/);
});

test('the sink schema: defaults, telegram needs chat_id, visibility timeout covers delivery', () => {
  const base = { type: 'alerts', input: 'alerts', webhooks: [{ name: 'ops', kind: 'slack', url: '${SLACK_WEBHOOK_URL}' }] };
  const c = AlertsSinkSchema.parse(base);
  assert.equal(c.dedupe_window, 900_000);
  assert.equal(c.delivery_timeout, 30_000);
  assert.equal(c.request_timeout, 5_000);
  assert.equal(c.check_interval, 30_000);
  assert.deepEqual(c.retry, { attempts: 5, base: 500, factor: 2, max: 10_000, jitter: 'full' });
  assert.equal(c.dead_letters, undefined);
  assert.equal(AlertsSinkSchema.parse({ ...base, heartbeat: {} }).heartbeat?.missing_after, 60_000);
  assert.equal(AlertsSinkSchema.parse({ ...base, dedupe_window: '1h', dead_letters: { threshold: 10 } }).dedupe_window, 3_600_000);

  const issues = (v: unknown) => {
    const r = AlertsSinkSchema.safeParse(v);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  assert.deepEqual(issues({ ...base, webhooks: [{ name: 'tg', kind: 'telegram', url: 'https://api.telegram.org/bot${T}' }] }), [
    'webhooks.0.chat_id: a telegram webhook needs chat_id (the chat to post to)',
  ]);
  assert.match(issues({ ...base, webhooks: [{ name: 'ops', kind: 'slack', url: 'u', chat_id: 1 }] })[0]!, /chat_id is for telegram webhooks only/);
  assert.match(issues({ ...base, delivery_timeout: '60s' })[0]!, /^visibility_timeout: must be at least delivery_timeout \+ 5s \(65000 ms\)/);
  assert.match(issues({ ...base, webhooks: [base.webhooks[0], base.webhooks[0]] })[0]!, /webhooks\.1\.name: webhook name "ops" is used twice/);
  assert.ok(issues({ ...base, webhooks: [] }).length);
  assert.ok(issues({ ...base, webhooks: [{ name: 'x', kind: 'teams', url: 'u' }] }).length);
  assert.ok(issues({ ...base, dead_letters: { threshold: 0 } }).length);
  assert.ok(issues({ ...base, extra: 1 }).length);
});

test('webhook URLs resolve ${VAR} at start; a missing variable is a config error naming it, never a secret', () => {
  const c = AlertsSinkSchema.parse({
    type: 'alerts',
    input: 'alerts',
    webhooks: [
      { name: 'ops', kind: 'slack', url: '${SLACK_WEBHOOK_URL}' },
      { name: 'tg', kind: 'telegram', url: 'https://api.telegram.org/bot${TG_TOKEN}/', chat_id: '${TG_CHAT}' },
    ],
  });
  const env = { SLACK_WEBHOOK_URL: 'https://hooks.slack.com/services/T/B/secret', TG_TOKEN: '123:abc', TG_CHAT: '-100' };
  assert.deepEqual(resolveWebhooks('notify', c.webhooks, env), [
    { name: 'ops', kind: 'slack', target: 'https://hooks.slack.com/services/T/B/secret' },
    { name: 'tg', kind: 'telegram', target: 'https://api.telegram.org/bot123:abc/sendMessage', chatId: '-100' },
  ]);
  assert.throws(
    () => resolveWebhooks('notify', c.webhooks, { ...env, TG_TOKEN: '' }),
    (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, 'sinks.notify.webhooks.1 (tg).url: environment variable TG_TOKEN is not set');
      return true;
    },
  );
  assert.throws(
    () => resolveWebhooks('notify', c.webhooks, { ...env, SLACK_WEBHOOK_URL: 'not a url secret' }),
    (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.ok(!err.message.includes('secret'), err.message);
      return true;
    },
  );
  assert.throws(() => resolveWebhooks('notify', c.webhooks, { ...env, SLACK_WEBHOOK_URL: 'ftp://x' }), /expected an http\(s\) URL/);
});

test('Retry-After: seconds or an HTTP date', () => {
  assert.equal(parseRetryAfter('1'), 1_000);
  assert.equal(parseRetryAfter(' 30 '), 30_000);
  const now = Date.UTC(2026, 0, 1, 0, 0, 0);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now), 5_000);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 00:00:05 GMT', now), 0);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter('soon'), undefined);
});
