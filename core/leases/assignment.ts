// Which live member owns which partition of an ordered stage: every member computes the same
// answer from the same member list. Rendezvous hashing (each partition goes to the member that
// ranks it highest) with a cap of ceil(partitions / members) per member, so shares stay even.
// It depends on the member set alone: a member that leaves and comes back with the same id gets
// exactly its partitions back and everyone else ends where they were (Kafka's static membership),
// and a member that leaves moves mostly its own partitions, not everyone's (as `p mod n` did).

/** Partition → owner, for `partitions` partitions over `members` (any order; ids unique). */
export function assignPartitions(members: readonly string[], partitions: number): Map<number, string> {
  const out = new Map<number, string>();
  if (!members.length) return out;
  const sorted = [...members].sort();
  const cap = Math.ceil(partitions / sorted.length);
  const load = new Map(sorted.map((m) => [m, 0]));
  for (let p = 0; p < partitions; p++) {
    let best: string | undefined;
    let bestScore = -1;
    for (const m of sorted) {
      if (load.get(m)! >= cap) continue;
      const s = score(m, p);
      if (s > bestScore) [best, bestScore] = [m, s];
    }
    out.set(p, best!);
    load.set(best!, load.get(best!)! + 1);
  }
  return out;
}

/** FNV-1a of "member/partition", mixed (murmur3 finalizer) so near-equal ids rank independently. */
function score(member: string, partition: number): number {
  let h = 0x811c9dc5;
  const s = `${member}/${partition}`;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
