// Processors found by name from the topology. Built-ins register themselves through the CLI's
// wiring (core imports none of them); a topology may also name a module path.
import { resolve } from 'node:path';
import type { ProcessorFactory } from './processor.ts';
import { ConfigError } from './errors.ts';
import { importPlugin } from './plugin-import.ts';

const factories = new Map<string, ProcessorFactory<unknown>>();

export function registerProcessor<C>(factory: ProcessorFactory<C>): void {
  factories.set(factory.name, factory as ProcessorFactory<unknown>);
}

export function isModulePath(name: string): boolean {
  return name.startsWith('.') || name.startsWith('/');
}

/** Resolve a topology `processor:` value; module paths are relative to the topology file's folder. */
export async function resolveProcessor(name: string, baseDir = process.cwd()): Promise<ProcessorFactory<unknown>> {
  const known = factories.get(name);
  if (known) return known;
  if (!isModulePath(name)) throw new ConfigError(`unknown processor "${name}" (registered: ${[...factories.keys()].join(', ') || 'none'})`);
  const mod = (await importPlugin(resolve(baseDir, name))) as { default?: ProcessorFactory<unknown> };
  if (!mod.default || typeof mod.default.create !== 'function') {
    throw new ConfigError(`processor module ${name} must export default a ProcessorFactory`);
  }
  return mod.default;
}

export function registeredProcessors(): string[] {
  return [...factories.keys()];
}
