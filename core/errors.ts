// One error class per kind, so every layer can decide by `instanceof` what to do.

/** A processor failure worth retrying later (a dependency down, an event that arrived early). */
export class RetryableError extends Error {
  override name = 'RetryableError';
}

/** A processor failure that no retry can fix (a poison event): dead-letter it at once. */
export class FatalError extends Error {
  override name = 'FatalError';
}

/** The system is over its limits; the caller should come back after `retryAfterSeconds`. */
export class BackpressureError extends Error {
  override name = 'BackpressureError';
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

/** Bad configuration or usage: reported as one line, exit 1, never a stack trace. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
