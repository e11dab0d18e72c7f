/**
 * The status endpoint (issue 14): the caller's own limits on every limiter it names, counting
 * nothing, as JSON (GitHub's `GET /rate_limit` is the model). Framework-free: the adapters wrap it.
 */
import { checkFunction, checkOptions } from '../check-options.js';
import { CallbackError, ConfigError, configError, describeValue } from '../errors.js';
import type { Algorithm, Decision } from '../types.js';
import { ceilSeconds, retryAfterSeconds, windowSeconds } from './headers.js';
import type { KeyFunction } from './keys.js';
import type { HttpLimiter } from './rate-limit.js';
import type { RequestView } from './request-view.js';

/** One policy in a status answer: the numbers of its `RateLimit` header fields, read without counting. */
export interface PolicyStatusBody {
  name: string;
  algorithm: Algorithm;
  /** The quota: `limit` for the window algorithms, `burst` for the buckets (as `RateLimit-Limit`). */
  limit: number;
  /** Units the caller can still spend now; a request's `RateLimit-Remaining` is this minus its cost. */
  remaining: number;
  /** `limit - remaining`. */
  used: number;
  /** Seconds until the quota is full again, rounded up (as `RateLimit-Reset`); 0 when it is. */
  reset: number;
  /** Seconds from empty to full quota, rounded up (as `w` in `RateLimit-Policy`). */
  window: number;
}

/** One limiter in a status answer. */
export interface LimiterStatus {
  /** Whether a request of cost 1 would be allowed now. */
  allowed: boolean;
  /** Seconds until it would be (as `Retry-After`): 0 when allowed now. */
  retryAfter: number;
  /** The tier's name, for a limiter whose policies come from a function, when `tier` is given. */
  tier?: string;
  /**
   * Set when the numbers did not come from the store in the usual way: `'fallback'` (the fallback
   * store's), `'store-error'` (none), `'banned'` (the key is banned: `retryAfter` is the ban's time
   * left), or, for the caller's own address on the limiter's lists, `'allowed'` (never counted: no
   * policies) and `'denied'` (answered 403: no policies, `retryAfter` 0).
   */
  reason?: 'fallback' | 'store-error' | 'banned' | 'allowed' | 'denied';
  policies: PolicyStatusBody[];
}

/** The JSON body `rateLimitStatus()` answers with. */
export interface RateLimitStatusBody {
  /** By limiter `name`, in the order given. */
  limiters: Record<string, LimiterStatus>;
}

/** Options of `rateLimitStatus()`; `L` is what the framework's `rateLimit()` returns. */
export interface RateLimitStatusOptions<Req, L> {
  /** The limiters to report, as `rateLimit()` returned them (each with a distinct `name`). */
  limiters: readonly L[];
  /**
   * Whose limits: by default each limiter's own `key` function (the caller's key, as that limiter
   * counts it). A function here looks up this key on every limiter instead (an admin endpoint:
   * authenticate it first); `undefined` from it falls back to each limiter's own.
   */
  key?: KeyFunction<Req>;
  /**
   * The tier's name to show on limiters whose policies come from a function (tiers), asked for each
   * such limiter by name: `(req) => req.user?.plan`, or `(req, limiter) => limiter === 'org' ?
   * req.org.plan : req.user.plan` when limiters tier by different things. Without it no `tier` is shown.
   */
  tier?: (req: Req, limiter: string) => string | undefined | Promise<string | undefined>;
}

/** What the status handler answers: status 200, JSON, never cached. */
export interface StatusAnswer {
  status: 200;
  headers: Record<string, string>;
  /** A `RateLimitStatusBody` as JSON. */
  body: string;
}

const HEADERS = Object.freeze({
  'Content-Type': 'application/json; charset=utf-8',
  // Per caller and changing with every request: no shared cache may keep it.
  'Cache-Control': 'no-store',
});

/**
 * A limiter's status from a peek. Shadow policies (`mode: 'shadow'`) are left out unless `shadow`
 * (the limiter's `shadowHeaders`), as its headers leave them out: they enforce nothing.
 */
