// `rill review list|approve|decline` (the risk stage's review queue) and `rill risk rules
// set|show` (its decision thresholds, versioned in Redis, picked up by running stages without a
// restart). Every failure is one line on stderr and exit 1.
import { readFileSync, existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { readEnv } from '../../core/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { Keys } from '../../core/keys.ts';
import type { RedisClient } from '../../core/redis.ts';
import { loadTopology } from '../../core/topology/load.ts';
import { ReviewQueue } from '../../core/review-queue.ts';
import { parseRules, readRules, setRules } from '../../processors/risk/rules.ts';
import { connectForCommand } from '../command-redis.ts';
import { processIO, runCommand } from '../io.ts';
import type { CommandIO } from '../io.ts';

export const REVIEW_USAGE = `usage: rill review list [--merchant M] [--json]
       rill review approve TX [--note TEXT] [--by NAME]
       rill review decline TX [--note TEXT] [--by NAME]

Transactions the risk stage held for review (status in_review). approve sends one on toward the
ledger; decline ends it failed with failure_code risk_declined.

Options:
  --merchant M     list: only this merchant's
  --json           list: JSON instead of a table
  --note TEXT      why (kept with the decision)
  --by NAME        who decides (default $USER)
  --stage S        the risk stage's name (default risk)
  --topology FILE  the topology (default $RILL_TOPOLOGY, else ./topology.yaml)
  -h, --help       show this help
`;

export const RISK_USAGE = `usage: rill risk rules set <file.json | JSON>
       rill risk rules show

Decision rules of the risk stage: score thresholds per type, e.g.
  {"thresholds": {"default": {"review": 45, "block": 90}, "refund": {"review": 30, "block": 90}}}
set stores them as the next version; running stages use them within rules_poll_ms (1 s), and
every decision records the version it was made under. Version 0 is topology.yaml's.
`;

async function withRedis<T>(env: NodeJS.ProcessEnv, fn: (redis: RedisClient, keys: Keys, e: ReturnType<typeof readEnv>) => Promise<T>): Promise<T> {
  const e = readEnv(env);
  const redis = await connectForCommand(e, 'rill:review');
  try {
    return await fn(redis, new Keys(e.prefix), e);
  } finally {
    redis.disconnect();
  }
}

export function reviewCommand(argv: string[], io: CommandIO = processIO()): Promise<number> {
  return runCommand('review', io, () => review(argv, io));
}

export function riskCommand(argv: string[], io: CommandIO = processIO()): Promise<number> {
  return runCommand('risk', io, () => risk(argv, io));
}

async function review(argv: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      merchant: { type: 'string' },
      json: { type: 'boolean' },
      note: { type: 'string' },
      by: { type: 'string' },
      stage: { type: 'string' },
      topology: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.stdout.write(REVIEW_USAGE);
    return 0;
  }
  const [action, tx, ...extra] = positionals;
  if (action !== 'list' && action !== 'approve' && action !== 'decline')
    throw new ConfigError(`${action ? `unknown action "${action}"` : 'missing action'}: list, approve or decline (see rill review --help)`);
  if (action === 'list' ? tx !== undefined : !tx || extra.length)
    throw new ConfigError(action === 'list' ? `unexpected argument "${tx}"` : `${action} takes one transaction id`);
  return await withRedis(io.env, async (redis, keys, env) => {
    const queue = new ReviewQueue(redis, keys, loadTopology(values.topology ?? env.topologyPath), values.stage);
    if (action === 'list') {
      const held = await queue.list(values.merchant);
      if (values.json) io.stdout.write(`${JSON.stringify(held, null, 2)}\n`);
      else
        for (const e of held)
          io.stdout.write(`${e.id}  ${e.merchant_id}  ${e.type} ${e.amount} ${e.currency}  score ${e.risk_score}  ${(e.risk_reasons ?? []).join('; ')}\n`);
      if (!values.json && !held.length) io.stdout.write('nothing held for review\n');
      return 0;
    }
    const by = values.by ?? io.env.USER ?? 'cli';
    const decided = await queue.decide(tx!, action, by, values.note);
    if (!decided) throw new ConfigError(`${tx} is not held for review (unknown, or already decided)`);
    io.stdout.write(`${tx} ${decided.review!.decision} by ${by}\n`);
    return 0;
  });
}

async function risk(argv: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    io.stdout.write(RISK_USAGE);
    return 0;
  }
  const [what, action, source, ...extra] = positionals;
  if (what !== 'rules' || (action !== 'set' && action !== 'show'))
    throw new ConfigError('expected "rules set <file|json>" or "rules show" (see rill risk --help)');
  if (action === 'set' ? !source || extra.length : source !== undefined)
    throw new ConfigError(action === 'set' ? 'rules set takes one file or JSON text' : `unexpected argument "${source}"`);
  const rules =
    action === 'set' ? parseRules(source!.trimStart().startsWith('{') || !existsSync(source!) ? source! : readFileSync(source!, 'utf8')) : undefined;
  return await withRedis(io.env, async (redis, keys) => {
    if (rules) {
      const stored = await setRules(redis, keys, rules);
      io.stdout.write(`risk rules version ${stored.version} stored\n`);
    } else {
      const current = await readRules(redis, keys);
      io.stdout.write(current ? `${JSON.stringify(current, null, 2)}\n` : "no rules stored: the stage uses topology.yaml's thresholds (version 0)\n");
    }
    return 0;
  });
}
