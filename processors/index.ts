// Built-in processors, registered by name for topology.yaml.
import type { ProcessorFactory } from '../core/processor-kit.ts';
import { validateProcessor } from './validate/index.ts';
import { riskProcessor } from './risk/index.ts';
import { ledgerProcessor } from './ledger/index.ts';
import { webhookEventsProcessor } from './webhook-events/index.ts';

/**
 * Hands every built-in to `register`: core/registry.ts's registerProcessor, passed in by the wiring
 * (processors import core only through core/processor-kit.ts; the registry stays with the wiring).
 */
export function registerBuiltinProcessors(register: <C>(factory: ProcessorFactory<C>) => void): void {
  register(validateProcessor);
  register(riskProcessor);
  register(ledgerProcessor);
  register(webhookEventsProcessor);
}
