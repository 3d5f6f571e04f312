// d. Sink: rows/s of `rill sink` draining a backlog in the settled topic into Postgres (COPY into
// `transactions` and `ledger_entries`, the wallets, COMMIT, then XACK), timed by its batches'
// processed_at stamps. Baselines on the same rows, into freshly migrated tables (same partitions
// and indexes): `psql \copy` and multi-row INSERTs of 1,000 rows, each of everything the sink
// writes (the same transactions and their ledger lines: what the targets compare with) and, for
// scale, of the transactions alone.
import { join } from 'node:path';
import { lastJsonLine, runToEnd, spawnProgram, spawnScript } from '../lib/procs.ts';
import { CpuWindow, cpuMs } from '../lib/proc-stats.ts';
import { scrape, sum } from '../lib/prom.ts';
import { backendCpuMs, batchRate, rowCount, sinkBatches, transactionColumns } from '../lib/pg-stats.ts';
import { outstanding } from '../lib/redis-stats.ts';
import { postgresSink, stageOrder } from '../lib/topology.ts';
import { drain, int, ms, preload, ratio } from './common.ts';
import { merchantInstance } from './fixtures.ts';
import type { SettledBacklog } from './processing.ts';
import type { Comparison, RunContext, Scenario, ScenarioOutput } from './types.ts';
import { compare, ratioTarget } from './types.ts';

interface BaselineRows {
  tool: string;
  rows: number;
  ms: number;
  rowsPerSec: number;
}

/** Without the processing scenario before it: a backlog of its own, through the stages. */
async function ownBacklog(ctx: RunContext): Promise<SettledBacklog> {
  const N = ctx.profile.processing.events;
  const { inst, merchants } = await merchantInstance(ctx, 'sink');
  const ingest = await inst.startIngest();
  await preload(ctx, ingest.url, merchants, N, `${ctx.runId}-sink`, 'backlog');
  await ingest.child.stop();
  const order = stageOrder(inst.topology.summary);
  const w = await inst.startWorker({ stages: order });
  await drain(ctx, inst, Math.max(60_000, N * 2), order, (left) => ctx.progress.update(0.1, `stages: ${int(left)} left`));
  await w.child.stop();
  return { inst, rows: N };
}

