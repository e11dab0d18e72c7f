import type { AlgorithmName } from './algorithms/registry.js';

/**
 * An algorithm's name: 'fixed-window' | 'sliding-window' | 'token-bucket' | 'leaky-bucket' |
 * 'concurrency' (one per folder of ./algorithms). See DESIGN.md and docs/algorithms.md for the exact arithmetic.
 */
export type Algorithm = AlgorithmName;
/** The algorithms that count units per window: every one but 'concurrency'. */
export type RateAlgorithm = Exclude<Algorithm, 'concurrency'>;

/** The units a duration string may end with: milliseconds, seconds, minutes, hours, days. */
export type DurationUnit = 'ms' | 's' | 'm' | 'h' | 'd';
/**
 * A whole number and a unit, nothing else: `'500ms'`, `'10s'`, `'1m'`, `'1h'`, `'1d'`. The type
 * rejects `'1 minute'`, `'2 m'`, `' 1h'` and `'1.5s'` at compile time (`${bigint}` admits digits
 * only, unlike `${number}`, which admits spaces and exponents); a negative amount passes the type
 * and is refused when the policy is validated.
 */
export type DurationString = `${bigint}${DurationUnit}`;
/** A window: milliseconds as a number, or a {@link DurationString}. */
export type Duration = number | DurationString;

/** The periods a calendar window can have: a clock hour, a day, a week or a month. */
export type CalendarUnit = 'hour' | 'day' | 'week' | 'month';

/**
 * A fixed-window policy's `window` as a calendar period (a quota): the hour, day, week or month that
 * holds the request, as the clocks of `timeZone` count it, so a monthly quota resets at midnight on
 * the first (or on `startDay`) whatever the month's length or a daylight-saving change. The period
 * follows the store's clock (Redis `TIME` on a RedisStore).
 * @example { calendar: 'month' }
 * @example { calendar: 'month', startDay: 15, timeZone: 'America/New_York' }
 */
export interface CalendarWindow {
  calendar: CalendarUnit;
  /**
   * An IANA time zone (`'Europe/Berlin'`) whose midnights and hours bound the periods: one per
   * policy, the business's zone, not each user's.
   * @default 'UTC'
   */
  timeZone?: string;
  /**
   * `month`: the day of the month a period starts on, 1-28 (a billing day). `week`: the weekday a
   * period starts on, 1 (Monday, ISO 8601) to 7 (Sunday). Not allowed for `hour` and `day`.
   * @default 1
   */
  startDay?: number;
}

/** A validated calendar window: its unit, zone and start day, and the period holding an instant. */
export interface ResolvedCalendar {
  readonly unit: CalendarUnit;
  /** The canonical IANA name (`'us/eastern'` -> `'America/New_York'`). */
  readonly timeZone: string;
  readonly startDay: number;
  /** The period holding `t` (ms): `start <= t < end`. */
  periodAt(t: number): { readonly start: number; readonly end: number };
}

/**
 * A policy as users write it: a rate (units per window) or a cap on requests in flight. Several
 * policies of either kind apply to one request all or nothing.
 */
export type Policy = RatePolicy | ConcurrencyPolicy;

