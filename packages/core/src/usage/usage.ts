import { randomUUID } from 'node:crypto';
import { checkFunction, checkOptions, durationOption } from '../check-options.js';
import { ConfigError, configError, describeValue } from '../errors.js';
import type { Clock, Duration, Logger } from '../types.js';
import { WARNINGS, Warner } from '../warnings.js';
import { MemoryUsageStore } from './memory-usage-store.js';
import {
  bucketStart,
  GRAINS,
  OTHER,
  PERIODS,
  UNMATCHED,
  USAGE_RESULTS,
  type UsageEntry,
  type UsagePeriod,
  type UsageResult,
  type UsageStore,
  usageLabel,
} from './model.js';
import { buildReport, periodStarts, type RouteUsage, type TenantUsage, type UsageReport } from './report.js';

/** Options of `createUsage()`. `Req` is the framework's request (Express `req`, Koa `ctx`). */
export interface UsageOptions<Req = unknown> {
  /**
   * Where buckets live: a `MemoryUsageStore` (this process only) or a `RedisUsageStore` from
   * `@tollgate/redis` (shared by every process).
   * @default a new MemoryUsageStore
   */
  store?: UsageStore;
  /**
   * The tenant a request is recorded under, from the request and the key the limiter counted it
   * under. Returning `undefined` or `''` records it under the key. Never return a secret: tenants
   * are stored and reported in clear (keys from `byApiKey()` are already digests).
   * @default (req, key) => key
   * @example (req) => req.user?.orgId
   */
  tenant?: (req: Req, key: string) => string | undefined;
  /**
   * The route a request is recorded under, read when its response has finished. Returning
   * `undefined` uses the framework's route template (Express `req.baseUrl` + `req.route.path`, Koa
   * `ctx.routerPath` from @koa/router) with the method, e.g. `'GET /users/:id'`, and
   * `'(unmatched)'` when no route matched. Return a template, never the raw URL.
   * @default the framework's route template
   */
  route?: (req: Req) => string | undefined;
  /**
   * Time source (ms since the epoch): buckets are UTC minutes, hours and days of it.
   * @default Date.now
   */
  clock?: Clock;
  /**
   * Tenants counted apart; requests of further tenants count under `(other)` until a tenant has
   * not been seen for 31 days.
   * @default 1000
   */
  maxTenants?: number;
  /**
   * Routes named per bucket (per tenant, and for all tenants); further routes in that bucket count
   * under `(other)`. Reports list at most this many routes too.
   * @default 50
   */
  maxRoutes?: number;
  /**
   * Counts are kept in this process and written to the store in one batch this often, and when a
   * new minute starts (one script call to Redis per batch, not one per request). Reports and
   * `close()` write what is pending first. Milliseconds or a duration string.
   * @default 1000
   */
  flushIntervalMs?: Duration;
  /**
   * Receives the usage warnings (`TOLLGATE_USAGE_*`, once each) and a message when a batch cannot
   * be written (it is kept and tried again).
   * @default console
   */
  logger?: Logger;
}

/** The `tenant` and `route` functions a usage was made with (undefined: the defaults). */
export interface UsageFunctions<Req> {
  readonly tenant: ((req: Req, key: string) => string | undefined) | undefined;
  readonly route: ((req: Req) => string | undefined) | undefined;
}

/** What to report: a period, and a tenant or (when absent) all tenants together. */
export interface UsageQuery {
  period: UsagePeriod;
  /** The tenant, as recorded. Absent: all tenants, with a per-tenant list. */
  tenant?: string | undefined;
}

/** One request to record by hand (for servers without an adapter); `rateLimit({ usage })` records for you. */
export interface UsageEvent {
  tenant: string;
  /** A route template; absent or empty: `(unmatched)`. */
  route?: string | undefined;
  result: UsageResult;
  /** When (ms), by the usage clock. @default now */
  at?: number;
}

