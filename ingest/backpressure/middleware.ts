// The request-path side of load shedding: one in-memory check, before any Redis work.
import type { MiddlewareHandler } from 'hono';
import { BackpressureError } from '../../core/errors.ts';
import type { LoadGate } from './shedder.ts';

export function shedLoad(gate: LoadGate): MiddlewareHandler {
  return async (_c, next) => {
    const { state } = gate;
    if (state.shedding) throw new BackpressureError(state.reasons.join('; '), gate.retryAfterSeconds);
    await next();
  };
}
