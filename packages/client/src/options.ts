import { ConfigError, configError } from './errors.js';
import { type CallInfo, type LimitRule, type ResolvedRule, resolveLimits } from './limits.js';
import { estimateTokens, usageTokens } from './usage.js';

/** How many retries all calls together may make: `retry.budget`. */
export interface RetryBudgetOptions {
  /**
   * Retries earned per call: over time at most this share of calls are retries, so a failing
   * server is not hit with several times its normal load.
   * @default 0.2
   */
  ratio?: number;
  /**
   * Retries allowed before any are earned (and the most that can be saved up), so a quiet client
   * still retries its few calls.
   * @default 10
   */
  reserve?: number;
}

/** Retries of failed calls: `pace(fetch, { retry })`. */
export interface RetryOptions {
  /**
   * Retries per call at most (attempts = 1 + limit).
   * @default 3
   */
  limit?: number;
  /**
   * Methods retried. Others are not (a retried POST may act twice) unless a call asks with
   * `pace: { retry: true }`.
   * @default ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']
   */
  methods?: readonly string[];
  /**
   * Statuses retried.
   * @default [408, 429, 500, 502, 503, 504]
   */
  statuses?: readonly number[];
  /**
   * The first backoff's ceiling in ms; the n-th retry waits a random time in [0, base × 2ⁿ)
   * ("full jitter"), unless the answer carries `Retry-After`, which is followed exactly.
   * @default 200
   */
  baseDelay?: number;
  /**
   * Ceiling of any backoff, in ms.
   * @default 20000
   */
  maxDelay?: number;
  /**
   * A `Retry-After` longer than this (ms) is not waited for: the answer goes back to the caller.
   * @default 60000
   */
  maxRetryAfter?: number;
  /** @default { ratio: 0.2, reserve: 10 } */
  budget?: RetryBudgetOptions;
}

/**
 * Pacing for servers that state no quota in their answers (AIMD): an origin whose answers carry no
 * rate-limit headers is called at `initialRate`, faster while calls succeed, slower after each
 * `backoffStatus`. Without this option a fallback stands by: dormant (no pacing) until such an
 * origin answers a backoff status while calls to it go out faster than `minRate` a second, then
 * AIMD from that observed rate with these defaults (and no `maxRate`). `aimd: false` turns it off.
 */
export interface AimdOptions {
  /** Calls per second to start at. @default 10 */
  initialRate?: number;
  /** @default 1 */
  minRate?: number;
  /** @default 100 */
  maxRate?: number;
  /** Calls/s added per second while calls succeed. @default 1 */
  increaseStep?: number;
  /** The rate is multiplied by this on a backoff status. @default 0.5 */
  decreaseFactor?: number;
  /** @default [429, 503] */
  backoffStatus?: readonly number[];
  /** Ms after a cut during which the rate neither grows nor is cut again. @default 1000 */
  cooldown?: number;
}

/** A circuit breaker per origin. Off unless given. */
export interface BreakerOptions {
  /** Failed calls in a row that open the breaker. @default 5 */
  failures?: number;
  /** Ms the breaker stays open before one probe call is let through. @default 10000 */
  resetAfter?: number;
  /**
   * Which answers count as failures (network errors always do).
   * @default (status) => status >= 500
   */
  failureStatus?: (status: number) => boolean;
  /**
   * Ms to wait for an answer's headers; a call still unanswered then is aborted (it rejects with a
   * `TimeoutError`) and counts as a failure. @default none
   */
  timeout?: number;
  /**
   * One breaker per model (the JSON body's `model`) instead of one per origin: a failing model
   * does not stop calls to the others. Calls naming no model share the origin's.
   * @default false
   */
  perModel?: boolean;
}

