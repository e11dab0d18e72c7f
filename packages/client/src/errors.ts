/**
 * Base class of every error `@tollgate/client` throws. Its own hierarchy (not `@tollgate/core`'s):
 * this package has no runtime dependencies.
 */
export class ClientError extends Error {
  override name = 'ClientError';
  /** A stable code, e.g. `TOLLGATE_CLIENT_QUEUE_FULL`, for logs and switch statements. */
  readonly code: string;

  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Invalid options, thrown by `pace()` (never per call). */
export class ConfigError extends ClientError {
  override name = 'ConfigError';

  constructor(message: string) {
    super(message, 'TOLLGATE_CONFIG');
  }
}

/** The call's cost is larger than a quota's whole limit: waiting can never make it fit. */
export class CostExceedsLimitError extends ClientError {
  override name = 'CostExceedsLimitError';

  constructor(
    readonly quota: string,
    readonly cost: number,
    readonly limit: number,
  ) {
    super(
      `A call costing ${cost} can never fit quota '${quota}' (limit ${limit}); it was not sent.`,
      'TOLLGATE_CLIENT_COST_EXCEEDS_LIMIT',
    );
  }
}

/** The queue of an origin already holds `maxQueue` calls. */
export class QueueFullError extends ClientError {
  override name = 'QueueFullError';

  constructor(
    readonly origin: string,
    readonly size: number,
  ) {
    super(
      `The queue for ${origin} is full (${size} calls waiting); the call was not queued.`,
      'TOLLGATE_CLIENT_QUEUE_FULL',
    );
  }
}

/** A call's `deadline` passed while it waited for its turn; it was never sent. */
export class DeadlineError extends ClientError {
  override name = 'DeadlineError';

  constructor(readonly origin: string) {
    super(
      `The call to ${origin} reached its deadline while waiting for quota; it was not sent.`,
      'TOLLGATE_CLIENT_DEADLINE',
    );
  }
}

/** The origin's circuit breaker is open: the call failed at once, unsent. */
export class CircuitOpenError extends ClientError {
  override name = 'CircuitOpenError';

  constructor(
    readonly origin: string,
    /** Local epoch ms when a probe call will be let through. */
    readonly retryAt: number,
    /** The model whose breaker is open (with `breaker.perModel`). */
    readonly model?: string,
  ) {
    super(
      `The circuit breaker for ${origin}${model === undefined ? '' : ` (model ${model})`} is open after repeated failures; the call was not sent. A probe goes through at ${new Date(retryAt).toISOString()}.`,
      'TOLLGATE_CLIENT_CIRCUIT_OPEN',
    );
  }
}

/** Whether `error` is one of this package's errors (any `ClientError`). */
export const isClientError = (error: unknown): error is ClientError => error instanceof ClientError;

/** `0 (number)`, `"abc" (string)`: how a bad value shows in a ConfigError message. */
function describeValue(value: unknown): string {
  if (typeof value === 'string') return `${JSON.stringify(value)} (string)`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return `\`${String(value)}\` (${typeof value})`;
  }
  if (value === null) return '`null`';
  if (value === undefined) return '`undefined`';
  if (Array.isArray(value)) return 'an array';
  return `a value of type ${typeof value}`;
}

/** "Expected `option` to be <expected>, got <value>." */
export const configError = (option: string, expected: string, value: unknown): ConfigError =>
  new ConfigError(`Expected \`${option}\` to be ${expected}, got ${describeValue(value)}.`);
