// The engine's Lua scripts, read once per process.
import { CORE_SCRIPTS_DIR, readScripts } from './redis.ts';
import type { ScriptSource } from './redis.ts';

export const CORE_SCRIPTS: readonly ScriptSource[] = readScripts(CORE_SCRIPTS_DIR);

export function coreScript(name: string): ScriptSource {
  const s = CORE_SCRIPTS.find((x) => x.name === name);
  if (!s) throw new Error(`Lua script ${name} is missing from core/scripts`);
  return s;
}