/** Options of `pace()`. */
export interface PaceOptions {
  /**
   * Budgets you state yourself, beside those learned from the answers' headers: requests and
   * tokens per minute or day, per URL prefix, model or any rule (see `LimitRule`). `presets`
   * holds a few well-known APIs' as data to copy.
   * @default []
   */
  limits?: readonly LimitRule[];
  /**
   * A call's token cost before it is sent, or `false` for none (token budgets then charge each
   * call at least 1 and settle it to its usage). A call may state its own with
   * `pace: { tokens }`.
   * @default the prompt's characters / 4 plus its `max_tokens` (or `max_completion_tokens`,
   * `max_output_tokens`), for JSON bodies naming a `model`
   */
  tokens?: ((call: CallInfo) => number | undefined) | false;
  /**
   * The tokens an answer's parsed JSON (or each event of a `text/event-stream`) says the call
   * used; the call's token charge is settled to it.
   * @default `usage.total_tokens`, else `usage.input_tokens + usage.output_tokens`, else
   * `usage.prompt_tokens + usage.completion_tokens`
   */
  usage?: (body: unknown) => number | undefined;
  /**
   * A tollgate store (`@tollgate/core`'s `MemoryStore`, `@tollgate/redis`'s `RedisStore`) that
   * keeps the configured budgets (`limits`), so that every process using it spends from one
   * budget: a fleet of workers shares one provider quota. Needs `@tollgate/core` installed (an
   * optional peer dependency). Without it each `pace()` keeps its budgets in memory.
   */
  store?: object;
  /**
   * With `store`: the quotas learned from the answers are paced across every process using the
   * store too. Each process learns the server's policy from its own answers; the fleet's calls to
   * one origin and credential then each take a permit from the store: a policy whose window the
   * server states is mirrored there (a token bucket of its limit and window, and a fixed or
   * sliding window of the same where the process reads one), one of unstated window paced by a
   * token bucket at what it sustains (a fixed window's rate, each window's calls also counted
   * under its reset; 99% of a sliding window's `(limit - 1) / window`; a bucket's rate; what a
   * bucket or sliding window has left over spent on top), the kind of quota told to every process
   * by the first that tells it. Each process still waits out a quota its answers say is spent.
   * For a fleet calling an API whose limits it has not configured in `limits`.
   * @default false
   */
  shareLearned?: boolean;
  /** A circuit breaker per origin. @default off */
  breaker?: BreakerOptions;
  /**
   * AIMD pacing for origins whose answers state no quota, from the first call; or `false` for
   * none. @default a dormant fallback (see AimdOptions)
   */
  aimd?: AimdOptions | false;
  /**
   * Retries of failed calls, or `false` for none.
   * @default {} (the defaults of RetryOptions)
   */
  retry?: RetryOptions | false;
  /**
   * Calls waiting per budget (origin and credential) at most; one more rejects with
   * `QueueFullError`.
   * @default 10000
   */
  maxQueue?: number;
  /**
   * What tells callers apart at one origin. Calls with different credentials have separate
   * budgets. The value is hashed (SHA-256) before it is kept; it never stays in clear.
   * @default the `Authorization`, `X-Api-Key` or `Api-Key` header
   */
  credential?: (headers: Headers, url: URL) => string | undefined;
  /** The clock, epoch ms. For tests. @default Date.now */
  now?: () => number;
  /** Random numbers in [0, 1) for backoff jitter. For tests. @default Math.random */
  random?: () => number;
}

/** Per call, beside the usual `RequestInit` fields: `fetch(url, { pace: { priority: 1 } })`. */
export interface CallOptions {
  /**
   * Higher goes first among the calls waiting for one budget.
   * @default 0
   */
  priority?: number;
  /**
   * Epoch ms: a call still waiting for its turn then is rejected with `DeadlineError`, unsent.
   */
  deadline?: number;
  /**
   * Retry this call although its method is not in `retry.methods` (`true`), or never (`false`).
   */
  retry?: boolean;
  /** This call's token estimate, instead of the `tokens` option's. */
  tokens?: number;
}

export interface ResolvedRetry {
  limit: number;
  methods: ReadonlySet<string>;
  statuses: ReadonlySet<number>;
  baseDelay: number;
  maxDelay: number;
  maxRetryAfter: number;
  ratio: number;
  reserve: number;
}

export interface ResolvedAimd {
  /** No `aimd` option: dormant until a backoff status finds calls going faster than `minRate`. */
  fallback: boolean;
  initialRate: number;
  minRate: number;
  maxRate: number;
  increaseStep: number;
  decreaseFactor: number;
  backoffStatus: ReadonlySet<number>;
  cooldown: number;
}

