import type { Decision } from '../types.js';
import { ceilSeconds, retryAfterSeconds } from './headers.js';

/** The IANA-registered problem type for rate limiting (RFC 9457 §4.2, HTTP problem types registry). */
export const QUOTA_EXCEEDED_TYPE = 'https://iana.org/assignments/http-problem-types#quota-exceeded';

/** The default 429 body: RFC 9457 problem details with the decision's numbers. */
export interface QuotaExceededProblem {
  type: typeof QUOTA_EXCEEDED_TYPE;
  title: string;
  status: number;
  detail: string;
  /** Names of the enforced policies that denied the request. */
  'violated-policies': string[];
  /** Seconds to wait, as in `Retry-After`; absent when the request can never fit (cost > capacity). */
  retryAfter?: number;
  limit: number;
  remaining: 0;
  /** Seconds until the binding policy is back to its full quota. */
  reset: number;
}

/**
 * The problem type of a request refused by `rateLimit()`'s `deny` list (403): not a rate limit, so
 * not `quota-exceeded`, and no IANA-registered type fits; it names the README section that
 * describes it.
 */
export const ACCESS_DENIED_TYPE = 'https://github.com/tollgate/tollgate#allow-and-deny-lists';

/** The 403 body of a request refused by the `deny` list. */
export interface AccessDeniedProblem {
  type: typeof ACCESS_DENIED_TYPE;
  title: 'Access denied';
  status: 403;
  detail: string;
}

/** The 503 body when the store failed and `onStoreError` is `'deny'`. */
export interface StoreUnavailableProblem {
  type: 'about:blank';
  title: 'Service Unavailable';
  status: 503;
  detail: string;
  retryAfter?: number;
}

export function quotaExceededProblem(decision: Decision, status = 429): QuotaExceededProblem {
  // A shadow policy never denies: it is no violated policy (its name is in `shadowLimited`).
  const violated = decision.policies
    .filter((p) => !p.allowed && p.policy.mode !== 'shadow')
    .map((p) => p.name);
  const names = violated.map((n) => `'${n}'`).join(', ');
  const retryAfter = retryAfterSeconds(decision.retryAfterMs);
  const seconds = `${retryAfter} second${retryAfter === 1 ? '' : 's'}`;
  // A ban refuses the key whatever its policies say: no policy is the one violated now.
  const banned = decision.reason === 'banned';
  const detail = banned
    ? `Banned for repeatedly exceeding the rate limit. The ban ends in ${seconds}; retry after it.`
    : retryAfter === undefined
      ? `This request costs more than policy ${names} allows at once (${decision.limit}); it can never succeed.`
      : `Rate limit exceeded (policy ${names}). Retry after ${seconds}.`;
  const problem: QuotaExceededProblem = {
    type: QUOTA_EXCEEDED_TYPE,
    title: 'Request cannot be satisfied as assigned quota has been exceeded',
    status,
    detail,
    'violated-policies': banned ? [] : violated,
    limit: decision.limit,
    remaining: 0,
    reset: ceilSeconds(decision.resetMs),
  };
  if (retryAfter !== undefined) problem.retryAfter = retryAfter;
  return problem;
}

export function accessDeniedProblem(): AccessDeniedProblem {
  return {
    type: ACCESS_DENIED_TYPE,
    title: 'Access denied',
    status: 403,
    detail: 'Requests from this client are refused by the deny list; waiting does not help.',
  };
}

export function storeUnavailableProblem(decision: Decision): StoreUnavailableProblem {
  const problem: StoreUnavailableProblem = {
    type: 'about:blank',
    title: 'Service Unavailable',
    status: 503,
    detail: 'The rate limiter cannot reach its store, so requests are refused until it recovers.',
  };
  const retryAfter = retryAfterSeconds(decision.retryAfterMs);
  if (retryAfter !== undefined) problem.retryAfter = retryAfter;
  return problem;
}

export interface EncodedBody {
  body: string | Uint8Array;
  contentType: string;
}

/**
 * A body value as bytes and a content type: strings as text, bytes as they are, anything else as
 * JSON (`problem` marks an RFC 9457 object, sent as `application/problem+json`).
 */
export function encodeBody(value: unknown, problem = false): EncodedBody {
  if (typeof value === 'string') return { body: value, contentType: 'text/plain; charset=utf-8' };
  if (value instanceof Uint8Array) {
    // As a Buffer: Koa sends Buffers as they are, but would serialize a plain Uint8Array as JSON.
    const bytes = Buffer.isBuffer(value)
      ? value
      : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    return { body: bytes, contentType: 'application/octet-stream' };
  }
  return {
    body: JSON.stringify(value) ?? 'null',
    contentType: problem ? 'application/problem+json' : 'application/json; charset=utf-8',
  };
}
