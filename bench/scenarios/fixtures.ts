// Instances several scenarios share: the ingest-only instance (single and batch ingest) is set up
// once per run.
import type { BenchInstance, RunningIngest } from '../lib/instance.ts';
import type { TopologyVariant } from '../lib/topology.ts';
import type { Merchant } from '../lib/payload.ts';
import type { RunContext } from './types.ts';

export interface IngestFixture {
  inst: BenchInstance;
  merchants: Merchant[];
  ingest: RunningIngest;
}

/** An instance with merchants (API keys) and a running `rill ingest`, no workers. */
export async function ingestFixture(ctx: RunContext): Promise<IngestFixture> {
  const cached = ctx.shared.get('ingest-fixture') as Promise<IngestFixture> | undefined;
  if (cached) return cached;
  const made = (async () => {
    const inst = ctx.instance('ingest', 'default');
    const merchants = await inst.createMerchants(ctx.profile.merchants);
    const ingest = await inst.startIngest();
    return { inst, merchants, ingest };
  })();
  ctx.shared.set('ingest-fixture', made);
  return made;
}

/** A fresh instance of a topology variant with merchants, migrated. */
export async function merchantInstance(
  ctx: RunContext,
  label: string,
  variant: TopologyVariant = 'default',
): Promise<{ inst: BenchInstance; merchants: Merchant[] }> {
  const inst = ctx.instance(label, variant);
  const merchants = await inst.createMerchants(ctx.profile.merchants);
  return { inst, merchants };
}