export interface ResolvedBreaker {
  failures: number;
  resetAfter: number;
  failureStatus: (status: number) => boolean;
  timeout: number | undefined;
  perModel: boolean;
}

export interface ResolvedOptions {
  limits: ResolvedRule[];
  tokens: ((call: CallInfo) => number | undefined) | undefined;
  usage: (body: unknown) => number | undefined;
  store: object | undefined;
  shareLearned: boolean;
  breaker: ResolvedBreaker | undefined;
  aimd: ResolvedAimd | undefined;
  retry: ResolvedRetry | undefined;
  maxQueue: number;
  credential: (headers: Headers, url: URL) => string | undefined;
  now: () => number;
  random: () => number;
}

const IDEMPOTENT = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'];

const defaultCredential = (headers: Headers): string | undefined =>
  headers.get('authorization') ?? headers.get('x-api-key') ?? headers.get('api-key') ?? undefined;

function checkObject(name: string, value: unknown): Record<string, unknown> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw configError(name, 'an object', value);
  }
  return value as Record<string, unknown>;
}

function checkKeys(name: string, value: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new ConfigError(
        `Unknown option \`${name}${name ? '.' : ''}${key}\`; known: ${known.join(', ')}.`,
      );
    }
  }
}

function number(name: string, value: unknown, fallback: number, min: number, integer: boolean): number {
  if (value === undefined) return fallback;
  const ok =
    typeof value === 'number' &&
    (integer ? Number.isInteger(value) || value === Number.POSITIVE_INFINITY : !Number.isNaN(value)) &&
    value >= min;
  if (!ok) throw configError(name, `${integer ? 'an integer' : 'a number'} ≥ ${min}`, value);
  return value;
}

function fn<T>(name: string, value: unknown, fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'function') throw configError(name, 'a function', value);
  return value as T;
}

function resolveRetry(value: unknown): ResolvedRetry | undefined {
  if (value === false) return undefined;
  const retry = checkObject('retry', value);
  checkKeys('retry', retry, [
    'limit',
    'methods',
    'statuses',
    'baseDelay',
    'maxDelay',
    'maxRetryAfter',
    'budget',
  ]);
  const budget = checkObject('retry.budget', retry.budget);
  checkKeys('retry.budget', budget, ['ratio', 'reserve']);
  const methods = retry.methods ?? IDEMPOTENT;
  if (!Array.isArray(methods) || !methods.every((m) => typeof m === 'string')) {
    throw configError('retry.methods', 'an array of method names', methods);
  }
  const statuses = retry.statuses ?? [408, 429, 500, 502, 503, 504];
  if (!Array.isArray(statuses) || !statuses.every((s) => Number.isInteger(s) && s >= 100 && s <= 599)) {
    throw configError('retry.statuses', 'an array of HTTP statuses', statuses);
  }
  return {
    limit: number('retry.limit', retry.limit, 3, 0, true),
    methods: new Set(methods.map((m: string) => m.toUpperCase())),
    statuses: new Set(statuses as number[]),
    baseDelay: number('retry.baseDelay', retry.baseDelay, 200, 0, false),
    maxDelay: number('retry.maxDelay', retry.maxDelay, 20_000, 0, false),
    maxRetryAfter: number('retry.maxRetryAfter', retry.maxRetryAfter, 60_000, 0, false),
    ratio: number('retry.budget.ratio', budget.ratio, 0.2, 0, false),
    reserve: number('retry.budget.reserve', budget.reserve, 10, 0, false),
  };
}

function resolveBreaker(value: unknown): ResolvedBreaker {
  const breaker = checkObject('breaker', value);
  checkKeys('breaker', breaker, ['failures', 'resetAfter', 'failureStatus', 'timeout', 'perModel']);
  if (breaker.perModel !== undefined && typeof breaker.perModel !== 'boolean') {
    throw configError('breaker.perModel', 'a boolean', breaker.perModel);
  }
  return {
    timeout:
      breaker.timeout === undefined ? undefined : number('breaker.timeout', breaker.timeout, 0, 1, false),
    perModel: breaker.perModel === true,
    failures: number('breaker.failures', breaker.failures, 5, 1, true),
    resetAfter: number('breaker.resetAfter', breaker.resetAfter, 10_000, 0, false),
    failureStatus: fn('breaker.failureStatus', breaker.failureStatus, (status: number) => status >= 500),
  };
}

