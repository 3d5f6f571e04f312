// Baseline: `psql \copy` of the same rows the sink wrote, into the same table (a freshly migrated
// schema's `transactions`: same partitions, keys and indexes), in one statement.
//
//   node --import tsx bench/baselines/psql-copy.ts --schema S --file rows.tsv --columns a,b,c [--table T]
// DATABASE_URL picks the server. Prints one JSON line: { rows, ms, rowsPerSec }.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

function main(): void {
  const { values } = parseArgs({
    options: { schema: { type: 'string' }, file: { type: 'string' }, columns: { type: 'string' }, table: { type: 'string', default: 'transactions' } },
  });
  if (!values.schema || !values.file || !values.columns) throw new Error('--schema, --file and --columns are required');
  if (!/^[a-z_]+$/.test(values.table)) throw new Error(`--table ${values.table}: a plain table name`);
  const rows = readFileSync(values.file, 'utf8').split('\n').filter(Boolean).length;
  const url = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const sql = `\\copy "${values.schema}".${values.table} (${values.columns}) FROM '${values.file.replace(/'/g, "''")}'`;
  const t0 = performance.now();
  const run = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', sql], { encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (run.error) throw new Error(`psql: ${run.error.message} (is it installed? apt-get install postgresql-client)`);
  if (run.status !== 0) throw new Error(`psql exited ${run.status}: ${run.stderr.slice(-300)}`);
  console.log(JSON.stringify({ tool: 'psql \\copy', rows, ms: Math.round(ms), rowsPerSec: (rows / ms) * 1000 }));
}

try {
  main();
} catch (err) {
  console.error(`psql-copy baseline: ${(err as Error).message}`);
  process.exit(1);
}