/**
 * Records requests per tenant, route and result in minute, hour and day buckets, and reports them.
 * Made by `createUsage()`; pass it to `rateLimit({ usage })` and to `usageReport({ usage })`.
 *
 * Read API (for dashboards and your own endpoints):
 * - `report({ period, tenant? })`: totals, limited, by route, peak minute (and by tenant when no
 *   tenant is given), as the `usageReport()` handlers answer;
 * - `topRoutes({ period, tenant?, limit? })`: the busiest routes;
 * - `tenants({ period, limit? })`: the busiest tenants.
 * Each writes this process's pending counts first.
 */
export interface Usage<Req = unknown> {
  /** Counts one request. `rateLimit({ usage })` calls it when each response has finished. */
  record(event: UsageEvent): void;
  /** The period's report for `tenant`, or for all tenants together. */
  report(query: UsageQuery): Promise<UsageReport>;
  /** The period's busiest routes (of `tenant`, or of all tenants), at most `limit`. @default limit 10 */
  topRoutes(query: UsageQuery & { limit?: number }): Promise<RouteUsage[]>;
  /** The period's busiest tenants, at most `limit`. @default limit 10 */
  tenants(query: { period: UsagePeriod; limit?: number }): Promise<TenantUsage[]>;
  /** Writes the pending counts to the store now; rejects (keeping them) if the store fails. */
  flush(): Promise<void>;
  /**
   * Stops the timer and writes the pending counts; rejects if the store fails (they are kept: call
   * it again). Requests finishing later are not recorded: close after the server has stopped.
   */
  close(): Promise<void>;
  /** The store the buckets live in. */
  readonly store: UsageStore;
  /** Options `rateLimit()` reads: the request's tenant and route functions. */
  readonly options: UsageFunctions<Req>;
}

const OPTIONS = ['store', 'tenant', 'route', 'clock', 'maxTenants', 'maxRoutes', 'flushIntervalMs', 'logger'];
/**
 * Entries per store call: a batch larger than this goes in several calls, so that one call holds
 * Redis for a couple of milliseconds at most (BENCHMARKS.md, bench:usage) and the limiter's own
 * commands get in between.
 */
const CHUNK = 200;
/** Pending entries kept while the store refuses batches (see `add`). */
const MAX_PENDING = 100_000;

/**
 * Makes a usage recorder (see `Usage`): `rateLimit({ usage })` records each request when its
 * response has finished, `usageReport({ usage })` answers reports over HTTP.
 * @example const usage = createUsage({ store: new RedisUsageStore({ client }) })
 */
export function createUsage<Req = unknown>(options: UsageOptions<Req> = {}): Usage<Req> {
  checkOptions(options, OPTIONS, '`createUsage()` options');
  return new UsageRecorder<Req>(options);
}

/** The pending counts of one tenant in this process. */
interface PendingTenant {
  readonly routes: Set<string>;
  readonly entries: Map<string, UsageEntry>;
}

/** A batch that failed: tried again, as it is (same ids), before anything newer. */
interface Batch {
  readonly id: string;
  readonly entries: UsageEntry[];
}

export class UsageRecorder<Req> implements Usage<Req> {
  readonly store: UsageStore;
  readonly options: UsageFunctions<Req>;
  private readonly clock: Clock;
  private readonly maxTenants: number;
  private readonly maxRoutes: number;
  private readonly logger: Logger;
  /** Coded warnings, once per usage. */
  readonly warner: Warner;
  private pending = new Map<string, PendingTenant>();
  /** Entries in `pending`. */
  private entries = 0;
  private failed: Batch | undefined;
  /** The flush in progress: flushes run one after another. */
  private flushing: Promise<void> = Promise.resolve();
  private readonly timer: ReturnType<typeof setInterval>;
  private closed = false;
  private failing = false;
  /** The latest minute recorded. */
  private minute = Number.NEGATIVE_INFINITY;
  /** Marks requests this usage recorded (see rate-limit.ts): one record per request. */
  readonly mark = Symbol('tollgate.usage');

