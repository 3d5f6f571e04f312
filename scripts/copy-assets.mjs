// `npm run build`: tsc compiles the TypeScript; the Lua scripts, SQL migrations and the console's
// static assets it does not touch are copied beside the compiled modules that read them.
import { cpSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const skip = new Set(['node_modules', 'dist', '.git', 'test']);
let n = 0;
(function walk(rel) {
  for (const name of readdirSync(join(root, rel))) {
    if (skip.has(name)) continue;
    const p = join(rel, name);
    if (statSync(join(root, p)).isDirectory()) walk(p);
    else if (name.endsWith('.lua') || name.endsWith('.sql') || rel.startsWith('console/assets')) {
      cpSync(join(root, p), join(root, 'dist', p));
      n++;
    }
  }
})('');
console.log(`copied ${n} Lua, SQL and asset files to dist/`);