/** A rate-limit policy: `limit` units per `window`. */
export interface RatePolicy {
  /**
   * Shown in `RateLimit-Policy` and in the 429 body's `violated-policies`. Must be unique within
   * one limiter; letters, digits, `.`, `_`, `-`, `/`, `:` only.
   * @default `${limit}-per-${window}`, e.g. `'10-per-1s'`
   */
  name?: string;
  /** @default 'sliding-window' */
  algorithm?: RateAlgorithm;
  /** Requests (cost units) allowed per `window`; for the buckets, the refill / drain rate. */
  limit: number;
  /**
   * Window length, or for the buckets the period over which `limit` units refill / drain. A
   * fixed-window policy also takes a calendar period (`{ calendar: 'month' }`, see CalendarWindow).
   */
  window: Duration | CalendarWindow;
  /**
   * Bucket capacity (token-bucket and leaky-bucket only).
   * @default limit
   */
  burst?: number;
  /**
   * leaky-bucket only: hold admitted requests for their place in the queue (`true`), or let them
   * through at once while still counting them (`false`, nginx `nodelay`).
   * @default true
   */
  delay?: boolean;
  /**
   * `'shadow'`: counted exactly as if enforced, but never denies. A request it would have denied
   * goes through and lists its name in the Decision's `shadowLimited`; the enforced policies beside
   * it decide as if it were absent. For trying a new limit on real traffic before it bites (see the
   * README's rollout recipe); flipping it to `'enforce'` keeps its counters.
   * @default 'enforce'
   */
  mode?: PolicyMode;
  /**
   * Reservations (`limiter.reserve`): how many units over its capacity (`limit`, or `burst` for the
   * buckets) a settle may take this policy when a call cost more than its estimate. A key in debt is
   * denied until the debt has drained; what a settle could not charge within this bound is not
   * counted (the Decision's `uncharged` says how much). Never part of the state's identity: changing
   * it keeps the counters.
   * @default the capacity (a key owes at most one more full window or bucket), bounded so that
   *   (capacity + maxDebt) x window stays a safe integer
   */
  maxDebt?: number;
  /** Only concurrency policies have a lease. */
  lease?: never;
}

/**
 * A cap on requests in flight: at most `limit` at any instant, across every process sharing the
 * store. An admitted request holds a slot until it is released (`decision.release()`; the HTTP
 * middleware releases on response close) or its `lease` ends, so that a crashed process frees its
 * slots within `lease`. A request takes one slot whatever its cost; a cost of 0 takes none.
 */
export interface ConcurrencyPolicy {
  /**
   * As for a rate policy.
   * @default `${limit}-in-flight`, e.g. `'10-in-flight'`
   */
  name?: string;
  algorithm: 'concurrency';
  /** Requests in flight at once. */
  limit: number;
  /**
   * The longest a request holds its slot without a release: longer than the slowest request, short
   * enough that the slots of a crashed process come back soon. Milliseconds or a duration string.
   * @example '30s'
   */
  lease: Duration;
  window?: never;
  burst?: never;
  delay?: never;
  maxDebt?: never;
  /** A concurrency policy is always enforced (a shadow one is not supported). */
  mode?: 'enforce';
}

/** Whether a policy denies (`'enforce'`) or only reports what it would have denied (`'shadow'`). */
export type PolicyMode = 'enforce' | 'shadow';

/** A validated policy with every default filled in. */
export interface ResolvedPolicy {
  readonly name: string;
  readonly algorithm: Algorithm;
  readonly limit: number;
  /**
   * Window in milliseconds. For a calendar window, its unit's nominal length (1h, 1d, 7d, and 31d
   * for a month); the period in force, which varies, is `calendar.periodAt(now)`. A concurrency
   * policy's lease.
   */
  readonly window: number;
  /** Set when the window is a calendar period (fixed-window only). */
  readonly calendar?: ResolvedCalendar | undefined;
  /** Bucket capacity; equals `limit` for the window algorithms. */
  readonly burst: number;
  /** leaky-bucket: whether admitted requests are held; `false` elsewhere. */
  readonly delay: boolean;
  /** `'shadow'` never denies (see `Policy.mode`). */
  readonly mode: PolicyMode;
  /** Units over its capacity a settle may take this policy (see Policy.maxDebt). */
  readonly maxDebt: number;
  /**
   * Identifies algorithm and parameters; two policies with equal `id` share state safely. The mode
   * is not part of it: a shadow policy flipped to enforce keeps its counters.
   */
  readonly id: string;
}

/**
 * The policies one request is checked against, validated once and reused. Stores receive it and
 * may cache per-set data on it (it is frozen, so use a WeakMap).
 */
