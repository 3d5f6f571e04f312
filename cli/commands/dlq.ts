// `rill dlq list|show|redrive|purge`: the dead letters of every stage and sink. Output for people
// on stdout (`list --json` for scripts); every failure is one line on stderr and exit 1.
import { parseArgs } from 'node:util';
import { readEnv } from '../../core/config.ts';
import { DeadLetters } from '../../core/dead-letter/dead-letters.ts';
import type { DeadLetter, RedriveResult } from '../../core/dead-letter/dead-letters.ts';
import { deadLetteredAt, unknownFields } from '../../core/dead-letter/record.ts';
import { parseSince } from '../../core/duration.ts';
import { ConfigError } from '../../core/errors.ts';
import { Keys } from '../../core/keys.ts';
import { loadTopology } from '../../core/topology/load.ts';
import { connectForCommand } from '../command-redis.ts';
import { processIO, runCommand, table } from '../io.ts';
import type { CommandIO } from '../io.ts';

export const DLQ_USAGE = `usage: rill dlq list [--stage S] [--since 10m|<unix ms>|RFC3339] [--limit N] [--json]
       rill dlq show ID [--json]
       rill dlq redrive [--stage S] (--ids ID,ID... | --all) [--since T] [--dry-run]
       rill dlq purge --yes [--stage S | --ids ID,ID...]

Dead letters are events a stage or sink gave up on. ID is <stage>/<partition>/<entry id>, as
list prints it. redrive puts events back on the stream they came from with their transaction
id (so effects stay exactly-once) and removes their dead letters; purge deletes them for good.

Options:
  --stage S        only this stage's (or sink's) dead letters
  --since T        only dead letters added since T: a duration back from now (10m, 24h),
                   a unix time in ms, or an RFC 3339 time
  --limit N        list at most N, oldest first (default 100)
  --json           list/show: JSON instead of a table
  --ids a,b        redrive these
  --all            redrive every (matching) dead letter present when it starts
  --dry-run        redrive: only count what would be redriven
  --yes            purge: really delete (with --ids: only these)
  --topology FILE  the topology (default $RILL_TOPOLOGY, else ./topology.yaml)
  -h, --help       show this help
`;

