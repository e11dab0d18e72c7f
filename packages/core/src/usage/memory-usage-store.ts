import {
  bucketStart,
  FIELDS,
  GRAINS,
  type Grain,
  OTHER,
  type UsageAddContext,
  type UsageEntry,
  type UsageStore,
} from './model.js';

type Fields = Map<string, number>;

/** The buckets of one grain and start: per tenant (`t:<tenant>`) and for all tenants (`*`). */
interface Group {
  readonly expiresAt: number;
  readonly scopes: Map<string, Fields>;
}

const SCOPE_ALL = '*';
const scopeOf = (tenant: string | undefined) => (tenant === undefined ? SCOPE_ALL : `t:${tenant}`);
const ORDER: readonly Grain[] = ['m', 'h', 'd'];
const EMPTY: ReadonlyMap<string, number> = new Map();

/**
 * Usage buckets in this process (the default store of `createUsage()`). Bounded: at most
 * `maxTenants` tenants (plus `(other)`) and `maxRoutes` routes per bucket (plus `(other)`); a
 * bucket is dropped once its keep time has passed (2 hours for minutes, 26 hours for hours, 31
 * days for days), checked on every batch, so nothing needs a timer.
 */
export class MemoryUsageStore implements UsageStore {
  private readonly groups = new Map<string, Group>();
  /** Tenant -> the last minute it was seen: the tenants that count against `maxTenants`. */
  private readonly registry = new Map<string, number>();

  add(entries: readonly UsageEntry[], context: UsageAddContext): void {
    const { now } = context;
    this.expire(now);
    for (const entry of entries) {
      const tenant = this.admit(entry.tenant, entry.minute, context.maxTenants);
      let tenantMinute: number | undefined;
      let allMinute: number | undefined;
      for (const grain of ORDER) {
        const start = bucketStart(grain, entry.minute);
        const group = this.group(grain, start, now);
        if (group === undefined) continue;
        const own = addTo(group, scopeOf(tenant), entry, context.maxRoutes, undefined);
        const all = addTo(group, SCOPE_ALL, entry, context.maxRoutes, tenant);
        if (grain === 'm') {
          tenantMinute = own.get(FIELDS.all);
          allMinute = all.get(FIELDS.all);
        } else {
          raisePeak(own, tenantMinute, entry.minute);
          raisePeak(all, allMinute, entry.minute);
        }
      }
    }
  }

  read(tenant: string | undefined, grain: Grain, starts: readonly number[], now: number) {
    const scope = scopeOf(tenant);
    return starts.map((start) => {
      const group = this.groups.get(`${grain}:${start}`);
      return group === undefined || group.expiresAt <= now ? EMPTY : (group.scopes.get(scope) ?? EMPTY);
    });
  }

  /** What the store holds: tenants counting against `maxTenants`, buckets, and fields in them. */
  stats(): { tenants: number; buckets: number; fields: number } {
    let buckets = 0;
    let fields = 0;
    for (const group of this.groups.values()) {
      buckets += group.scopes.size;
      for (const bucket of group.scopes.values()) fields += bucket.size;
    }
    return { tenants: this.registry.size, buckets, fields };
  }

  /** The tenant as counted: itself if known or if there is room, else `(other)`. */
  private admit(tenant: string, minute: number, maxTenants: number): string {
    if (tenant === OTHER) return tenant;
    const seen = this.registry.get(tenant);
    if (seen === undefined && this.registry.size >= maxTenants) return OTHER;
    if (seen === undefined || seen < minute) this.registry.set(tenant, minute);
    return tenant;
  }

  /** The bucket group, made if needed; undefined when its keep time has passed. */
  private group(grain: Grain, start: number, now: number): Group | undefined {
    const expiresAt = start + GRAINS[grain].keep;
    if (expiresAt <= now) return undefined;
    const name = `${grain}:${start}`;
    let group = this.groups.get(name);
    if (group === undefined) {
      group = { expiresAt, scopes: new Map() };
      this.groups.set(name, group);
    }
    return group;
  }

  /** Drops buckets past their keep time, and tenants not seen for longer than a day bucket is kept. */
  private expire(now: number): void {
    for (const [name, group] of this.groups) if (group.expiresAt <= now) this.groups.delete(name);
    const cutoff = now - GRAINS.d.keep;
    for (const [tenant, seen] of this.registry) if (seen < cutoff) this.registry.delete(tenant);
  }
}

/**
 * Adds one entry to one bucket: the route as itself while the bucket names fewer than `maxRoutes`
 * routes (or already names it), else as `(other)`. `tenant`: in an all-tenants bucket, the tenant's
 * own counts. Returns the bucket's fields.
 */
function addTo(
  group: Group,
  scope: string,
  entry: UsageEntry,
  maxRoutes: number,
  tenant: string | undefined,
): Fields {
  let bucket = group.scopes.get(scope);
  if (bucket === undefined) {
    bucket = new Map();
    group.scopes.set(scope, bucket);
  }
  let { route } = entry;
  if (route !== OTHER && !bucket.has(FIELDS.route + route)) {
    const named = bucket.get(FIELDS.routes) ?? 0;
    if (named >= maxRoutes) route = OTHER;
    else bucket.set(FIELDS.routes, named + 1);
  }
  const { count, result } = entry;
  increment(bucket, FIELDS.route + route, count);
  increment(bucket, `${FIELDS.count}${result}\t${route}`, count);
  if (tenant !== undefined) increment(bucket, `${FIELDS.tenant}${result}\t${tenant}`, count);
  increment(bucket, FIELDS.all, count);
  return bucket;
}

function increment(bucket: Fields, field: string, by: number): void {
  bucket.set(field, (bucket.get(field) ?? 0) + by);
}

/** An hour or day bucket's busiest minute: the most requests, the earliest minute on a tie. */
function raisePeak(bucket: Fields, requests: number | undefined, minute: number): void {
  if (requests === undefined) return;
  const peak = bucket.get(FIELDS.peak) ?? 0;
  if (requests > peak || (requests === peak && minute < (bucket.get(FIELDS.peakMinute) ?? 0))) {
    bucket.set(FIELDS.peak, requests);
    bucket.set(FIELDS.peakMinute, minute);
  }
}
