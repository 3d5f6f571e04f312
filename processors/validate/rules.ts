// Business rules past the ingest schema. Pure: an event in, the list of broken rules out, each
// with its stable failure code (core/failure-codes.ts).
import { TRANSACTION_TYPES } from '../../core/processor-kit.ts';
import type { FailureCode, TransactionEvent } from '../../core/processor-kit.ts';

export interface ValidateRules {
  /** Currencies this deployment settles; an empty list accepts any ISO 4217 code ingest accepted. */
  currencies: readonly string[];
  /** Highest amount per transaction type, in minor units. */
  maxAmount: Partial<Record<string, number>>;
  /** Types that must reference the transaction they reverse. */
  referenceRequired: readonly string[];
}

export interface BrokenRule {
  code: FailureCode;
  message: string;
}

export function brokenRules(ev: TransactionEvent, rules: ValidateRules): BrokenRule[] {
  const problems: BrokenRule[] = [];
  const broke = (code: FailureCode, message: string) => problems.push({ code, message });
  if (!(TRANSACTION_TYPES as readonly string[]).includes(ev.type)) broke('invalid_transaction', `unknown type "${String(ev.type)}"`);
  if (!Number.isSafeInteger(ev.amount) || ev.amount <= 0) broke('invalid_transaction', 'amount must be a positive integer of minor units');
  if (typeof ev.merchant_id !== 'string' || !ev.merchant_id) broke('invalid_transaction', 'merchant_id is missing');
  const max = rules.maxAmount[ev.type];
  if (max !== undefined && ev.amount > max) broke('amount_too_large', `amount ${ev.amount} exceeds the ${ev.type} limit of ${max}`);
  if (rules.currencies.length && !rules.currencies.includes(ev.currency)) broke('currency_not_allowed', `currency ${ev.currency} is not accepted`);
  if (rules.referenceRequired.includes(ev.type) && !ev.reference) broke('reference_missing', `a ${ev.type} needs a reference to the original transaction`);
  return problems;
}
