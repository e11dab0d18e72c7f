import type { Logger } from './types.js';

/**
 * Coded warnings for soft misconfiguration. Each is logged once per limiter (or per store) through
 * the injectable `logger`. The codes are stable; the README documents each one.
 */
export const WARNINGS = {
  /** `X-Forwarded-For` arrives but the app does not trust proxies: every client behind the proxy shares one key. */
  TRUST_PROXY: 'TOLLGATE_TRUST_PROXY',
  /** The same limiter counted one request twice (mounted twice on one path). */
  DOUBLE_COUNT: 'TOLLGATE_DOUBLE_COUNT',
  /** Two limiters with one name and different policies share a store: their counters are separate. */
  NAME_CONFLICT: 'TOLLGATE_NAME_CONFLICT',
  /** The store failed; decisions come from `onStoreError` or the fallback until it recovers. */
  STORE_ERROR: 'TOLLGATE_STORE_ERROR',
  /**
   * The store failed on one key's value (a key of the wrong type, an unreadable state): that request
   * was answered by the fallback or `onStoreError`, other keys are unaffected. Logged once per key,
   * which shows as the first 16 hex digits of its SHA-256, never in clear.
   */
  STORE_KEY_ERROR: 'TOLLGATE_STORE_KEY_ERROR',
  /** The store recovered after a failure. */
  STORE_RECOVERED: 'TOLLGATE_STORE_RECOVERED',
  /** A key function returned no key; the request was limited under a shared fallback key. */
  MISSING_KEY: 'TOLLGATE_MISSING_KEY',
  /**
   * The app trusts every hop of `X-Forwarded-For` (Express `trust proxy: true`, Koa `proxy` with
   * `maxIpsCount` 0), so any client can claim any address and get a fresh bucket per request.
   */
  PERMISSIVE_TRUST_PROXY: 'TOLLGATE_PERMISSIVE_TRUST_PROXY',
  /**
   * A `policies` function returned new objects equal to earlier ones: each is validated again on
   * every request. Define tier policies once, outside the function.
   */
  UNSTABLE_POLICIES: 'TOLLGATE_UNSTABLE_POLICIES',
  /**
   * The client address the framework reported is no IP address in any spelling; such requests
   * share one `ip:invalid` bucket.
   */
  INVALID_IP: 'TOLLGATE_INVALID_IP',
  /**
   * The client address the framework reported carries a port (`1.2.3.4:5678`, `[::1]:443`):
   * something in front writes host:port into `X-Forwarded-For`. byIp drops the port (one bucket per
   * client), but the proxy setup is worth a look.
   */
  IP_WITH_PORT: 'TOLLGATE_IP_WITH_PORT',
  /**
   * A `Forwarded` header (RFC 7239) arrives but the app does not trust proxies: every client behind
   * the proxy shares one key. (Express and Koa read `X-Forwarded-For` only: make the proxy send it.)
   */
  FORWARDED_HEADER: 'TOLLGATE_FORWARDED_HEADER',
  /**
   * A limiter was created inside a request handler (Express or Koa middleware on the stack): a new
   * limiter per request counts every request on fresh counters, so nothing is ever limited.
   */
  CREATED_IN_REQUEST: 'TOLLGATE_CREATED_IN_REQUEST',
  /** The response had started before the limiter decided: it could set no headers and send no 429. */
  HEADERS_SENT: 'TOLLGATE_HEADERS_SENT',
  /**
   * A policy's `window` is a number under 1000: numbers are milliseconds, so `window: 60` is 60 ms,
   * most likely meant as `'60s'`. Write the string (`'60s'`, or `'60ms'` if milliseconds are meant).
   */
  NUMERIC_WINDOW: 'TOLLGATE_NUMERIC_WINDOW',
  /**
   * A reservation's estimate exceeds a policy's capacity (`limit`, or `burst` for the buckets): it is
   * denied, and always will be (`retryAfterMs` Infinity), so the call never happens. Reserve at most
   * the capacity (a typical or capped estimate) and let `settle` charge the rest.
   */
  ESTIMATE_ABOVE_CAPACITY: 'TOLLGATE_ESTIMATE_ABOVE_CAPACITY',
  /**
   * A settle left units uncharged: counting them would have taken a policy more than its `maxDebt`
   * over its capacity. Raise the policy's `maxDebt`, or reserve estimates closer to the actual cost.
   */
  DEBT_CAPPED: 'TOLLGATE_DEBT_CAPPED',
  /**
   * A reservation was garbage-collected without `settle()` or `release()`: its estimate stays
   * counted as its cost. Settle it once the cost is known, or release it (in a `finally`).
   */
  UNSETTLED: 'TOLLGATE_UNSETTLED',
  /**
   * A policy's `window` is a whole number of days from 28 to 31 (`'30d'`): a rolling window, not a
   * calendar month. For a monthly quota write `window: { calendar: 'month' }`; keep the duration if
   * a rolling window is meant.
   */
  ROLLING_MONTH: 'TOLLGATE_ROLLING_MONTH',
  /**
   * One limiter's calendar policies name more than 3 time zones (a `timeZone` per user): each zone
   * keeps its own counters, so a user who changes zone starts a fresh quota. Use one zone, the
   * business's.
   */
  CALENDAR_ZONES: 'TOLLGATE_CALENDAR_ZONES',
  /**
   * A limiter has automatic bans and `blockedCache` on: requests the denied-key cache refuses never
   * reach the store, so they count no denial, and a flooding client is banned late or never.
   */
  BAN_BLOCKED_CACHE: 'TOLLGATE_BAN_BLOCKED_CACHE',
  /**
   * The longest ban (`ban.for`, or `ban.escalate.max`) is shorter than the longest policy window:
   * a client that exhausts that policy is refused by it for longer than by the ban.
   */
  BAN_SHORT: 'TOLLGATE_BAN_SHORT',
  /**
   * Automatic bans beside a concurrency policy: a request refused for want of a free slot counts
   * toward a ban, so a client sending requests in parallel can be banned without passing any rate.
   */
  BAN_CONCURRENCY: 'TOLLGATE_BAN_CONCURRENCY',
  /**
   * The store no longer hears of bans lifted in other processes (a RedisStore's subscriber lost its
   * connection, or could not subscribe): until it is subscribed again, a ban known in this process
   * is trusted for `ban.recheck` at most. Logged again after each recovery.
   */
  BAN_PUSH_LOST: 'TOLLGATE_BAN_PUSH_LOST',
  /**
   * Usage: one tenant had more than `maxRoutes` distinct routes between two flushes, so some were
   * counted under `(other)`: most likely labels holding ids or raw URLs (a `route` function returning
   * the URL, an Express router mounted on a parameterised path). Return route templates.
   */
  USAGE_ROUTES: 'TOLLGATE_USAGE_ROUTES',
  /**
   * Usage: a request the limiter denied finished with no route matched, because the limiter runs
   * before routing (`app.use(limiter)`): its denials are all recorded as `(unmatched)`. Mount the
   * limiter on the routes, or give `createUsage({ route })`.
   */
  USAGE_UNROUTED_DENIAL: 'TOLLGATE_USAGE_UNROUTED_DENIAL',
  /**
   * An `allow` entry and a `deny` entry of one limiter share addresses: the deny list wins, so those
   * addresses are refused. Told at construction, naming the first such pair.
   */
  LIST_OVERLAP: 'TOLLGATE_LIST_OVERLAP',
  /**
   * A request from a private address (10/8, 172.16/12, 192.168/16, loopback, link-local, CGNAT,
   * fc00::/7) matched an `allow` or `deny` range while the app trusts no proxy: behind a proxy every
   * client arrives from the proxy's private address, so the list would match them all.
   */
  LIST_PRIVATE_ADDRESS: 'TOLLGATE_LIST_PRIVATE_ADDRESS',
  /**
   * A request held a slot of a concurrency policy until its lease ended, with no release: a limiter
   * used without `decision.release()` (outside the HTTP middleware), or requests slower than the
   * lease. Every such request keeps its slot for the whole lease.
   */
  LEASE_NOT_RELEASED: 'TOLLGATE_LEASE_NOT_RELEASED',
  /**
   * A `release()` came after its lease had ended: the slot had been freed while the request still
   * ran, so more than `limit` requests may have been in flight. Make `lease` longer than the
   * slowest request.
   */
  LEASE_EXPIRED: 'TOLLGATE_LEASE_EXPIRED',
} as const;

/** One of the codes in `WARNINGS`, the prefix of a warning's message. */
export type WarningCode = (typeof WARNINGS)[keyof typeof WARNINGS];

/** Logs each code at most once per `Warner`. */
export class Warner {
  private readonly seen = new Set<string>();

  constructor(readonly logger: Logger) {}

  warn(code: WarningCode, message: string): void {
    if (this.seen.has(code)) return;
    this.seen.add(code);
    this.logger.warn(`[${code}] ${message}`);
  }

  /** Lets `code` be logged again (after a store recovered, a new failure is news). */
  forget(code: WarningCode): void {
    this.seen.delete(code);
  }
}