  constructor(options: UsageOptions<Req>) {
    const { store = new MemoryUsageStore(), clock = Date.now, logger = console } = options;
    if (
      typeof store !== 'object' ||
      store === null ||
      typeof store.add !== 'function' ||
      typeof store.read !== 'function'
    ) {
      throw configError(
        'store',
        'a usage store: `new MemoryUsageStore()` or `new RedisUsageStore({ client })`',
        store,
      );
    }
    if (typeof (store as { consume?: unknown }).consume === 'function') {
      throw new ConfigError(
        'Expected `store` of `createUsage()` to be a usage store, got a rate-limit store. Write `createUsage({ store: new RedisUsageStore({ client }) })` (or `new MemoryUsageStore()`).',
      );
    }
    checkFunction(options.tenant, 'tenant');
    checkFunction(options.route, 'route');
    if (typeof clock !== 'function') throw configError('clock', 'a function returning milliseconds', clock);
    this.maxTenants = positiveInteger(options.maxTenants, 'maxTenants', 1000);
    this.maxRoutes = positiveInteger(options.maxRoutes, 'maxRoutes', 50);
    const every = durationOption(options.flushIntervalMs, 'flushIntervalMs', 1000);
    this.store = store;
    this.clock = clock;
    this.logger = logger;
    this.warner = new Warner(logger);
    this.options = { tenant: options.tenant, route: options.route };
    this.timer = setInterval(() => void this.flush().catch(() => undefined), every);
    this.timer.unref?.();
  }

  /** The usage clock's time. */
  now(): number {
    return this.clock();
  }

  record(event: UsageEvent): void {
    if (this.closed) return;
    const { tenant, route, result, at = this.clock() } = event;
    if (typeof tenant !== 'string' || tenant === '') {
      throw configError('tenant', 'a non-empty string', tenant);
    }
    if (!USAGE_RESULTS.includes(result)) {
      throw configError('result', USAGE_RESULTS.map((r) => `'${r}'`).join(', '), result);
    }
    if (typeof at !== 'number' || !Number.isFinite(at)) throw configError('at', 'a time in ms', at);
    this.recordChecked(tenant, route, result, at);
  }

  /** `record` for callers whose values are already checked (the HTTP layer, per request). */
  recordChecked(tenant: string, route: string | undefined, result: UsageResult, at: number): void {
    if (this.closed) return;
    this.add(usageLabel(tenant), route ? usageLabel(route) : UNMATCHED, result, bucketStart('m', at));
  }

  /**
   * Adds to the pending counts. Bounded like the stores: at most `maxTenants` tenants and
   * `maxRoutes` routes per tenant per batch, further ones under `(other)`, so a flood of distinct
   * paths or keys between two flushes holds a bounded number of entries and loses no count.
   */
  private add(tenant: string, route: string, result: UsageResult, minute: number): void {
    // A new minute writes the last one's counts now: each minute bucket gets its counts while the
    // hour and day buckets can still take its peak, however far apart the timer's ticks fall.
    if (minute > this.minute) {
      if (this.pending.size > 0) void this.flush().catch(() => undefined);
      this.minute = minute;
    }
    let pending = this.pending.get(tenant);
    if (pending === undefined) {
      if (tenant !== OTHER && this.pending.size >= this.maxTenants) {
        this.add(OTHER, route, result, minute);
        return;
      }
      pending = { routes: new Set(), entries: new Map() };
      this.pending.set(tenant, pending);
    }
    let named = route;
    if (route !== OTHER && !pending.routes.has(route)) {
      if (pending.routes.size < this.maxRoutes) pending.routes.add(route);
      else {
        named = OTHER;
        this.warner.warn(
          WARNINGS.USAGE_ROUTES,
          `Usage: tenant ${JSON.stringify(tenant)} had more than ${this.maxRoutes} (maxRoutes) distinct routes between two flushes; the rest count under '(other)'. Route labels holding ids or raw URLs do this (a \`route\` function returning the URL, an Express router mounted on a parameterised path): return templates such as 'GET /users/:id'.`,
        );
      }
    }
    const id = `${minute}\t${result}\t${named}`;
    const entry = pending.entries.get(id);
    if (entry !== undefined) {
      entry.count++;
      return;
    }
    // While the store refuses batches, minutes pile up: past MAX_PENDING entries, new ones fold
    // into one `(other)` entry per minute and result, so memory stays bounded and counts stay.
    if (this.entries >= MAX_PENDING && (tenant !== OTHER || named !== OTHER)) {
      this.add(OTHER, OTHER, result, minute);
      return;
    }
    this.entries++;
    pending.entries.set(id, { tenant, route: named, result, minute, count: 1 });
  }