export const sink: Scenario = {
  id: 'sink',
  title: 'd. Postgres sink',
  async run(ctx): Promise<ScenarioOutput> {
    const backlog = (ctx.shared.get('settled-backlog') as SettledBacklog | undefined) ?? (await ownBacklog(ctx));
    const { inst } = backlog;
    const t = inst.topology.summary;
    const pgSink = postgresSink(t);
    if (!pgSink) throw new Error('the topology has no postgres sink');
    const problems: string[] = [];
    const expected = await outstanding(ctx.redis, inst.prefix, t, [pgSink.name]);
    const rows0 = await rowCount(ctx.pg, inst.schema);
    ctx.progress.update(0.15, `rill sink: ${int(expected)} rows`);
    const w = await inst.startWorker({ sinkOnly: true });
    const cpu = new CpuWindow({ sink: [w.child.pid], redis: ctx.redisPid ? [ctx.redisPid] : [] });
    const wallMs = await drain(ctx, inst, Math.max(60_000, expected * 2), [pgSink.name], (left) =>
      ctx.progress.update(0.15 + 0.45 * (1 - left / Math.max(1, expected)), `rill sink: ${int(left)} left`),
    );
    const cores = cpu.end();
    const pgMs = await backendCpuMs(ctx.pg, `rill-sink-${pgSink.name}`, cpuMs);
    if (pgMs !== null) cores.cores.postgres = Math.round((pgMs / wallMs) * 100) / 100;
    const metrics = await scrape(w.metricsUrl);
    await w.child.stop();
    const rows = (await rowCount(ctx.pg, inst.schema)) - rows0;
    if (rows !== expected) problems.push(`sink: ${rows} rows in Postgres for ${expected} entries`);
    const rate = batchRate(await sinkBatches(ctx.pg, inst.schema));
    const sinkRate = rate?.rowsPerSec ?? (rows / Math.max(1, wallMs)) * 1000;
    const flushCount = sum(metrics, 'rill_sink_flush_duration_seconds_count');
    const flushMs = flushCount ? (sum(metrics, 'rill_sink_flush_duration_seconds_sum') / flushCount) * 1000 : null;
    const ledgerEntries = sum(metrics, 'rill_sink_ledger_entries_total');

    // baselines: the same rows, dumped as COPY text
    ctx.progress.update(0.65, 'psql \\copy');
    const columns = await transactionColumns(ctx.pg, inst.schema);
    const file = join(ctx.tmpDir, 'sink-rows.tsv');
    await psqlExport(ctx.databaseUrl, `"${inst.schema}".transactions`, columns, file);
    const copyInst = ctx.instance('copy', 'default');
    const insertInst = ctx.instance('insert', 'default');
    await Promise.all([copyInst.migrate(), insertInst.migrate()]);
    const copy = await loadBaseline(ctx.databaseUrl, 'psql-copy', copyInst.schema, file, columns);
    ctx.progress.update(0.8, 'multi-row INSERT');
    const insert = await loadBaseline(ctx.databaseUrl, 'multirow-insert', insertInst.schema, file, columns);
    if (copy.rows !== rows || insert.rows !== rows) problems.push(`baselines wrote ${copy.rows} / ${insert.rows} rows, the sink ${rows}`);
    // everything the sink writes: the same transactions and, beside them, the same ledger lines
    ctx.progress.update(0.9, 'psql \\copy of both tables');
    const ledgerColumns = (await transactionColumns(ctx.pg, inst.schema, 'ledger_entries')).filter((c) => c !== 'id');
    const ledgerFile = join(ctx.tmpDir, 'sink-ledger.tsv');
    await psqlExport(ctx.databaseUrl, `"${inst.schema}".ledger_entries`, ledgerColumns, ledgerFile);
    const bothInst = ctx.instance('copyboth', 'default');
    await bothInst.migrate();
    const copyTx = await loadBaseline(ctx.databaseUrl, 'psql-copy', bothInst.schema, file, columns);
    const copyLedger = await loadBaseline(ctx.databaseUrl, 'psql-copy', bothInst.schema, ledgerFile, ledgerColumns, 'ledger_entries');
    const bothMs = copyTx.ms + copyLedger.ms;
    const bothRate = (rows / Math.max(1, bothMs)) * 1000;
    // and the ledger lines as multi-row INSERTs beside the INSERTed transactions
    ctx.progress.update(0.95, 'multi-row INSERT of the ledger lines');
    const insertLedger = await loadBaseline(ctx.databaseUrl, 'multirow-insert', insertInst.schema, ledgerFile, ledgerColumns, 'ledger_entries');
    if (copyLedger.rows !== ledgerEntries || insertLedger.rows !== ledgerEntries)
      problems.push(`ledger baselines wrote ${copyLedger.rows} / ${insertLedger.rows} lines, the sink ${ledgerEntries}`);
    const insertBothMs = insert.ms + insertLedger.ms;
    const insertBothRate = (rows / Math.max(1, insertBothMs)) * 1000;

    const rill = { label: 'rill sink (COPY of both tables, wallets, COMMIT)', value: sinkRate, unit: 'rows/s' };
    const comparisons: Comparison[] = [
      compare({
        id: 'sink-vs-copy',
        title: 'COPY sink vs psql \\copy of the same rows of both tables',
        scenario: 'sink',
        rill,
        baseline: { label: 'psql \\copy, transactions + ledger lines', value: bothRate, unit: 'rows/s' },
        target: ratioTarget(0.75),
      }),
      compare({
        id: 'sink-vs-insert',
        title: 'COPY sink vs 1,000-row multi-row INSERT of the same rows of both tables',
        scenario: 'sink',
        rill,
        baseline: { label: 'multi-row INSERT ×1000, transactions + ledger lines', value: insertBothRate, unit: 'rows/s' },
        target: ratioTarget(2),
      }),
    ];
    return {
      comparisons,
      latency: [],
      tables: [
        {
          title: `Sink and baselines (${int(rows)} rows of ${columns.length} columns)`,
          columns: ['writer', 'rows/s', 'rows', 'notes'],
          rows: [
            [
              'rill sink',
              int(sinkRate),
              int(rows),
              `${rate?.batches ?? '?'} batches of ~${int(rate?.meanRows)} rows, mean flush ${ms(flushMs)} ms; also ${int(ledgerEntries)} ledger entries and the wallets; sink CPU ${cores.cores.sink ?? '–'} cores, its Postgres backend ${cores.cores.postgres ?? '–'}, Redis ${cores.cores.redis ?? '–'}`,
            ],
            [
              'psql \\copy of both tables',
              int(bothRate),
              int(rows),
              `what the sink writes: the transactions (${int(copyTx.ms)} ms) and their ${int(copyLedger.rows)} ledger lines (${int(copyLedger.ms)} ms), wallets aside; transactions per second; Rill ÷ this ${ratio(sinkRate / bothRate)}`,
            ],
            [
              'multi-row INSERT of both tables',
              int(insertBothRate),
              int(rows),
              `1,000 rows per statement: the transactions (${int(insert.ms)} ms) and their ledger lines (${int(insertLedger.ms)} ms); transactions per second; Rill ÷ this ${ratio(sinkRate / insertBothRate)}`,
            ],
            [
              'psql \\copy, transactions only',
              int(copy.rowsPerSec),
              int(copy.rows),
              `one COPY of the dumped rows, ${int(copy.ms)} ms, no ledger lines; Rill ÷ this ${ratio(sinkRate / copy.rowsPerSec)}`,
            ],
            [
              'multi-row INSERT, transactions only',
              int(insert.rowsPerSec),
              int(insert.rows),
              `1,000 rows per statement, ${int(insert.ms)} ms, no ledger lines; Rill ÷ this ${ratio(sinkRate / insert.rowsPerSec)}`,
            ],
          ],
        },
      ],
      data: {
        rows,
        sinkRowsPerSec: sinkRate,
        batches: rate,
        wallMs,
        meanFlushMs: flushMs,
        ledgerEntries,
        cpu: cores,
        copy,
        insert,
        columns,
        copyBoth: { transactions: copyTx, ledger: copyLedger, rowsPerSec: bothRate },
        insertBoth: { transactions: insert, ledger: insertLedger, rowsPerSec: insertBothRate },
      },
      problems,
    };
  },
};