export interface PolicySet {
  /** Separates counters of limiters sharing one store (the limiter's `name`). */
  readonly namespace: string;
  readonly policies: readonly ResolvedPolicy[];
  /** `namespace` plus every policy `id` (and `|ban` with bans): stable across processes, safe in a Redis key. */
  readonly id: string;
  /**
   * The limiter's bans, when it has them: stores keep a ban slot after the policies' states and run
   * it in the same atomic call as the counts (see ./ban/kernel.ts).
   */
  readonly ban?: ResolvedBan;
  /** The index of the policy that holds requests in flight (concurrency), or -1: at most one has. */
  readonly holder: number;
}

/** The `ban` option of `createLimiter()` and `rateLimit()`. */
export interface BanOptions {
  /**
   * Denials that ban a key: the `after`-th denial within `within` starts a ban of `for`. Leave
   * `after`, `within` and `for` out together (`ban: {}`) for bans made by `limiter.ban()` only.
   */
  after?: number;
  /** The span in which `after` denials must fall, counted from the first of them. */
  within?: Duration;
  /** How long the first ban lasts. */
  for?: Duration;
  /**
   * Each repeat offence multiplies the ban by `factor` (default 2), up to `max`. The offence count
   * is remembered until `max` has passed since the last ban ended; without `escalate` every ban
   * lasts `for`.
   */
  escalate?: { factor?: number; max: Duration };
  /**
   * How long a process trusts a ban it knows while its store cannot tell it of lifted bans: within
   * this time it refuses the key without asking the store; after it, the next request asks once
   * more, so an `unban` in another process reaches this one within `recheck`. A store that tells
   * (`Store.onLift`: the RedisStore, through Redis pub/sub) makes `recheck` moot while it listens:
   * a known ban is then trusted until it ends, and an `unban` or `reset` anywhere drops it here at
   * once. `recheck` applies to other remote stores, and to a RedisStore while its subscriber is not
   * subscribed (connecting, reconnecting, failed). `false`: trust a known ban until it ends even
   * then (an `unban` elsewhere is seen only when it ends, unless the store tells).
   * @default '1s'
   */
  recheck?: Duration | false;
}

/** A validated `ban` (the part stores read): every duration in ms. */
export interface ResolvedBan {
  /** 0: no automatic bans (only `limiter.ban()`). */
  readonly after: number;
  readonly within: number;
  readonly for: number;
  /** 1 without `escalate`. */
  readonly factor: number;
  /** The longest ban; `for` without `escalate`. */
  readonly max: number;
  /** How long the offence count outlives a ban: `max` with `escalate`, else 0. */
  readonly memory: number;
}

/** What one policy says about one request. */
export interface Outcome {
  allowed: boolean;
  /** Units still available after this request (integer >= 0). */
  remaining: number;
  /** Milliseconds until the policy is back to its full quota (integer >= 0). */
  resetMs: number;
  /** 0 when allowed; else the tight wait before the same request is allowed; may be Infinity. */
  retryAfterMs: number;
  /** leaky-bucket with `delay`: how long to hold the admitted request; else 0. */
  delayMs: number;
  /**
   * The length of the window this outcome speaks of when the policy's `window` does not tell it:
   * the calendar period in force (an hour, a day of 23, 24 or 25 hours, a month). Absent otherwise.
   */
  windowMs?: number | undefined;
}

/** One policy's state in a decision, for multi-policy headers. */
export interface PolicyStatus extends Outcome {
  readonly name: string;
  /** Capacity shown as the limit: `limit` for windows, `burst` for buckets. */
  readonly limit: number;
  readonly policy: ResolvedPolicy;
  /**
   * On the Decision a reservation's `settle` answers: units of the settle this policy did not count
   * because they would have taken it more than `maxDebt` over its capacity. Absent when all counted.
   */
  uncharged?: number;
}

/**
 * Why a decision did not come from the store in the normal way, or why it was refused beyond the
 * policies (`'banned'`: the key is banned, see `LimiterOptions.ban`). `'allowed'`: the request
 * matched `rateLimit()`'s `allow` list, so it was not counted (see the README's allow and deny lists).
 */
