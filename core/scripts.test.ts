import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CORE_SCRIPTS, loadScripts } from './scripts.ts';

const root = new URL('..', import.meta.url).pathname;

function tempScripts(files: Record<string, string>): URL {
  const dir = mkdtempSync(join(tmpdir(), 'rill-lua-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return pathToFileURL(`${dir}/`);
}

test('a file name gives the script its camelCase name and key count; -var leaves the count to the caller', () => {
  const dir = tempScripts({ 'take-two-2.lua': 'return 2', 'take-many-var.lua': 'return 0' });
  try {
    const s = loadScripts(dir, ['takeTwo', 'takeMany']);
    assert.deepEqual([s.takeTwo.name, s.takeTwo.numberOfKeys, s.takeTwo.lua], ['takeTwo', 2, 'return 2']);
    assert.deepEqual([s.takeMany.name, s.takeMany.numberOfKeys], ['takeMany', undefined]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('a missing script or a name without its key count fails at load, not at the first call', () => {
  const dir = tempScripts({ 'present-1.lua': 'return 1' });
  try {
    assert.throws(() => loadScripts(dir, ['present', 'absent']), /Lua script absent is missing/);
  } finally {
    rmSync(dir, { recursive: true });
  }
  const bad = tempScripts({ 'no-count.lua': 'return 1' });
  try {
    assert.throws(() => loadScripts(bad, []), /bad Lua script name no-count\.lua/);
  } finally {
    rmSync(bad, { recursive: true });
  }
});

test('--- @include "<helper>" is replaced by core/scripts/includes/<helper>.lua', () => {
  const helper = readFileSync(new URL('./scripts/includes/field.lua', import.meta.url), 'utf8');
  const dir = tempScripts({ 'uses-field-1.lua': '--[[ x ]]\n--- @include "field"\nreturn field(ARGV, KEYS[1])\n' });
  try {
    assert.equal(loadScripts(dir, ['usesField']).usesField.lua, `--[[ x ]]\n${helper}return field(ARGV, KEYS[1])\n`);
  } finally {
    rmSync(dir, { recursive: true });
  }
  assert.ok(CORE_SCRIPTS.every((s) => !s.lua.includes('@include')));
});

test('every Lua script in the tree follows the convention: scripts/ folder, key count in the name, --[[ ]] header with KEYS, ARGV, returns', () => {
  const found: string[] = [];
  (function walk(dir: string): void {
    for (const name of readdirSync(dir)) {
      if (name === 'node_modules' || name === 'dist' || name === '.git') continue;
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.lua')) found.push(relative(root, p));
    }
  })(root);
  assert.ok(found.length >= 14, `found ${found.length} scripts`);
  for (const file of found) {
    if (file.startsWith('core/scripts/includes/')) continue;
    assert.match(file, /(^|\/)scripts\/[a-z][a-z0-9-]*-(\d+|var)\.lua$/, file);
    const text = readFileSync(join(root, file), 'utf8');
    const header = text.startsWith('--[[') ? text.slice(0, text.indexOf(']]')) : '';
    assert.ok(header, `${file} opens with a --[[ ]] header`);
    for (const word of ['KEYS', 'ARGV', 'Returns']) assert.ok(header.includes(word), `${file}: its header names ${word}`);
  }
});
