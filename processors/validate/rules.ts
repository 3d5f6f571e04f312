// Business rules past the ingest schema. Pure: an event in, the list of broken rules out.
import type { TransactionEvent } from '../../core/event.ts';
import { TRANSACTION_TYPES } from '../../core/event.ts';

export interface ValidateRules {
  /** Currencies this deployment settles; an empty list accepts any ISO 4217 code ingest accepted. */
  currencies: readonly string[];
  /** Highest amount per transaction type, in minor units. */
  maxAmount: Partial<Record<string, number>>;
  /** Types that must reference the transaction they reverse. */
  referenceRequired: readonly string[];
}

export function brokenRules(ev: TransactionEvent, rules: ValidateRules): string[] {
  const problems: string[] = [];
  if (!(TRANSACTION_TYPES as readonly string[]).includes(ev.type)) problems.push(`unknown type "${String(ev.type)}"`);
  if (!Number.isSafeInteger(ev.amount) || ev.amount <= 0) problems.push('amount must be a positive integer of minor units');
  const max = rules.maxAmount[ev.type];
  if (max !== undefined && ev.amount > max) problems.push(`amount ${ev.amount} exceeds the ${ev.type} limit of ${max}`);
  if (rules.currencies.length && !rules.currencies.includes(ev.currency)) problems.push(`currency ${ev.currency} is not accepted`);
  if (rules.referenceRequired.includes(ev.type) && !ev.reference) problems.push(`a ${ev.type} needs a reference to the original transaction`);
  if (typeof ev.merchant_id !== 'string' || !ev.merchant_id) problems.push('merchant_id is missing');
  return problems;
}
