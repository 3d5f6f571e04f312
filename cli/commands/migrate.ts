// `rill migrate`: apply the Postgres migrations to RILL_PG_SCHEMA (safe to run concurrently).
import { parseArgs } from 'node:util';
import { readEnv } from '../../core/config.ts';
import { migrateSchema } from '../context.ts';

export async function migrateCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log('usage: rill migrate\n\nApplies the SQL migrations to the schema RILL_PG_SCHEMA of DATABASE_URL.');
    return 0;
  }
  const env = readEnv();
  const applied = await migrateSchema(env);
  console.log(applied.length ? `applied ${applied.join(', ')} to schema ${env.pgSchema}` : `schema ${env.pgSchema} is up to date`);
  return 0;
}