const OPTIONS = {
  stage: { type: 'string' },
  since: { type: 'string' },
  limit: { type: 'string' },
  json: { type: 'boolean' },
  ids: { type: 'string' },
  all: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  yes: { type: 'boolean' },
  topology: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

/** `argv` is what follows `rill dlq`. Resolves to the exit code. */
export function dlqCommand(argv: string[], io: CommandIO = processIO()): Promise<number> {
  return runCommand('dlq', io, () => run(argv, io));
}

async function run(argv: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  if (values.help) {
    io.stdout.write(DLQ_USAGE);
    return 0;
  }
  const [action, ...rest] = positionals;
  if (!action) throw new ConfigError('missing action: list, show, redrive or purge (see rill dlq --help)');
  if (!['list', 'show', 'redrive', 'purge'].includes(action)) throw new ConfigError(`unknown action "${action}" (list, show, redrive or purge)`);
  if (action !== 'show' && rest.length) throw new ConfigError(`unexpected argument "${rest[0]}" (see rill dlq --help)`);
  if (action === 'show' && rest.length !== 1) throw new ConfigError('show takes one dead-letter id, e.g. rill dlq show validate/3/1717000000000-0');
  if (action === 'purge' && !values.yes) throw new ConfigError('purge deletes dead letters for good: add --yes to confirm');
  if (action === 'redrive' && !values.all === !values.ids) throw new ConfigError('redrive needs --ids a,b or --all (one of them)');
  const since = values.since === undefined ? undefined : parseSince(values.since, Date.now());
  const limit = values.limit === undefined ? undefined : parseLimit(values.limit);

  const env = readEnv(io.env);
  const topology = loadTopology(values.topology ?? env.topologyPath);
  const redis = await connectForCommand(env, 'rill:dlq');
  try {
    const dlq = new DeadLetters(redis, new Keys(env.prefix), topology);
    const out = (s: string) => io.stdout.write(`${s}\n`);
    switch (action) {
      case 'list':
        return await list(dlq, { stage: values.stage, since, limit }, values, out);
      case 'show':
        return await show(dlq, rest[0]!, values, out);
      case 'redrive':
        return await redrive(dlq, values, since, out);
      default: {
        const ids = values.ids === undefined ? undefined : idList(dlq, values.ids, values.stage);
        const n = await dlq.purge(ids ? { ids } : { stage: values.stage });
        out(`purged ${plural(n)}${values.stage ? ` of ${values.stage}` : ''}`);
        return 0;
      }
    }
  } finally {
    redis.disconnect();
  }
}

async function list(dlq: DeadLetters, filter: { stage?: string; since?: number; limit?: number }, values: Values, out: (s: string) => void): Promise<number> {
  const res = await dlq.list(filter);
  if (values.json) {
    out(JSON.stringify(res.entries.map(toJson), null, 2));
    return 0;
  }
  if (res.entries.length) {
    const rows = res.entries.map((d) => [d.id, d.stage, d.error, truncate(d.message, 60), String(d.attempts), d.tx, iso(d.lastFailedAt)]);
    out(table(['ID', 'STAGE', 'ERROR', 'MESSAGE', 'ATTEMPTS', 'TX', 'LAST FAILURE'], rows));
  }
  const when = filter.since === undefined ? '' : ` since ${iso(filter.since)}`;
  if (!res.more) out(`${plural(res.entries.length)}${when}`);
  else if (res.total !== undefined) out(`showing ${res.entries.length} of ${plural(res.total)} (oldest first; raise --limit for more)`);
  else out(`showing the first ${plural(res.entries.length)}${when}; more match (raise --limit)`);
  return 0;
}

async function show(dlq: DeadLetters, id: string, values: Values, out: (s: string) => void): Promise<number> {
  const d = await dlq.get(id);
  if (!d) throw new ConfigError(`no dead letter ${id} (it may have been redriven or purged)`);
  if (values.json) {
    out(JSON.stringify(toJson(d), null, 2));
    return 0;
  }
  const lines: [string, string][] = [
    ['id', d.id],
    ['stage', d.stage],
    ['tx', d.tx],
    ['error', d.error],
    ['message', d.message],
    ['attempts', String(d.attempts)],
    ['origin', `${d.originStream} ${d.originId}`],
    ['first failure', iso(d.firstFailedAt)],
    ['last failure', iso(d.lastFailedAt)],
    ['dead-lettered', iso(deadLetteredAt(d.entryId))],
  ];
  if (d.traceparent) lines.push(['traceparent', d.traceparent]);
  lines.push(...unknownFields(d));
  const width = Math.max(...lines.map(([k]) => k.length));
  for (const [k, v] of lines) out(`${`${k}:`.padEnd(width + 2)}${v}`);
  out('event:');
  out(indent(prettyEvent(d.event)));
  return 0;
}

async function redrive(dlq: DeadLetters, values: Values, since: number | undefined, out: (s: string) => void): Promise<number> {
  const dryRun = values['dry-run'] ?? false;
  let res: RedriveResult;
  if (values.ids !== undefined) {
    if (since !== undefined) throw new ConfigError('--since selects with --all, not with --ids');
    res = await dlq.redrive({ ids: idList(dlq, values.ids, values.stage) }, { dryRun });
  } else {
    res = await dlq.redrive({ all: true, stage: values.stage, since }, { dryRun });
  }
  out(dryRun ? `would redrive ${plural(res.redriven)} (dry run; nothing changed)` : `redrove ${plural(res.redriven)}`);
  if (res.failed.length) throw new Error(`${plural(res.failed.length)} not redriven: ${res.failed.map((f) => `${f.id} (${f.error})`).join(', ')}`);
  if (res.missing.length) throw new ConfigError(`not found (redriven or purged already?): ${res.missing.join(', ')}`);
  return 0;
}

/** The ids of --ids, checked (and, with --stage, all of that stage). */
function idList(dlq: DeadLetters, raw: string, stage: string | undefined): string[] {
  const ids = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!ids.length) throw new ConfigError('--ids needs at least one dead-letter id');
  for (const id of ids) if (stage && dlq.parseId(id).stage !== stage) throw new ConfigError(`${id} is not a dead letter of ${stage}`);
  for (const id of ids) dlq.parseId(id);
  return ids;
}

function parseLimit(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n < 1 || n > 100_000) throw new ConfigError(`--limit must be a whole number from 1 to 100000, got "${v}"`);
  return n;
}

function toJson(d: DeadLetter): Record<string, unknown> {
  let event: unknown = d.event;
  try {
    event = JSON.parse(d.event);
  } catch {
    // keep the raw text: the reason it was dead-lettered may be that it is not JSON
  }
  return {
    id: d.id,
    stage: d.stage,
    partition: d.partition,
    entry_id: d.entryId,
    tx: d.tx,
    error: d.error,
    message: d.message,
    attempts: d.attempts,
    origin_stream: d.originStream,
    origin_id: d.originId,
    first_failed_at: d.firstFailedAt,
    last_failed_at: d.lastFailedAt,
    ...(d.traceparent ? { traceparent: d.traceparent } : {}),
    event,
  };
}

function prettyEvent(ev: string): string {
  try {
    return JSON.stringify(JSON.parse(ev), null, 2);
  } catch {
    return ev;
  }
}

function truncate(s: string, max: number): string {
  const one = s.replace(/\s+/g, ' ');
  return one.length <= max ? one : `${one.slice(0, max - 1)}…`;
}

function indent(s: string): string {
  return s
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

function iso(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : '-';
}

function plural(n: number): string {
  return `${n} dead letter${n === 1 ? '' : 's'}`;
}
