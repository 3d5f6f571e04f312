// Built-in processors, registered by name for topology.yaml.
import { registerProcessor } from '../core/registry.ts';
import { validateProcessor } from './validate/index.ts';

export function registerBuiltinProcessors(): void {
  registerProcessor(validateProcessor);
}
