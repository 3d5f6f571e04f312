// Baseline: the same rows as the sink wrote, sent as multi-row INSERTs of 1,000 rows each (one
// prepared statement, one transaction per statement) into a freshly migrated `transactions` (or
// `--table ledger_entries`: the same ledger lines).
//
//   node --import tsx bench/baselines/multirow-insert.ts --schema S --file rows.tsv --columns a,b,c [--rows-per-statement 1000] [--table T]
// DATABASE_URL picks the server. Prints one JSON line: { rows, ms, rowsPerSec, statements }.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { parseCopyText } from './copy-file.ts';

function insertSql(schema: string, table: string, columns: string[], rows: number): string {
  const values: string[] = [];
  for (let r = 0; r < rows; r++) values.push(`(${columns.map((_, c) => `$${r * columns.length + c + 1}`).join(', ')})`);
  return `INSERT INTO "${schema}".${table} (${columns.join(', ')}) VALUES ${values.join(', ')}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      schema: { type: 'string' },
      file: { type: 'string' },
      columns: { type: 'string' },
      'rows-per-statement': { type: 'string', default: '1000' },
      table: { type: 'string', default: 'transactions' },
    },
  });
  if (!values.schema || !values.file || !values.columns) throw new Error('--schema, --file and --columns are required');
  if (!/^[a-z_]+$/.test(values.table)) throw new Error(`--table ${values.table}: a plain table name`);
  const columns = values.columns.split(',');
  const per = Number(values['rows-per-statement']);
  const rows = parseCopyText(readFileSync(values.file, 'utf8'));
  const client = new pg.Client({
    connectionString: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres',
    application_name: 'rill-bench-insert',
  });
  await client.connect();
  const full = insertSql(values.schema, values.table, columns, per);
  let statements = 0;
  const t0 = performance.now();
  try {
    for (let i = 0; i < rows.length; i += per) {
      const chunk = rows.slice(i, i + per);
      const params = chunk.flat();
      if (chunk.length === per) await client.query({ name: 'bench_insert_full', text: full, values: params });
      else await client.query(insertSql(values.schema, values.table, columns, chunk.length), params);
      statements++;
    }
  } finally {
    await client.end();
  }
  const ms = performance.now() - t0;
  console.log(
    JSON.stringify({ tool: `multi-row INSERT (${per} rows)`, rows: rows.length, statements, ms: Math.round(ms), rowsPerSec: (rows.length / ms) * 1000 }),
  );
}

main().catch((err: Error) => {
  console.error(`multirow-insert baseline: ${err.message}`);
  process.exit(1);
});
