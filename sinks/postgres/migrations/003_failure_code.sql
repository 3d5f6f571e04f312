-- A failed transaction's stable, machine-readable reason (core/failure-codes.ts), beside the
-- human failure_reason. Added to the partitioned parent, so every daily partition has it.
ALTER TABLE transactions ADD COLUMN failure_code text;
