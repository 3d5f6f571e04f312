// `rill keys create --merchant ID` | `rill keys create --scope tap|operator`: prints the new key, once,
// alone on stdout (only its hash is stored), so `KEY=$(rill keys create --merchant m1)` works.
import { parseArgs } from 'node:util';
import { readEnv } from '../../core/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { createPool } from '../../core/postgres.ts';
import { migrate } from '../../sinks/postgres/migrate.ts';
import { createApiKey, revokeApiKey } from '../../core/api-keys.ts';

const HELP = `usage: rill keys create --merchant ID
       rill keys create --scope tap
       rill keys create --scope operator
       rill keys revoke KEY_OR_ID

create prints the new API key on stdout; it is shown only this once. A tap key reads topics
(SSE); an operator key opens the web console (rill console).`;

export async function keysCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { merchant: { type: 'string' }, scope: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const [action, target] = positionals;
  if (values.help || !action) {
    console.log(HELP);
    return values.help ? 0 : 1;
  }
  if (action !== 'create' && action !== 'revoke') throw new ConfigError(`unknown keys action "${action}" (create or revoke)`);
  if (action === 'create') {
    if (values.scope !== undefined && values.scope !== 'tap' && values.scope !== 'operator' && values.scope !== 'merchant')
      throw new ConfigError(`--scope must be tap, operator or merchant, got "${values.scope}"`);
    if ((values.scope === 'tap' || values.scope === 'operator') && values.merchant)
      throw new ConfigError(
        `${values.scope === 'operator' ? 'an' : 'a'} ${values.scope} key belongs to no merchant: give --scope ${values.scope} or --merchant ID, not both`,
      );
    if (values.scope !== 'tap' && values.scope !== 'operator' && !values.merchant)
      throw new ConfigError('give --merchant ID (a merchant key), --scope tap (a read-only tap key) or --scope operator (the web console)');
  } else if (!target) throw new ConfigError('give the key (or its id) to revoke');
  const env = readEnv();
  const pool = createPool(env, { max: 1, name: 'rill-keys' });
  try {
    await migrate(pool, env.pgSchema);
    if (action === 'revoke') {
      const done = await revokeApiKey(pool, target!);
      if (!done) throw new ConfigError('no such active key');
      console.error('revoked');
      return 0;
    }
    const key = await createApiKey(pool, values.scope === 'tap' || values.scope === 'operator' ? { scope: values.scope } : { merchantId: values.merchant! });
    console.log(key);
  } finally {
    await pool.end();
  }
  return 0;
}