export function limiterStatus(decision: Decision, shadow = false): LimiterStatus {
  const shown = shadow ? decision.policies : decision.policies.filter((p) => p.policy.mode !== 'shadow');
  const status: LimiterStatus = {
    allowed: decision.allowed,
    retryAfter: decision.allowed ? 0 : (retryAfterSeconds(decision.retryAfterMs) ?? 0),
    policies: shown.map((p) => ({
      name: p.name,
      algorithm: p.policy.algorithm,
      limit: p.limit,
      remaining: p.remaining,
      used: p.limit - p.remaining,
      reset: ceilSeconds(p.resetMs),
      window: Number(windowSeconds(p)),
    })),
  };
  const { reason } = decision;
  if (reason === 'fallback' || reason === 'store-error' || reason === 'banned') status.reason = reason;
  return status;
}

/**
 * Parses the options once and returns the handler: `(view, req) => Promise<StatusAnswer>`.
 * `handleOf` finds the framework-free limiter behind each item of `limiters` (`expected` says what
 * an item must be); a callback's wrong value rejects with a `CallbackError`.
 */
export function statusHandler<Req, L>(
  options: RateLimitStatusOptions<Req, L>,
  handleOf: (item: unknown) => HttpLimiter<Req> | undefined,
  expected: string,
): (view: RequestView, req: Req) => Promise<StatusAnswer> {
  checkOptions(options, ['limiters', 'key', 'tier'], '`rateLimitStatus()` options');
  const { limiters, key, tier } = options;
  checkFunction(key, 'key');
  checkFunction(tier, 'tier');
  if (!Array.isArray(limiters) || limiters.length === 0) {
    throw configError('limiters', `a non-empty array of ${expected}`, limiters);
  }
  const handles = limiters.map((item: unknown, i) => {
    const handle = handleOf(item);
    if (handle === undefined) throw configError(`limiters[${i}]`, expected, item);
    return handle;
  });
  const names = handles.map((h) => h.limiter.name);
  names.forEach((name, i) => {
    const first = names.indexOf(name);
    if (first !== i) {
      throw new ConfigError(
        `\`limiters[${first}]\` and \`limiters[${i}]\` are both named '${name}': the status answer lists limiters by name, so give each \`rateLimit()\` a distinct \`name\`.`,
      );
    }
  });

  return async function rateLimitStatus(view: RequestView, req: Req): Promise<StatusAnswer> {
    const override = key === undefined ? undefined : await key(req);
    if (override !== undefined && typeof override !== 'string') {
      throw new CallbackError(
        'key',
        `Expected the \`key\` function of rateLimitStatus() to return a string or undefined, got ${describeValue(override)}.`,
      );
    }
    const statuses = await Promise.all(
      handles.map(async (h, i) => {
        const status = await h.status(view, req, override || undefined);
        const name =
          tier === undefined || h.limiter.policies !== undefined ? undefined : await tier(req, names[i]!);
        if (name === undefined) return status;
        if (typeof name !== 'string') {
          throw new CallbackError(
            'tier',
            `Expected the \`tier\` function of rateLimitStatus() to return a string or undefined, got ${describeValue(name)}.`,
          );
        }
        return { tier: name, ...status };
      }),
    );
    const body: RateLimitStatusBody = { limiters: {} };
    statuses.forEach((status, i) => {
      body.limiters[names[i]!] = status;
    });
    return { status: 200, headers: { ...HEADERS }, body: JSON.stringify(body) };
  };
}

/** True for what core's `rateLimit()` returns. */
const isHttpLimiter = (item: unknown): item is HttpLimiter<never> =>
  typeof item === 'function' &&
  typeof (item as Partial<HttpLimiter<never>>).status === 'function' &&
  typeof (item as Partial<HttpLimiter<never>>).limiter === 'object';

/**
 * The status endpoint for any server (the adapters' `rateLimitStatus()` wrap it): answers the
 * caller's own limits on every limiter given (every policy: limit, remaining, reset, window,
 * algorithm; the tier where tiers apply), counting nothing. Write the answer's status, headers and
 * body to the response.
 */
export function rateLimitStatus<Req>(
  options: RateLimitStatusOptions<Req, HttpLimiter<Req>>,
): (view: RequestView, req: Req) => Promise<StatusAnswer> {
  return statusHandler(
    options,
    (item) => (isHttpLimiter(item) ? (item as HttpLimiter<Req>) : undefined),
    'a limiter returned by `rateLimit()` of `@tollgate/core`',
  );
}
