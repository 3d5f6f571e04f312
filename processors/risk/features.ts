// Reads a merchant's feature state as the risk script writes it (scripts/risk-score-var.lua):
// "<currencies>|<type:currency keys>|" then 12 + 3 per key doubles, little-endian.
// For tests and operators' debugging; the stage itself never reads it outside the script.
import type { Keys, RedisClient } from '../../core/processor-kit.ts';

export const SCALARS = ['t', 'n', 'r', 'rb', 's', 'tc', 'rc', 'rsb', 'ps', 'fs', 'po', 'u'] as const;

export interface FeatureState {
  scalars: Record<(typeof SCALARS)[number], number>;
  currencies: string[];
  /** per "type:currency": [n, EW mean of ln(amount), EW variance] */
  amounts: Record<string, [number, number, number]>;
  /** bytes in Redis (the value) */
  bytes: number;
}

export const featuresKey = (keys: Keys, partition: number, merchantId: string) => keys.partitioned(partition, 'riskf', merchantId);

export function parseFeatures(raw: Buffer): FeatureState {
  const a = raw.indexOf(0x7c);
  const b = raw.indexOf(0x7c, a + 1);
  const curs = raw.subarray(0, a).toString();
  const keys = raw.subarray(a + 1, b).toString();
  const sks = keys ? keys.split(',') : [];
  const num = (i: number) => raw.readDoubleLE(b + 1 + 8 * i);
  return {
    scalars: Object.fromEntries(SCALARS.map((k, i) => [k, num(i)])) as FeatureState['scalars'],
    currencies: curs ? curs.split(',') : [],
    amounts: Object.fromEntries(sks.map((k, j) => [k, [0, 1, 2].map((x) => num(SCALARS.length + 3 * j + x)) as [number, number, number]])),
    bytes: raw.length,
  };
}

export async function readFeatures(redis: RedisClient, keys: Keys, partition: number, merchantId: string): Promise<FeatureState | undefined> {
  const raw = await redis.getBuffer(featuresKey(keys, partition, merchantId));
  return raw === null ? undefined : parseFeatures(raw);
}