  flush(): Promise<void> {
    const next = this.flushing.then(() => this.write());
    this.flushing = next.catch(() => undefined);
    return next;
  }

  private async write(): Promise<void> {
    if (this.failed === undefined) {
      const entries: UsageEntry[] = [];
      for (const { entries: own } of this.pending.values())
        for (const entry of own.values()) entries.push(entry);
      this.pending = new Map();
      this.entries = 0;
      if (entries.length === 0) return;
      this.failed = { id: randomUUID(), entries };
    }
    const batch = this.failed;
    try {
      for (let i = 0; i < batch.entries.length; i += CHUNK) {
        await this.store.add(batch.entries.slice(i, i + CHUNK), {
          now: this.clock(),
          maxTenants: this.maxTenants,
          maxRoutes: this.maxRoutes,
          batch: `${batch.id}:${i / CHUNK}`,
        });
      }
    } catch (error) {
      this.dropStale();
      if (!this.failing) {
        this.failing = true;
        this.logger.error(
          `[tollgate] usage: a batch of ${batch.entries.length} counts could not be written (kept, tried again at the next flush): ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      throw error;
    }
    this.failing = false;
    this.failed = undefined;
    // What arrived meanwhile goes now rather than a flush interval later.
    if (this.pending.size > 0) await this.write();
  }

  /** A failed batch keeps only counts some bucket still takes (a day bucket's keep time). */
  private dropStale(): void {
    const batch = this.failed;
    if (batch === undefined) return;
    const cutoff = this.clock() - GRAINS.d.keep;
    const kept = batch.entries.filter((entry) => entry.minute > cutoff);
    if (kept.length < batch.entries.length) {
      this.logger.error(
        `[tollgate] usage: ${batch.entries.length - kept.length} counts older than 31 days could not be written and were dropped.`,
      );
      this.failed = { id: randomUUID(), entries: kept };
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.flush();
  }

  async report(query: UsageQuery): Promise<UsageReport> {
    const { period, tenant } = this.checkQuery(query);
    await this.flush();
    const now = this.clock();
    const { grain, starts } = periodStarts(period, now);
    const buckets = await this.store.read(tenant, grain, starts, now);
    return buildReport(period, tenant, now, grain, starts, buckets, this.maxRoutes);
  }

  async topRoutes(query: UsageQuery & { limit?: number }): Promise<RouteUsage[]> {
    const limit = positiveInteger(query.limit, 'limit', 10);
    return (await this.report(query)).routes.slice(0, limit);
  }

  async tenants(query: { period: UsagePeriod; limit?: number }): Promise<TenantUsage[]> {
    const limit = positiveInteger(query.limit, 'limit', 10);
    return ((await this.report({ period: query.period })).tenants ?? []).slice(0, limit);
  }

  private checkQuery(query: UsageQuery): { period: UsagePeriod; tenant: string | undefined } {
    if (typeof query !== 'object' || query === null)
      throw configError('query', '`{ period, tenant? }`', query);
    const { period, tenant } = query;
    if (typeof period !== 'string' || !(period in PERIODS)) {
      throw configError('period', "'hour', 'day', 'week' or 'month'", period);
    }
    if (tenant !== undefined && (typeof tenant !== 'string' || tenant === '')) {
      throw configError('tenant', 'a non-empty string or undefined (all tenants)', tenant);
    }
    return { period: period as UsagePeriod, tenant: tenant === undefined ? undefined : usageLabel(tenant) };
  }
}

function positiveInteger(value: unknown, option: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value;
  throw new ConfigError(`Expected \`${option}\` to be a positive integer, got ${describeValue(value)}.`);
}

/** Whether `value` is a usage made by `createUsage()`. */
export const isUsageRecorder = (value: unknown): value is UsageRecorder<unknown> =>
  value instanceof UsageRecorder;