function resolveAimd(value: unknown): ResolvedAimd | undefined {
  if (value === false) return undefined;
  const fallback = value === undefined;
  const aimd = checkObject('aimd', value);
  checkKeys('aimd', aimd, [
    'initialRate',
    'minRate',
    'maxRate',
    'increaseStep',
    'decreaseFactor',
    'backoffStatus',
    'cooldown',
  ]);
  const minRate = number('aimd.minRate', aimd.minRate, 1, Number.MIN_VALUE, false);
  const maxRate = number(
    'aimd.maxRate',
    aimd.maxRate,
    fallback ? Number.POSITIVE_INFINITY : 100,
    minRate,
    false,
  );
  const initialRate = number(
    'aimd.initialRate',
    aimd.initialRate,
    Math.min(maxRate, Math.max(minRate, 10)),
    minRate,
    false,
  );
  if (initialRate > maxRate)
    throw configError('aimd.initialRate', `a number ≤ maxRate (${maxRate})`, initialRate);
  const decreaseFactor = number('aimd.decreaseFactor', aimd.decreaseFactor, 0.5, Number.MIN_VALUE, false);
  if (decreaseFactor >= 1)
    throw configError('aimd.decreaseFactor', 'a number between 0 and 1', decreaseFactor);
  const statuses = aimd.backoffStatus ?? [429, 503];
  if (!Array.isArray(statuses) || !statuses.every((s) => Number.isInteger(s) && s >= 100 && s <= 599)) {
    throw configError('aimd.backoffStatus', 'an array of HTTP statuses', statuses);
  }
  return {
    fallback,
    initialRate,
    minRate,
    maxRate,
    increaseStep: number('aimd.increaseStep', aimd.increaseStep, 1, 0, false),
    decreaseFactor,
    backoffStatus: new Set(statuses as number[]),
    cooldown: number('aimd.cooldown', aimd.cooldown, 1000, 0, false),
  };
}

export function resolveOptions(value: unknown): ResolvedOptions {
  const options = checkObject('options', value);
  checkKeys('', options, [
    'aimd',
    'breaker',
    'retry',
    'maxQueue',
    'credential',
    'now',
    'random',
    'limits',
    'tokens',
    'usage',
    'store',
    'shareLearned',
  ]);
  if (options.store !== undefined && !isStore(options.store)) {
    throw configError(
      'store',
      'a tollgate store (MemoryStore, RedisStore: an object with consume, peek, refund and reset methods)',
      options.store,
    );
  }
  if (options.shareLearned !== undefined && typeof options.shareLearned !== 'boolean') {
    throw configError('shareLearned', 'a boolean', options.shareLearned);
  }
  if (options.shareLearned === true && options.store === undefined) {
    throw configError(
      'store',
      'a tollgate store when `shareLearned` is true (a RedisStore for a fleet)',
      undefined,
    );
  }
  return {
    limits: resolveLimits(options.limits),
    tokens: options.tokens === false ? undefined : fn('tokens', options.tokens, estimateTokens),
    usage: fn('usage', options.usage, usageTokens),
    store: options.store as object | undefined,
    shareLearned: options.shareLearned === true,
    aimd: resolveAimd(options.aimd),
    breaker: options.breaker === undefined ? undefined : resolveBreaker(options.breaker),
    retry: resolveRetry(options.retry),
    maxQueue: number('maxQueue', options.maxQueue, 10_000, 1, true),
    credential: fn('credential', options.credential, defaultCredential),
    now: fn('now', options.now, Date.now),
    random: fn('random', options.random, Math.random),
  };
}

/** What a tollgate store has (`@tollgate/core`'s `Store`): checked at `pace()`, not at the first call. */
const isStore = (value: unknown): boolean =>
  typeof value === 'object' &&
  value !== null &&
  ['consume', 'peek', 'refund', 'reset'].every(
    (method) => typeof (value as Record<string, unknown>)[method] === 'function',
  );
