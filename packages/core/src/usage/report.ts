import {
  FIELDS,
  GRAINS,
  type Grain,
  OTHER,
  PERIODS,
  USAGE_RESULTS,
  type UsagePeriod,
  type UsageResult,
} from './model.js';

/** Requests counted, how many were limited, and every result's count (results with none left out). */
export interface UsageCounts {
  requests: number;
  /** Requests denied by a limit (`results.limited`): the 429s. */
  limited: number;
  results: Partial<Record<UsageResult, number>>;
}

/** One route's share of a report. */
export interface RouteUsage extends UsageCounts {
  /** `'GET /users/:id'`, `'(unmatched)'`, or `'(other)'` for routes past the cap. */
  route: string;
}

/** One tenant's share of an all-tenants report. */
export interface TenantUsage extends UsageCounts {
  /** The tenant as recorded (the rate-limit key by default: `ip:…`, `key:<digest>`), or `'(other)'`. */
  tenant: string;
}

/**
 * A usage report (the JSON the `usageReport()` handlers answer). Periods are rolling and made of
 * whole UTC buckets: `hour` is the current minute and the 59 before it, `day` the current hour and
 * the 23 before, `week` and `month` the current day and the 6 or 29 before; `from` is the first
 * bucket's start, `to` the time of the report.
 */
export interface UsageReport extends UsageCounts {
  period: UsagePeriod;
  /** The tenant reported, or `null` for all tenants together. */
  tenant: string | null;
  /** ISO 8601 (UTC). */
  from: string;
  to: string;
  /** The bucket size the period is read in. */
  granularity: 'minute' | 'hour' | 'day';
  /** Busiest first (then by name); at most `maxRoutes` named, the rest folded into `(other)`, listed last. */
  routes: RouteUsage[];
  /** The minute with the most requests in the period (the earliest on a tie); `null` with none. */
  peak: { minute: string; requests: number } | null;
  /** All-tenants reports only: each tenant's counts, busiest first (`(other)` last). */
  tenants?: TenantUsage[];
}

const GRANULARITY = { m: 'minute', h: 'hour', d: 'day' } as const;

/** The starts of the buckets a period reads at time `now`, oldest first. */
export function periodStarts(period: UsagePeriod, now: number): { grain: Grain; starts: number[] } {
  const { grain, buckets } = PERIODS[period];
  const { length } = GRAINS[grain];
  const last = Math.floor(now / length) * length;
  const starts: number[] = [];
  for (let i = buckets - 1; i >= 0; i--) starts.push(last - i * length);
  return { grain, starts };
}

/** Sums a period's buckets into a report. */
export function buildReport(
  period: UsagePeriod,
  tenant: string | undefined,
  now: number,
  grain: Grain,
  starts: readonly number[],
  buckets: readonly ReadonlyMap<string, number>[],
  maxRoutes: number,
): UsageReport {
  const routes = new Tally();
  const tenants = new Tally();
  let peak: { at: number; requests: number } | undefined;
  buckets.forEach((bucket, i) => {
    for (const [field, value] of bucket) {
      if (field.startsWith(FIELDS.count)) routes.add(field, value);
      else if (field.startsWith(FIELDS.tenant)) tenants.add(field, value);
    }
    // A minute bucket is its own peak; hour and day buckets keep their busiest minute.
    const requests = bucket.get(grain === 'm' ? FIELDS.all : FIELDS.peak) ?? 0;
    const at = grain === 'm' ? starts[i]! : (bucket.get(FIELDS.peakMinute) ?? 0);
    if (
      requests > 0 &&
      (peak === undefined || requests > peak.requests || (requests === peak.requests && at < peak.at))
    ) {
      peak = { at, requests };
    }
  });
  const total = routes.total();
  const report: UsageReport = {
    period,
    tenant: tenant ?? null,
    from: new Date(starts[0]!).toISOString(),
    to: new Date(now).toISOString(),
    granularity: GRANULARITY[grain],
    ...total,
    routes: routes.list(maxRoutes).map(([route, counts]) => ({ route, ...counts })),
    peak: peak === undefined ? null : { minute: new Date(peak.at).toISOString(), requests: peak.requests },
  };
  if (tenant === undefined) {
    report.tenants = tenants
      .list(Number.POSITIVE_INFINITY)
      .map(([name, counts]) => ({ tenant: name, ...counts }));
  }
  return report;
}

/** Counts by name and result, from `<kind><TAB>result<TAB>name` fields. */
class Tally {
  private readonly byName = new Map<string, UsageCounts>();

  add(field: string, value: number): void {
    const tab = field.indexOf('\t', 2);
    const result = field.slice(2, tab) as UsageResult;
    const name = field.slice(tab + 1);
    let counts = this.byName.get(name);
    if (counts === undefined) {
      counts = { requests: 0, limited: 0, results: {} };
      this.byName.set(name, counts);
    }
    addCounts(counts, result, value);
  }

  total(): UsageCounts {
    const total: UsageCounts = { requests: 0, limited: 0, results: {} };
    for (const counts of this.byName.values()) {
      for (const result of USAGE_RESULTS) {
        const n = counts.results[result];
        if (n !== undefined) addCounts(total, result, n);
      }
    }
    return sortedResults(total);
  }

  /** Busiest first, then by name; past `max` names, the rest folded into `(other)`. */
  list(max: number): [string, UsageCounts][] {
    const entries = [...this.byName].sort(
      ([a, x], [b, y]) => y.requests - x.requests || (a < b ? -1 : a > b ? 1 : 0),
    );
    const named = entries.filter(([name]) => name !== OTHER);
    const other = entries.find(([name]) => name === OTHER)?.[1] ?? { requests: 0, limited: 0, results: {} };
    for (const [, counts] of named.splice(max)) {
      for (const result of USAGE_RESULTS) {
        const n = counts.results[result];
        if (n !== undefined) addCounts(other, result, n);
      }
    }
    const list = named.map(([name, counts]): [string, UsageCounts] => [name, sortedResults(counts)]);
    if (other.requests > 0) list.push([OTHER, sortedResults(other)]);
    return list;
  }
}

function addCounts(counts: UsageCounts, result: UsageResult, n: number): void {
  counts.requests += n;
  if (result === 'limited') counts.limited += n;
  counts.results[result] = (counts.results[result] ?? 0) + n;
}

/** The same counts with `results` in the order of `USAGE_RESULTS` (stable JSON). */
function sortedResults(counts: UsageCounts): UsageCounts {
  const results: UsageCounts['results'] = {};
  for (const result of USAGE_RESULTS) {
    const n = counts.results[result];
    if (n !== undefined) results[result] = n;
  }
  return { requests: counts.requests, limited: counts.limited, results };
}
