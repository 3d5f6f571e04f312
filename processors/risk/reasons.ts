// The risk script's reasons ("code:points:value|...") in words, strongest first.

export interface Reason {
  code: string;
  /** This feature's own score, 0–100, before the noisy-OR combination. */
  points: number;
  value: number;
  text: string;
}

const TEXT: Record<string, (v: number) => string> = {
  amount_high: (v) => `amount ${v.toFixed(1)} standard deviations above this merchant's usual for the type and currency`,
  amount_low: (v) => `amount ${(-v).toFixed(1)} standard deviations below this merchant's usual payin (a card-testing probe?)`,
  small_burst: (v) => `${v.toFixed(1)} unusually small payins within minutes (card testing shape)`,
  burst: (v) => `${v.toFixed(1)}x this merchant's usual event rate in the last minute`,
  new_currency: () => 'first transaction in a currency this merchant never used',
  refund_share: (v) => `refunds and chargebacks are ${Math.round(v * 100)}% of the last half hour's transactions`,
  cash_out: (v) => `payout ${Math.round(Math.min(v, 9.99) * 100)}% covered by recently flagged payins`,
  payout_ratio: (v) => `payout ${v.toFixed(1)}x the payins of the last hours`,
  payout_burst: (v) => `${v.toFixed(1)} payouts within about an hour (a merchant usually pays out once a day or less)`,
  unusual_run: (v) => `${v.toFixed(1)} unusually large payins within about half an hour`,
  velocity: (v) => `velocity at ${Math.round(v * 100)}% of a per-minute or per-hour limit`,
};

export function parseReasons(raw: string): Reason[] {
  if (!raw) return [];
  return raw.split('|').map((part) => {
    const [code = '', points = '0', value = '0'] = part.split(':');
    const v = Number(value);
    return { code, points: Number(points), value: v, text: TEXT[code]?.(v) ?? code };
  });
}

/** What the transaction carries: `code: text` per reason. */
export function reasonTexts(raw: string): string[] {
  return parseReasons(raw).map((r) => `${r.code}: ${r.text}`);
}
