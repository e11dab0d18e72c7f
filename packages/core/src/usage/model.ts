import type { DecisionResult } from '../events.js';
import { keyDigest } from '../key-digest.js';

/**
 * What became of a recorded request: the `result` of the `tollgate:decision` event (`decisionResult`
 * in events.ts), so usage and metrics count the same things.
 */
export type UsageResult = DecisionResult;

/** Every `UsageResult`, in the order reports list them. */
export const USAGE_RESULTS: readonly UsageResult[] = [
  'allowed',
  'limited',
  'shadow_limited',
  'banned',
  'store_error',
  'fallback',
];

/**
 * A report's period: the last 60 minutes, 24 hours, 7 days or 30 days, each made of whole UTC
 * buckets (minutes, hours, days) ending with the current one (see `PERIODS`).
 */
export type UsagePeriod = 'hour' | 'day' | 'week' | 'month';

/** A bucket size: minute, hour, day. */
export type Grain = 'm' | 'h' | 'd';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/**
 * Each bucket size's length and how long a bucket is kept after it starts: longer than any report
 * reads it (60 minutes, 24 hours, 30 days), so that counts flushed late still find their bucket.
 */
export const GRAINS: Readonly<Record<Grain, { readonly length: number; readonly keep: number }>> = {
  m: { length: MINUTE, keep: 2 * HOUR },
  h: { length: HOUR, keep: 26 * HOUR },
  d: { length: DAY, keep: 31 * DAY },
};

/** Which buckets a period reads: the current one and the `buckets - 1` before it. */
export const PERIODS: Readonly<Record<UsagePeriod, { readonly grain: Grain; readonly buckets: number }>> = {
  hour: { grain: 'm', buckets: 60 },
  day: { grain: 'h', buckets: 24 },
  week: { grain: 'd', buckets: 7 },
  month: { grain: 'd', buckets: 30 },
};

/** The route label of a request no route matched (a 404, or one answered before routing). */
export const UNMATCHED = '(unmatched)';
/** Where counts go past a cap: routes past `maxRoutes` in a bucket, tenants past `maxTenants`. */
export const OTHER = '(other)';

/** One line of a batch: `count` requests of `tenant` on `route` with `result`, in the minute starting at `minute`. */
export interface UsageEntry {
  tenant: string;
  route: string;
  result: UsageResult;
  /** The minute's start, ms since the epoch (a multiple of 60 000). */
  minute: number;
  count: number;
}

/** What a store needs besides the entries to add them. */
export interface UsageAddContext {
  /** The usage clock's time: buckets past their keep time take nothing. */
  readonly now: number;
  readonly maxTenants: number;
  readonly maxRoutes: number;
  /** Identifies the batch: a store that may see it twice (a resend after a timeout) adds it once. */
  readonly batch: string;
}

/**
 * Where usage buckets live: `MemoryUsageStore` in core, `RedisUsageStore` in `@tollgate/redis`.
 * Both hold the same fields per bucket (see `FIELDS`) and apply entries by the same rules, which
 * the usage conformance suite checks.
 */
export interface UsageStore {
  /** Adds a batch: atomically per batch where the store can, exactly once per `context.batch`. */
  add(entries: readonly UsageEntry[], context: UsageAddContext): Promise<void> | void;
  /**
   * The fields of the buckets of `grain` starting at each of `starts` for `tenant`, or for all
   * tenants together when `tenant` is undefined; an empty map for a bucket that holds nothing.
   */
  read(
    tenant: string | undefined,
    grain: Grain,
    starts: readonly number[],
    now: number,
  ): Promise<ReadonlyMap<string, number>[]> | ReadonlyMap<string, number>[];
}

/**
 * The fields of one bucket, the same in every store (Redis hash fields). Tabs separate the parts:
 * labels never hold one (see `usageLabel`).
 */
export const FIELDS = {
  /** Requests in the bucket. */
  all: 'a',
  /** How many routes the bucket names (at most `maxRoutes`; `(other)` is not counted). */
  routes: 'nr',
  /** Hour and day buckets: the busiest minute's requests, and that minute's start (ms). */
  peak: 'pk',
  peakMinute: 'pm',
  /** `r<TAB>route`: the route's requests; present iff the bucket names the route. */
  route: 'r\t',
  /** `q<TAB>result<TAB>route`: the route's requests with that result. */
  count: 'q\t',
  /** All-tenants buckets: `t<TAB>result<TAB>tenant`, the tenant's requests with that result. */
  tenant: 't\t',
} as const;

/** A bucket's name in a store (after the store's prefix): grain, start, then `*` or `t:<tenant>`. */
export function bucketName(grain: Grain, start: number, tenant: string | undefined): string {
  return `${grain}:${start}:${tenant === undefined ? '*' : `t:${tenant}`}`;
}

/** The start of the bucket of `grain` holding time `at` (UTC). */
export const bucketStart = (grain: Grain, at: number): number => {
  const { length } = GRAINS[grain];
  return Math.floor(at / length) * length;
};

const MAX_LABEL = 200;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds.
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * A tenant or route as stored: itself when it is at most 200 characters without control
 * characters (the fields use tabs as separators), else `sha256:` and its digest, so that a strange
 * or huge value takes bounded room and still counts apart from others.
 */
export function usageLabel(value: string): string {
  return value.length <= MAX_LABEL && !CONTROL.test(value) ? value : `sha256:${keyDigest(value)}`;
}

/** Of two results for one request (two limiters sharing a usage), the one a report should show. */
export function worseResult(a: UsageResult, b: UsageResult): UsageResult {
  return SEVERITY[b] > SEVERITY[a] ? b : a;
}

const SEVERITY: Record<UsageResult, number> = {
  allowed: 0,
  shadow_limited: 1,
  fallback: 2,
  store_error: 3,
  limited: 4,
  banned: 5,
};