export type DecisionReason = 'store-error' | 'blocked-cache' | 'fallback' | 'skipped' | 'banned' | 'allowed';

/** The answer for one request: allowed or not, what is left, and when to retry. */
export interface Decision {
  allowed: boolean;
  key: string;
  /** The binding policy's limit (see PolicyStatus.limit). */
  limit: number;
  remaining: number;
  resetMs: number;
  /** 0 when allowed; Infinity when the cost can never fit. */
  retryAfterMs: number;
  delayMs: number;
  /**
   * The binding policy: the one that denied (the longest wait), else the one with least remaining.
   * Only enforced policies bind; when every policy is a shadow one, the shadow policy with least
   * remaining (the decision is then always allowed).
   */
  policy: ResolvedPolicy;
  /** Every policy's state, shadow ones included (their `allowed` says what they would have decided). */
  policies: PolicyStatus[];
  reason?: DecisionReason;
  /**
   * Names of the shadow policies (`mode: 'shadow'`) that would have denied this request, in policy
   * order; absent when none would. Set whether or not the enforced policies allowed the request.
   */
  shadowLimited?: string[];
  /**
   * When a store counted this request: its time then, in ms (Redis `TIME` on a RedisStore). Pass it
   * to `limiter.refund(key, cost, { countedAt })` so that the units go back to the window that
   * counted them and never free quota in a later one. Absent when nothing was counted (a denial,
   * a fail-open decision).
   */
  countedAt?: number;
  /**
   * Present when the request holds a slot of a concurrency policy: frees it. Call it once the work
   * is done (the HTTP middleware calls it when the response closes); until then, or until the
   * policy's `lease` ends, the slot stays taken. Safe to call more than once; never rejects (a
   * store failure is logged, and the slot then ends with its lease).
   */
  release?(): Promise<void>;
}

/** What a store's `consume` tells besides the outcomes. */
export interface ConsumeInfo {
  /** The store's time (ms) at which it decided: when the request was counted, if it was allowed. */
  countedAt?: number | undefined;
  /** The limiter bans (`set.ban`): the ms of ban left when the key is banned; 0 or absent when not. */
  banLeftMs?: number | undefined;
  /** Set when this very request started the ban (its `after`-th denial): the offence, from 1. */
  banOffence?: number | undefined;
  /**
   * Set by the store when the request took a slot of the set's concurrency policy: the lease's id,
   * to pass to `release`.
   */
  lease?: string | undefined;
}

/** What a store's `settle` answers. */
export interface Settlement {
  /** As `peek` answers after the change: what a cost-1 request would get now. */
  outcomes: Outcome[];
  /** Per policy, the units of a positive `delta` it did not count (its `maxDebt` stopped them); else 0. */
  uncharged: number[];
}

/**
 * A store keeps policy state and applies a request to every policy of a set atomically: when any
 * enforced policy denies, no policy consumes; a shadow policy (`mode: 'shadow'`) that denies
 * consumes nothing itself but never stops the others. Results come back in the order of
 * `set.policies`.
 */
