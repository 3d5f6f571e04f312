// `rill replay --group G --from T`: make a stage or sink read its input again from a point in
// time or an entry id, by moving its consumer group back on every lane stream of its input topic
// (XGROUP SETID to just before the start). Says how many entries will be delivered again.
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { readEnv } from '../../core/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { Keys } from '../../core/keys.ts';
import { idMs } from '../../core/stream-id.ts';
import { parseTapStart } from '../../core/tap/position.ts';
import { applyReplay, planReplay, replayTarget } from '../../core/replay.ts';
import type { ReplayPlan } from '../../core/replay.ts';
import { loadTopology } from '../../core/topology/load.ts';
import { connectForCommand } from '../command-redis.ts';
import { processIO, runCommand } from '../io.ts';
import type { CommandIO } from '../io.ts';

export const REPLAY_USAGE = `usage: rill replay --group G --from T [--topic TOPIC] [--dry-run]

Makes stage or sink G process its input again from T: its consumer group is moved back to just
before T on every lane stream of its input topic, and it says how many entries will be
delivered again. Streams the group has not read up to T yet are left alone. Entries still
pending (delivered, not yet acknowledged) are unaffected. Effects stay idempotent by
transaction id: a replayed event is processed again, never applied twice.

Only entries still in Redis are delivered again: a start before the hot window replays from the
oldest entry each stream still holds, and the command says which part it cannot replay. History
in Postgres is not fed back into a group; a postgres sink's input topic can be read from there
with rill tap TOPIC --from T.

Options:
  --group G        the stage or sink to replay (its consumer group has its name)
  --from T         earliest, a duration back (10m, 1h), a unix time in ms, an RFC 3339 time,
                   or an entry id like 1717000000000-0 (inclusive)
  --topic TOPIC    check that G reads this topic (default: G's input topic)
  --dry-run        only say what would be delivered again; change nothing
  --topology FILE  the topology (default $RILL_TOPOLOGY, else ./topology.yaml)
  -h, --help       show this help
`;

const OPTIONS = {
  group: { type: 'string' },
  from: { type: 'string' },
  topic: { type: 'string' },
  'dry-run': { type: 'boolean' },
  topology: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `argv` is what follows `rill replay`. Resolves to the exit code. */
export function replayCommand(argv: string[], io: CommandIO = processIO()): Promise<number> {
  return runCommand('replay', io, () => run(argv, io));
}

async function run(argv: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  if (values.help) {
    io.stdout.write(REPLAY_USAGE);
    return 0;
  }
  if (positionals.length) throw new ConfigError(`unexpected argument "${positionals[0]}" (see rill replay --help)`);
  if (!values.group) throw new ConfigError('missing --group: the stage or sink to replay (see rill replay --help)');
  if (!values.from) throw new ConfigError('missing --from: where the replay starts, e.g. --from 1h or --from earliest');
  const from = parseTapStart(values.from, Date.now(), '--from');
  if (from.kind === 'now') throw new ConfigError('--from now would replay nothing: give a time, a duration back (10m), an entry id or earliest');
  const dryRun = values['dry-run'] ?? false;

  const env = readEnv(io.env);
  const topology = loadTopology(values.topology ?? env.topologyPath);
  const target = replayTarget(topology, values.group);
  if (values.topic !== undefined && values.topic !== target.topic) {
    throw new ConfigError(`${target.kind} ${target.group} reads topic "${target.topic}", not "${values.topic}"`);
  }

  const redis = (await connectForCommand(env, 'rill:replay')) as Redis;
  try {
    let shown = 0;
    const plan = await planReplay(redis, new Keys(env.prefix), topology, target.group, from, {
      onCounted: (n) => {
        // long ranges: a line a second on stderr, so a big count does not look like a hang
        if (Date.now() - shown < 1_000) return;
        if (shown) io.stderr.write(`counting: ${n} entries so far\n`);
        shown = Date.now();
      },
    });
    const out = (s: string) => io.stdout.write(`${s}\n`);
    const reset = plan.streams.filter((s) => s.state === 'reset').length;
    const where = `${target.kind} ${target.group} on topic ${target.topic} from ${describeStart(plan)}`;
    if (dryRun) {
      out(`would replay ${where}: ${entries(plan.total)} would be delivered again (${reset} of ${plan.streams.length} lane streams would move back)`);
      out('dry run: nothing changed');
    } else {
      const n = await applyReplay(redis, plan);
      out(`replaying ${where}: ${entries(plan.total)} will be delivered again (${n} of ${plan.streams.length} lane streams moved back)`);
    }
    const behind = plan.streams.filter((s) => s.state === 'behind').length;
    const noGroup = plan.streams.filter((s) => s.state === 'no-group').length;
    if (behind) out(`${behind} lane streams were not read up to the start yet: left as they are`);
    if (noGroup) out(`${noGroup} lane streams have no ${target.group} group yet: left as they are (its first worker reads them from the beginning)`);
    if (plan.trimmed) {
      const since = plan.wholeFrom ? `${plan.wholeFrom} (${new Date(idMs(plan.wholeFrom)).toISOString()})` : 'now';
      out(
        `cannot replay all of it: ${plan.trimmed} of ${plan.streams.length} lane streams no longer hold every entry since the start ` +
          `(the hot window trimmed them); they replay from their oldest entry, and every stream is whole again from ${since}`,
      );
      out(
        plan.historyInPostgres
          ? `the older events of ${target.topic} are in Postgres: read them with rill tap ${target.topic} --from ${plan.start}; they are not delivered to ${target.group} again`
          : `the older events of ${target.topic} are not kept anywhere (it keeps no history beyond Redis)`,
      );
    }
    out(
      `note: entries still pending (${plan.pending} now: delivered, not acknowledged) are unaffected; ` +
        'effects stay idempotent by transaction id, so replayed events are processed again but never applied twice',
    );
    return 0;
  } finally {
    redis.disconnect();
  }
}

function describeStart(plan: ReplayPlan): string {
  if (plan.start === '0-0') return 'the earliest entry';
  return `${plan.start} (${new Date(idMs(plan.start)).toISOString()})`;
}

function entries(n: number): string {
  return `${n} ${n === 1 ? 'entry' : 'entries'}`;
}