/** Load a COPY-text file into a table with a baseline tool (psql \\copy, or 1,000-row INSERTs): rows and ms. */
async function loadBaseline(
  databaseUrl: string,
  tool: 'psql-copy' | 'multirow-insert',
  schema: string,
  file: string,
  columns: readonly string[],
  table?: string,
): Promise<BaselineRows> {
  const args = ['--schema', schema, '--file', file, '--columns', columns.join(',')];
  if (tool === 'multirow-insert') args.push('--rows-per-statement', '1000');
  if (table) args.push('--table', table);
  const child = spawnScript(tool, `baselines/${tool}`, args, { env: { DATABASE_URL: databaseUrl } });
  return lastJsonLine<BaselineRows>(await runToEnd(child, tool === 'psql-copy' ? 300_000 : 600_000));
}

/** The rows of `table` as COPY text in `file` (psql \\copy): what the baselines load. */
async function psqlExport(databaseUrl: string, table: string, columns: readonly string[], file: string): Promise<void> {
  await runToEnd(
    spawnProgram('psql-export', 'psql', [
      '-X',
      '-q',
      '-v',
      'ON_ERROR_STOP=1',
      '-d',
      databaseUrl,
      '-c',
      `\\copy (SELECT ${columns.join(', ')} FROM ${table}) TO '${file}'`,
    ]),
  );
}