export interface Store {
  /** `info`, when given, receives the store's time of the decision (see ConsumeInfo). */
  consume(key: string, set: PolicySet, cost: number, info?: ConsumeInfo): Promise<Outcome[]>;
  /** The state as a cost-1 request would see it, consuming nothing (`info`: the ban, see ConsumeInfo). */
  peek(key: string, set: PolicySet, info?: ConsumeInfo): Promise<Outcome[]>;
  /**
   * Gives back up to `cost` units to every policy; never below zero, never revives an expired
   * window. `countedAt` (from `ConsumeInfo`): give them to the state that counted them, not to a
   * window opened since; without it, to the state as it is now.
   */
  refund(key: string, set: PolicySet, cost: number, countedAt?: number): Promise<void>;
  /** Forgets `key` under `set` entirely: its counts, and its ban when the set has bans. */
  reset(key: string, set: PolicySet): Promise<void>;
  /**
   * Settles a reservation: `delta` (its actual cost minus its estimate) more units on every policy,
   * atomically, even past the limit, each policy at most its `maxDebt` over its capacity (the rest
   * is not counted); a negative `delta` gives units back as `refund` does (to the state that counted
   * them at `countedAt`). Stores without it cannot serve `limiter.reserve`.
   */
  settle?(key: string, set: PolicySet, delta: number, countedAt?: number): Promise<Settlement>;
  /**
   * Stores that keep bans (`set.ban`) have this: bans `key` until `durationMs` from now, whatever
   * ban it had, keeping its offence count while it is remembered (`ResolvedBan.memory` after the
   * last ban's end). Answers when the ban ends (the store's time, ms) and the offence count (0: none
   * remembered).
   */
  ban?(key: string, set: PolicySet, durationMs: number): Promise<{ until: number; offence: number }>;
  /** Lifts `key`'s ban and forgets its offences and counted denials; its policies' counts stay. */
  unban?(key: string, set: PolicySet): Promise<void>;
  /**
   * Frees the slot the lease `lease` (a `ConsumeInfo.lease`) holds under the set's concurrency
   * policy; nothing when it holds none (released before, ended). Resolves with the store's time of
   * the release (ms), so the caller can tell a release that came after the lease had ended.
   * Required of a store that runs concurrency policies.
   */
  release?(key: string, set: PolicySet, lease: string): Promise<number>;
  /**
   * Stores shared by several processes that can tell each of them of a ban lifted anywhere (the
   * RedisStore, through Redis pub/sub). A limiter with bans registers `listener` when it is created
   * and removes it (the returned function) on `close()`; while the listener is told it is
   * `listening`, the limiter trusts a ban it knows until the ban ends, with no store call. A store
   * that has this must call `listener.lifted(liftId(key, set))` in every process, its own included,
   * for every `unban`, every `reset` of a set with bans and every `ban` (which replaces the ban the
   * key had, a shorter one shortening it), before that call resolves where it was made. Stores of
   * one process (the MemoryStore) need none: the limiter forgets what it lifts.
   */
  onLift?(listener: LiftListener): () => void;
  close?(): Promise<void> | void;
  /** True for stores that leave the process (Redis): turns on the denied-key cache by default. */
  readonly remote?: boolean;
  /**
   * The store's time source when it runs in this process (a MemoryStore's clock, a RedisStore given
   * a test `clock`): the limiter's denied-key cache measures its waits with it, so a virtual clock
   * drives both. Undefined when time comes from elsewhere (Redis `TIME`): the cache then uses a
   * monotonic clock, which measures the same durations.
   */
  readonly clock?: Clock | undefined;
  /**
   * Which independent part of the store holds `key` under `set` (a Redis Cluster master), for stores
   * whose parts fail apart. A `StoreError` with `scope: 'shard'` puts only that part in the failing
   * state: keys elsewhere keep their decisions from the store. Asked only while some part fails.
   */
  shardOf?(key: string, set: PolicySet): string;
}

/** What a store that tells of lifted bans (`Store.onLift`) calls on each listener. */
export interface LiftListener {
  /**
   * A ban was lifted (`unban`, `reset`) or replaced (`ban`) by some process: `id` is
   * `liftId(key, set)` of its key. The limiter forgets the ban it knew and asks the store once.
   */
  lifted(id: string): void;
  /**
   * `true`: the store hears every lift from now on (subscribed, also again after a reconnect, when
   * lifts may have been missed: the limiter then drops every ban it knows). `false`: it may miss
   * lifts (connecting, reconnecting, failed, closed): known bans are trusted for `ban.recheck` only.
   * `cause`: the failure that stopped it, if any (reported as the store's other errors are).
   */
  listening(on: boolean, cause?: Error): void;
}

/** Time source in milliseconds. Stores use a monotonic one by default. */
export type Clock = () => number;

/** Where coded warnings (`logger.warn`) and store errors (`logger.error`) go; `console` fits. */
export interface Logger {
  warn(message: string): void;
  error(message: string): void;
}
