// Await a condition instead of sleeping (core/wait.ts).
export { waitFor } from '../../core/wait.ts';
