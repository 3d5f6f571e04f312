#!/usr/bin/env node
// The `rill` command. Runs the compiled dist/ when built (`npm run build`), else the TypeScript
// sources through tsx, so a fresh clone works after `npm ci` alone.
import { existsSync } from 'node:fs';

const dist = new URL('../dist/cli/main.js', import.meta.url);
let main;
if (existsSync(dist) && process.env.RILL_FROM_SOURCE !== '1') {
  ({ main } = await import(dist.href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(new URL('../cli/main.ts', import.meta.url).href));
}
process.exit(await main(process.argv.slice(2)));
