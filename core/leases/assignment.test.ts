import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assignPartitions } from './assignment.ts';

const owners = (a: Map<number, string>) => [...a.values()];
const shareOf = (a: Map<number, string>, m: string) => [...a].filter(([, o]) => o === m).map(([p]) => p);

test('shares are even: no member owns more than ceil(partitions / members)', () => {
  for (const n of [1, 2, 3, 5, 8]) {
    for (const partitions of [1, 8, 12, 16, 64]) {
      const members = Array.from({ length: n }, (_, i) => `rill-worker-${i}-validate-0`);
      const a = assignPartitions(members, partitions);
      assert.equal(a.size, partitions);
      for (const m of members) assert.ok(shareOf(a, m).length <= Math.ceil(partitions / n), `${n} members, ${partitions} partitions`);
    }
  }
});

test('every member computes the same answer, whatever order it lists the members in', () => {
  const members = ['w-a', 'w-b', 'w-c', 'w-d'];
  assert.deepEqual(owners(assignPartitions(members, 16)), owners(assignPartitions([...members].reverse(), 16)));
});

test('a member that leaves and comes back gets exactly its partitions back; a leave moves few others', () => {
  const members = Array.from({ length: 4 }, (_, i) => `rill-worker-${i}-validate-0`);
  const before = assignPartitions(members, 16);
  const without = assignPartitions(
    members.filter((m) => m !== members[2]),
    16,
  );
  const moved = [...before].filter(([p, o]) => o !== members[2] && without.get(p) !== o).length;
  // p mod n (the assignment before this one) moved 7 of the 12 others' partitions here
  const rest = members.filter((m) => m !== members[2]);
  const mod = [...before.keys()].filter((p) => p % 4 !== 2 && members[p % 4] !== rest[p % 3]).length;
  assert.equal(mod, 7);
  assert.ok(moved <= 3, `others' partitions moved: ${moved}`);
  assert.deepEqual(assignPartitions(members, 16), before);
});
