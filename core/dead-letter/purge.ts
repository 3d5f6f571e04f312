// Purge: delete dead letters for good (these ids, or all of a stage, or all).
import type { DeadLetterScope } from './scope.ts';
import { execAll } from '../redis.ts';

/** Returns how many were deleted. */
export async function purgeDeadLetters(scope: DeadLetterScope, filter: { stage?: string; ids?: readonly string[] } = {}): Promise<number> {
  if (filter.ids) return purgeIds(scope, filter.ids);
  const stages = scope.selectStages(filter.stage);
  const counts = await Promise.all(
    scope.partitionList(stages).map(async (p) => {
      const pipe = scope.redis.pipeline();
      // XTRIM MAXLEN 0 deletes and counts in one atomic command
      for (const stage of stages) if (p < scope.partitions(stage)) pipe.xtrim(scope.keys.deadLetter(stage, p), 'MAXLEN', 0);
      return (await execAll(pipe)).reduce((n: number, r) => n + Number(r), 0);
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}

async function purgeIds(scope: DeadLetterScope, ids: readonly string[]): Promise<number> {
  const byPartition = new Map<number, { stage: string; entryId: string }[]>();
  for (const id of new Set(ids)) {
    const { stage, partition, entryId } = scope.parseId(id);
    byPartition.get(partition)?.push({ stage, entryId }) ?? byPartition.set(partition, [{ stage, entryId }]);
  }
  const counts = await Promise.all(
    [...byPartition].map(async ([p, wanted]) => {
      const pipe = scope.redis.pipeline();
      for (const w of wanted) pipe.xdel(scope.keys.deadLetter(w.stage, p), w.entryId);
      return (await execAll(pipe)).reduce((n: number, r) => n + Number(r), 0);
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}
