// Built-in processors, registered by name for topology.yaml.
import { registerProcessor } from '../core/registry.ts';
import { validateProcessor } from './validate/index.ts';
import { riskProcessor } from './risk/index.ts';
import { ledgerProcessor } from './ledger/index.ts';
import { webhookEventsProcessor } from './webhook-events/index.ts';

export function registerBuiltinProcessors(): void {
  registerProcessor(validateProcessor);
  registerProcessor(riskProcessor);
  registerProcessor(ledgerProcessor);
  registerProcessor(webhookEventsProcessor);
}
