// A seeded, labelled synthetic payment stream for the risk evaluation. Each merchant has its own
// normal behaviour (rate, amount level and spread, currencies, refund rate, a daily payout, legit
// noise: heavy-tailed amounts, busy hours, a currency added midway); fraud of five named patterns
// is injected into some merchants. Only the generator knows the labels: the detector sees events.
import { mulberry32 } from '../../test/sim/prng.ts';

export const PATTERNS = ['card_testing', 'cash_out', 'refund_abuse', 'amount_spike', 'ato_burst'] as const;
export type Pattern = (typeof PATTERNS)[number];

export interface LabelledEvent {
  merchant: string;
  type: 'payin' | 'payout' | 'refund' | 'chargeback';
  amount: number;
  currency: string;
  /** ms since the start of the stream */
  t: number;
  label: Pattern | null;
}

export interface Stream {
  events: LabelledEvent[];
  /** merchants with injected fraud (any pattern), and which */
  victims: Map<string, Pattern>;
  merchants: number;
}

export interface GeneratorOptions {
  seed: number;
  merchants: number;
  hours: number;
}

const HOUR = 3_600_000;
const CURRENCIES = ['USD', 'EUR', 'GBP', 'CAD', 'AUD', 'SEK', 'JPY', 'CHF'];

export function generate(o: GeneratorOptions): Stream {
  const r = mulberry32(o.seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const uni = (a: number, b: number) => a + (b - a) * r();
  const int = (a: number, b: number) => Math.floor(uni(a, b + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const end = o.hours * HOUR;
  const events: LabelledEvent[] = [];
  const victims = new Map<string, Pattern>();

  // how many merchants each pattern hits, for about 1 % fraud events (at least 3 each)
  const per = (n: number) => Math.max(3, Math.round((n * o.merchants) / 1000));
  const plan: Pattern[] = [
    ...Array<Pattern>(per(25)).fill('card_testing'),
    ...Array<Pattern>(per(100)).fill('cash_out'),
    ...Array<Pattern>(per(50)).fill('refund_abuse'),
    ...Array<Pattern>(per(240)).fill('amount_spike'),
    ...Array<Pattern>(per(60)).fill('ato_burst'),
  ];
  const order = Array.from({ length: o.merchants }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  plan.slice(0, o.merchants).forEach((p, k) => victims.set(`m_${order[k]}`, p));

  for (let m = 0; m < o.merchants; m++) {
    const id = `m_${m}`;
    const home = r() < 0.4 ? 'USD' : r() < 0.5 ? 'EUR' : pick(CURRENCIES);
    const second = r() < 0.2 ? pick(CURRENCIES.filter((c) => c !== home)) : undefined;
    const mu = Math.log(Math.max(1_000, Math.exp(Math.log(3_000) + 0.8 * normal())));
    const sigma = uni(0.3, 0.9);
    const rate = Math.min(60, Math.max(0.3, Math.exp(Math.log(3) + normal()))); // payins per hour
    const refundRate = uni(0.005, 0.05);
    const payoutAt = uni(0, 24) * HOUR;
    const addsCurrency = r() < 0.03 ? { at: uni(0.2, 0.9) * end, cur: pick(CURRENCIES.filter((c) => c !== home)) } : undefined;
    const busy = new Set<number>(); // legit busy hours at 4x the rate
    for (let h = 0; h < o.hours; h++) if (r() < (0.05 / 24) * 4) busy.add(h);
    const amountOf = () => Math.max(1, Math.round(Math.exp(mu + (r() < 0.01 ? 2.5 : 1) * sigma * normal())));

    let t = r() * (HOUR / rate);
    let dayPayins = 0;
    let nextPayout = payoutAt;
    while (t < end) {
      while (nextPayout <= t) {
        if (dayPayins > 0)
          events.push({ merchant: id, type: 'payout', amount: Math.round(dayPayins * uni(0.8, 1)), currency: home, t: nextPayout, label: null });
        dayPayins = 0;
        nextPayout += 24 * HOUR;
      }
      const currency = addsCurrency && t > addsCurrency.at && r() < 0.3 ? addsCurrency.cur : second && r() < 0.2 ? second : home;
      const amount = amountOf();
      events.push({ merchant: id, type: 'payin', amount, currency, t, label: null });
      if (currency === home) dayPayins += amount;
      if (r() < refundRate) {
        const at = t + -Math.log(1 - r()) * 12 * HOUR;
        if (at < end) events.push({ merchant: id, type: 'refund', amount, currency, t: at, label: null });
      }
      if (r() < 0.002) {
        const at = t + uni(6, 48) * HOUR;
        if (at < end) events.push({ merchant: id, type: 'chargeback', amount, currency, t: at, label: null });
      }
      const hourRate = busy.has(Math.floor(t / HOUR)) ? rate * 4 : rate;
      t += -Math.log(1 - r()) * (HOUR / hourRate);
    }

    const pattern = victims.get(id);
    if (!pattern) continue;
    let at = uni(0.2, 0.95) * end;
    const median = Math.exp(mu);
    const push = (type: LabelledEvent['type'], amount: number, currency: string) => {
      if (at < end) events.push({ merchant: id, type, amount: Math.max(1, Math.round(amount)), currency, t: at, label: pattern });
    };
    if (pattern === 'card_testing') {
      for (let k = int(15, 40); k > 0; k--, at += uni(2, 20) * 1000) push('payin', uni(50, 150), home);
    } else if (pattern === 'cash_out') {
      let sum = 0;
      for (let k = int(2, 4); k > 0; k--, at += uni(1, 5) * 60_000) {
        const a = median * uni(8, 20);
        sum += a;
        push('payin', a, home);
      }
      at += uni(2, 10) * 60_000;
      push('payout', sum * uni(0.9, 1), home);
    } else if (pattern === 'refund_abuse') {
      for (let k = int(6, 15); k > 0; k--, at += uni(1, 6) * 60_000) push('refund', median * Math.exp(sigma * normal()), home);
    } else if (pattern === 'amount_spike') {
      for (let k = int(1, 2); k > 0; k--, at += uni(1, 30) * 60_000) push('payin', median * uni(15, 80), home);
    } else {
      const cur = r() < 0.6 ? pick(CURRENCIES.filter((c) => c !== home && c !== second)) : home;
      for (let k = int(5, 12); k > 0; k--, at += uni(20, 90) * 1000) push('payout', median * uni(2, 5), cur);
    }
  }
  // one order for everyone: by time, then merchant (stable for a seed)
  events.sort((a, b) => a.t - b.t || (a.merchant < b.merchant ? -1 : a.merchant > b.merchant ? 1 : 0));
  return { events, victims, merchants: o.merchants };
}
