// Moved to core/tx-id.ts (processors read the id's time too; issue #17): kept for imports written before.
export * from '../core/tx-id.ts';
