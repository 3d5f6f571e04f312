// Reads a merchant's feature state as the risk script writes it (scripts/risk-score.lua):
// "<12 scalars>|<currencies>|<type:currency>=n,mean,var;...". For tests and operators' debugging.
import type { Keys } from '../../core/keys.ts';
import type { RedisClient } from '../../core/redis.ts';

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

export function parseFeatures(raw: string): FeatureState {
  const [scalars = '', curs = '', stats = ''] = raw.split('|');
  const values = scalars.split(',').map(Number);
  return {
    scalars: Object.fromEntries(SCALARS.map((k, i) => [k, values[i]!])) as FeatureState['scalars'],
    currencies: curs ? curs.split(',') : [],
    amounts: Object.fromEntries(
      (stats ? stats.split(';') : []).map((e) => {
        const [k, v = ''] = e.split('=');
        return [k!, v.split(',').map(Number) as [number, number, number]];
      }),
    ),
    bytes: Buffer.byteLength(raw),
  };
}

export async function readFeatures(redis: RedisClient, keys: Keys, partition: number, merchantId: string): Promise<FeatureState | undefined> {
  const raw = await redis.get(featuresKey(keys, partition, merchantId));
  return raw === null ? undefined : parseFeatures(raw);
}
