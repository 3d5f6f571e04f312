// The one way to load Lua scripts. A component keeps its scripts in a `scripts/` folder at its
// root (core/scripts and core/webhooks/scripts, ingest/scripts, console/scripts,
// processors/<name>/scripts, sinks/<name>/scripts), one command per file named
// `<name>-<numKeys>.lua`, or `<name>-var.lua` when the caller passes the key count first. Each file opens with a `--[[ ]]` header listing
// KEYS, ARGV and what it returns. Shared Lua helpers live in core/scripts/includes/ and are
// pulled in by a line `--- @include "<helper>"`, replaced at load time by that file's text.
// Scripts are read once per process, when the owning module loads: a missing or unexpected file
// fails then, not at the first call. redis.ts defines them on a connection (defineScripts) and
// runs them by EVALSHA (runScript).
import { readdirSync, readFileSync } from 'node:fs';
import type { ScriptSource } from './redis.ts';

const FILE = /^([a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*?)-(\d+|var)\.lua$/;
const INCLUDE = /^--- @include "([a-z][a-z0-9-]*)"\n/gm;
const INCLUDES_DIR = new URL('./scripts/includes/', import.meta.url);

/**
 * Read the scripts of `dir` (a `scripts/` folder URL), by their camelCase names (`settle-var.lua`:
 * `settle`). Fails when a named script is missing or a file name breaks the convention.
 */
export function loadScripts<const N extends string>(dir: URL, names: readonly N[]): { readonly [K in N]: ScriptSource } {
  const found = new Map<string, ScriptSource>();
  for (const file of readdirSync(dir)) {
    if (!file.endsWith('.lua')) continue;
    const m = FILE.exec(file);
    if (!m) throw new Error(`bad Lua script name ${file}: expected <name>-<numKeys>.lua or <name>-var.lua`);
    const name = camel(m[1]!);
    found.set(name, { name, numberOfKeys: m[2] === 'var' ? undefined : Number(m[2]), lua: withIncludes(readFileSync(new URL(file, dir), 'utf8')) });
  }
  const out = {} as Record<N, ScriptSource>;
  for (const name of names) {
    const s = found.get(name);
    if (!s) throw new Error(`Lua script ${name} is missing from ${dir.pathname}`);
    out[name] = s;
  }
  return out;
}

function withIncludes(lua: string): string {
  return lua.replace(INCLUDE, (_, helper: string) => readFileSync(new URL(`${helper}.lua`, INCLUDES_DIR), 'utf8'));
}

function camel(s: string): string {
  return s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The engine's scripts (core/scripts). */
export const CORE_SCRIPTS_BY_NAME = loadScripts(new URL('./scripts/', import.meta.url), ['settle', 'moveDue', 'takeParked', 'redrive']);
export type CoreScriptName = keyof typeof CORE_SCRIPTS_BY_NAME;
export const CORE_SCRIPTS: readonly ScriptSource[] = Object.values(CORE_SCRIPTS_BY_NAME);

export function coreScript(name: CoreScriptName): ScriptSource {
  return CORE_SCRIPTS_BY_NAME[name];
}
