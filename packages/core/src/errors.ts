/** Base class of every error tollgate throws. */
export class TollgateError extends Error {
  override name = 'TollgateError';
  /** A stable code, e.g. `TOLLGATE_CONFIG`, for logs and switch statements. */
  readonly code: string;

  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Invalid options, thrown at construction, or invalid arguments to a limiter's methods. */
export class ConfigError extends TollgateError {
  override name = 'ConfigError';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'TOLLGATE_CONFIG', options);
  }
}

/**
 * A callback you gave `rateLimit()` (`key`, `policies`, `cost`) returned the wrong kind of value
 * for one request. That request fails, uncounted, through the framework's error path (a 500 by
 * default); other requests are unaffected. `option` names the callback.
 */
export class CallbackError extends TollgateError {
  override name = 'CallbackError';
  /** The option whose function returned the value: `'key'`, `'policies'` or `'cost'`. */
  readonly option: string;

  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super(message, 'TOLLGATE_CALLBACK', options);
    this.option = option;
  }
}

/**
 * What a store failure takes down: the whole store (a lost connection, a timeout), only the part
 * holding the request's key (`'shard'`: one Redis Cluster master, see `Store.shardOf`), or only that
 * key (`'key'`: its value is of the wrong type or unreadable). The limiter puts the store, or that
 * shard, in the failing state for the first two; the third fails that one request alone.
 */
export type StoreErrorScope = 'store' | 'shard' | 'key';

/** A store failed (connection lost, timeout, script error). The original error is `cause`. */
export class StoreError extends TollgateError {
  override name = 'StoreError';
  /** What the failure takes down (see `StoreErrorScope`). @default 'store' */
  readonly scope: StoreErrorScope;

  constructor(message: string, options?: { cause?: unknown; scope?: StoreErrorScope }) {
    super(message, 'TOLLGATE_STORE', options);
    this.scope = options?.scope ?? 'store';
  }
}

/** True for every error tollgate throws or rejects with. */
export const isTollgateError = (error: unknown): error is TollgateError => error instanceof TollgateError;
/** True for a `ConfigError` (bad options or arguments). */
export const isConfigError = (error: unknown): error is ConfigError => error instanceof ConfigError;
/** True for a `CallbackError` (a `rateLimit()` callback returned the wrong kind of value). */
export const isCallbackError = (error: unknown): error is CallbackError => error instanceof CallbackError;
/** True for a `StoreError` (the store failed or is closed). */
export const isStoreError = (error: unknown): error is StoreError => error instanceof StoreError;

/** `0 (number)`, `'abc' (string)`: how a bad value shows in a ConfigError message. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return `${JSON.stringify(value)} (string)`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return `\`${String(value)}\` (${typeof value})`;
  }
  if (value === null) return '`null`';
  if (value === undefined) return '`undefined`';
  if (Array.isArray(value)) return 'an array';
  return `a value of type ${typeof value}`;
}

/** Throws a ConfigError: "Expected `option` to be <expected>, got <value>.<hint>" */
export function configError(option: string, expected: string, value: unknown, hint = ''): ConfigError {
  return new ConfigError(
    `Expected \`${option}\` to be ${expected}, got ${describeValue(value)}.${hint ? ` ${hint}` : ''}`,
  );
}
