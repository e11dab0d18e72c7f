import { createHash } from 'node:crypto';
import { STEPS } from './algorithms/index.js';
import { bannedOutcomes } from './ban/kernel.js';
import { liftId } from './ban/lift.js';
import { type BanConfig, resolveBan } from './ban/options.js';
import { checkOptions, durationOption } from './check-options.js';
import { monotonicClock } from './clock.js';
import { openDecision, periodLength, toDecision } from './decision.js';
import { MAX_WINDOW_MS, parseDuration } from './duration.js';
import { ConfigError, configError, StoreError } from './errors.js';
import {
  channels,
  publishBan,
  publishDecision,
  publishStoreCall,
  publishStoreError,
  publishStoreRecovered,
  type StoreCallMessage,
} from './events.js';
import { MemoryStore } from './memory-store.js';
import { capacityOf, resolveNamespace, resolvePolicySet } from './policy.js';
import { Releases } from './release.js';
import { droppedReservations, openReservation, type Reservation } from './reservation.js';
import type {
  BanOptions,
  Clock,
  ConsumeInfo,
  Decision,
  Duration,
  LiftListener,
  Logger,
  Outcome,
  Policy,
  PolicySet,
  Settlement,
  Store,
} from './types.js';
import { WARNINGS, Warner } from './warnings.js';

/** Options of `createLimiter()`. */
export interface LimiterOptions {
  /**
   * One policy or several, applied all or nothing. Leave it out for a limiter whose policies come
   * with each call (tiers: `consume(key, { policies: TIERS[plan] })`); every call must then pass them.
   */
  policies?: Policy | readonly Policy[];
  /** Where counters live. @default a new MemoryStore */
  store?: Store;
  /**
   * Separates the counters of limiters that share one store (per-route limits).
   * @default 'default'
   */
  name?: string;
  /**
   * When the store fails and no fallback answers: let requests through (`'allow'`, reason
   * `'store-error'`) or refuse them (`'deny'`; the HTTP layer answers 503).
   * @default 'allow'
   */
  onStoreError?: 'allow' | 'deny';
  /** A store (usually a MemoryStore) used while `store` fails; left again when it recovers. */
  fallback?: Store;
  /**
   * While the store fails, one request per this many ms tries it again; the rest go straight to
   * the fallback or `onStoreError`, so a dead store costs no latency. Milliseconds or a duration
   * string (`'2s'`).
   * @default 1000
   */
  probeIntervalMs?: Duration;
  /**
   * Deny repeat requests of a denied key locally until its `retryAfterMs` has passed, without asking
   * the store (`reason: 'blocked-cache'`). Set a number to bound how many keys it holds.
   * @default true for remote stores (Redis), false for the MemoryStore
   */
  blockedCache?: boolean | number;
  /** Receives coded warnings and store errors. @default console */
  logger?: Logger;
  /**
   * Bans: the `after`-th denial within `within` refuses the key for `for` (`reason: 'banned'`,
   * `retryAfterMs` = the ban's time left), growing by `escalate.factor` per repeat offence up to
   * `escalate.max`. The ban lives with the key's counts in the store, so every process sharing it
   * refuses the key; a process that knows a ban refuses it without a store call until it ends, as
   * long as the store tells of bans lifted elsewhere (the RedisStore does), else for `recheck`.
   * `ban: {}` enables `limiter.ban()` / `unban()` alone. Requests refused by the denied-key cache
   * never reach the store and so count no denial: with automatic bans that cache is off unless
   * `blockedCache` is set.
   * @example { after: 5, within: '1m', for: '15m', escalate: { factor: 2, max: '1d' } }
   */
  ban?: BanOptions;
}

/** Per-call options of `consume`, `decide`, `peek` and `reset`. */
export interface ConsumeOptions {
  /** Units this request costs: a non-negative integer. @default 1 */
  cost?: number;
  /** Policies for this request instead of the limiter's (tiers); validated once per object. */
  policies?: Policy | readonly Policy[];
}

/** Options of `limiter.refund()`. */
export interface RefundOptions extends Pick<ConsumeOptions, 'policies'> {
  /**
   * The `countedAt` of the Decision that counted the units: a window opened since then keeps its
   * quota (express-rate-limit's `skipSuccessfulRequests` across a window boundary). Without it the
   * units go back to the state as it is now.
   */
  countedAt?: number | undefined;
}

/** Counts requests per key against its policies in a store; made by `createLimiter()`. */
export interface Limiter {
  readonly name: string;
  /** The limiter's own policies, resolved; `undefined` when they come with each call (tiers). */
  readonly policies: PolicySet | undefined;
  readonly store: Store;
  consume(key: string, options?: ConsumeOptions): Promise<Decision>;
  /**
   * `consume` without the promise when none is needed: returns the Decision itself when the store
   * answers synchronously (the MemoryStore, or a key the denied-key cache holds), else a promise.
   * For hot paths that can take either; bad arguments throw here instead of rejecting.
   */
  decide(key: string, options?: ConsumeOptions): Decision | Promise<Decision>;
  /** The decision a cost-1 request would get now, consuming nothing. */
  peek(key: string, options?: Pick<ConsumeOptions, 'policies'>): Promise<Decision>;
  /**
   * Gives back `cost` units (default 1): never below zero, never reviving an expired window. With
   * `countedAt` (the Decision's), to the window or bucket that counted them, never to a later one.
   */
  refund(key: string, cost?: number, options?: RefundOptions): Promise<void>;
  /** Forgets `key`'s counts entirely, and its ban when the limiter has bans. */
  reset(key: string, options?: Pick<ConsumeOptions, 'policies'>): Promise<void>;
  /**
   * Counts `cost` (the estimate, default 1) as `consume` does, all or nothing, and returns a
   * Reservation to settle with the actual cost once it is known (`settle(actual)`: the difference is
   * charged even past the limit, up to each policy's `maxDebt`, or given back) or to give back
   * (`release()`). A key in debt is denied until the debt has drained. Needs a store with `settle`
   * (the MemoryStore and the RedisStore have it); a ConfigError otherwise.
   * @example
   * const r = await limiter.reserve(apiKey, { cost: 2000 });
   * if (!r.decision.allowed) return tooMany(r.decision.retryAfterMs);
   * try { const res = await llm(prompt); await r.settle(res.usage.total_tokens); }
   * finally { await r.release(); } // no effect after settle
   */
  reserve(key: string, options?: ConsumeOptions): Promise<Reservation>;
  /**
   * Bans `key` for `duration` (ms or `'1h'`) from now, replacing any ban it has, in the store, so
   * every process sharing it refuses the key. Keeps the key's offence count: a manual ban is no
   * offence. Needs the `ban` option (`ban: {}` for manual bans only).
   */
  ban(key: string, duration: Duration, options?: Pick<ConsumeOptions, 'policies'>): Promise<void>;
  /**
   * Lifts `key`'s ban and forgets its offences and counted denials (its policies' counts stay). In
   * this process at once; in another process that knows the ban, at once too when the store tells
   * of lifted bans (the RedisStore: the key's next request there is let through), else from its
   * first request after `ban.recheck`.
   */
  unban(key: string, options?: Pick<ConsumeOptions, 'policies'>): Promise<void>;
  /** Resolves `policies` (as `consume` would) into the set used for storage and headers. */
  resolve(policies?: Policy | readonly Policy[]): PolicySet;
  /**
   * Closes the stores this limiter created itself (not the ones passed in), and stops listening
   * for lifted bans on the store (its subscriber closes with the store, or when its client ends).
   * A limiter dropped without `close()` stops listening once it is garbage-collected (the store
   * holds it weakly).
   */
  close(): Promise<void>;
}

const OPTIONS = [
  'policies',
  'store',
  'name',
  'onStoreError',
  'fallback',
  'probeIntervalMs',
  'blockedCache',
  'logger',
  'ban',
];

interface SyncStore extends Store {
  /** Like `consume`, synchronously; the result may be reused by the next call. */
  consumeSync(key: string, set: PolicySet, cost: number, info?: ConsumeInfo): Outcome[];
}
const isSync = (store: Store): store is SyncStore =>
  typeof (store as Partial<SyncStore>).consumeSync === 'function';

/** Names used per store, to warn when two limiters share a name with different policies. */
const namesByStore = new WeakMap<Store, Map<string, string>>();

function assertStore(store: unknown, option: string): asserts store is Store {
  const s = store as Partial<Store> | null;
  if (
    typeof s !== 'object' ||
    s === null ||
    ['consume', 'peek', 'refund', 'reset'].some((m) => typeof s[m as keyof Store] !== 'function')
  ) {
    throw configError(option, 'a store (an object with consume, peek, refund and reset methods)', store);
  }
  // Optional, but the denied-key cache calls it on every request: a wrong one fails here, not there.
  if (s.clock !== undefined && typeof s.clock !== 'function') {
    throw configError(`${option}.clock`, 'a function returning milliseconds, or undefined', s.clock);
  }
}

/** A set with a concurrency policy needs a store that can release its slots. */
function canHold(store: Store, set: PolicySet, option: string): void {
  if (set.holder >= 0 && typeof store.release !== 'function') {
    throw new ConfigError(
      `\`${option}\` has no \`release\` method, so it cannot hold requests in flight for concurrency policy '${set.policies[set.holder]!.name}'. Use a MemoryStore or a RedisStore, or implement \`release\`.`,
    );
  }
}

function checkCost(cost: unknown): number {
  if (typeof cost !== 'number' || !Number.isInteger(cost) || cost < 0) {
    throw configError('cost', 'a non-negative integer', cost);
  }
  return cost;
}

function checkKey(key: unknown): string {
  if (typeof key !== 'string') throw configError('key', 'a string', key);
  return key;
}

/** Keys longer than this (the stores' own bound before they hash a key) are not cached. */
/**
 * The listener a limiter gives a store that tells of lifted bans: it reaches the limiter's own
 * listener through `ref`, so that the store (which lives as long as your client) does not keep a
 * limiter you dropped without `close()` alive. Built out here: a closure in the limiter would hold it.
 */
function weakListener(ref: WeakRef<LiftListener>): LiftListener {
  return {
    lifted: (id) => ref.deref()?.lifted(id),
    listening: (on, cause) => ref.deref()?.listening(on, cause),
  };
}

/** Resolves after two turns of the event loop, with a poll for I/O between them. */
const afterPendingReads = (): Promise<void> =>
  new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

/** Removes a collected limiter's listener from its store (its subscriber closes with the last). */
const liftsOfCollected = new FinalizationRegistry<() => void>((unlisten) => unlisten());

const MAX_CACHED_KEY_LENGTH = 100;

/** Lifts a limiter keeps in mind to tell a ban answered before its own key's lift (see `heard`). */
const MAX_HEARD_LIFTS = 1000;

/** The `cost` of a cache entry that answers every cost (a ban). */
const ANY_COST = -1;

/**
 * Denied-key cache: while a key is denied, repeat requests are answered without the store. The
 * limiter's ban cache is another one, whose entries answer every cost (`ANY_COST`).
 */
class BlockedCache {
  private readonly entries = new Map<
    string,
    { until: number; at: number; cost: number; outcomes: Outcome[]; lift: string | undefined }
  >();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.entries.size;
  }

  lookup(id: string, cost: number, now: number): Outcome[] | undefined {
    const entry = this.entries.get(id);
    if (entry === undefined) return undefined;
    if (now >= entry.until) {
      this.entries.delete(id);
      return undefined;
    }
    // A different cost has a different retry time: ask the store.
    if (entry.cost !== cost && entry.cost !== ANY_COST) return undefined;
    const elapsed = now - entry.at;
    return entry.outcomes.map((o) => ({
      allowed: o.allowed,
      remaining: o.remaining,
      resetMs: Math.max(0, o.resetMs - elapsed),
      retryAfterMs: o.allowed ? 0 : Math.max(1, o.retryAfterMs - elapsed),
      delayMs: 0,
      // A calendar period: held no longer than the denial, which ends at its boundary at the latest.
      windowMs: o.windowMs,
    }));
  }

  /**
   * Answers `id` (at `cost`) with `outcomes` (their waits counted down) for `forMs`; `lift`: the
   * entry's `liftId`, by which a store that tells of lifted bans names it (see `forgetLifted`).
   */
  remember(id: string, cost: number, now: number, outcomes: Outcome[], forMs: number, lift?: string): void {
    if (!Number.isFinite(forMs) || forMs <= 0) return;
    if (this.entries.size >= this.max) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(id, {
      until: now + forMs,
      at: now,
      cost,
      outcomes: outcomes.map((o) => ({ ...o })),
      lift,
    });
  }

  forget(id: string): void {
    this.entries.delete(id);
  }

  /** Forgets the entries a store named as lifted: a walk over them all, as lifts are rare. */
  forgetLifted(lift: string): void {
    for (const [id, entry] of this.entries) if (entry.lift === lift) this.entries.delete(id);
  }

  /** Every entry ends by `until` at the latest. */
  clip(until: number): void {
    for (const entry of this.entries.values()) if (entry.until > until) entry.until = until;
  }

  clear(): void {
    this.entries.clear();
  }
}

/** Creates a limiter. Every option is validated here; nothing is validated per request. */
export function createLimiter(options: LimiterOptions): Limiter {
  if (typeof options !== 'object' || options === null) {
    throw configError('options', "an object such as `{ policies: { limit: 10, window: '1s' } }`", options);
  }
  checkOptions(options, OPTIONS, '`createLimiter()` options');
  const name = options.name === undefined ? 'default' : resolveNamespace(options.name);
  const ownsStore = options.store === undefined;
  const store = options.store ?? new MemoryStore();
  assertStore(store, 'store');
  if (options.fallback !== undefined) assertStore(options.fallback, 'fallback');
  const onStoreError = options.onStoreError ?? 'allow';
  if (onStoreError !== 'allow' && onStoreError !== 'deny') {
    throw configError('onStoreError', "`'allow'` or `'deny'`", onStoreError);
  }
  const probeIntervalMs = durationOption(options.probeIntervalMs, 'probeIntervalMs', 1000);
  const logger = options.logger ?? console;
  if (
    typeof logger !== 'object' ||
    logger === null ||
    typeof logger.warn !== 'function' ||
    typeof logger.error !== 'function'
  ) {
    throw configError('logger', 'an object with `warn` and `error` methods', logger);
  }
  const bans = options.ban === undefined ? undefined : resolveBan(options.ban);
  if (bans !== undefined) {
    for (const [option, s] of [
      ['store', store],
      ['fallback', options.fallback],
    ] as const) {
      if (s !== undefined && (typeof s.ban !== 'function' || typeof s.unban !== 'function')) {
        throw new ConfigError(
          `\`ban\` needs a store that keeps bans (MemoryStore, RedisStore); the \`${option}\` given has no \`ban\` and \`unban\` methods.`,
        );
      }
    }
  }
  // Denials answered by the denied-key cache never reach the store, which counts the denials that
  // ban: with automatic bans the cache is off unless asked for (the ban cache takes over the flood).
  const automaticBans = bans !== undefined && bans.ban.after > 0;
  const blockedOption = options.blockedCache ?? (store.remote === true && !automaticBans);
  if (typeof blockedOption !== 'boolean' && (!Number.isInteger(blockedOption) || blockedOption < 1)) {
    throw configError('blockedCache', 'a boolean or a positive integer (most keys held)', blockedOption);
  }
  const blocked =
    blockedOption === false ? undefined : new BlockedCache(blockedOption === true ? 10_000 : blockedOption);
  const banCache =
    bans !== undefined && store.remote === true
      ? new BlockedCache(typeof blockedOption === 'number' ? blockedOption : 10_000)
      : undefined;

  const warner = new Warner(logger);
  if (automaticBans && blocked !== undefined) {
    warner.warn(
      WARNINGS.BAN_BLOCKED_CACHE,
      `Limiter '${name}' has automatic bans and \`blockedCache\` on: requests refused by that cache never reach the store, so they count no denial, and a flooding client is banned later than \`ban.after\` says, or never. Leave \`blockedCache\` unset (bans turn it off; a banned key costs nothing anyway).`,
    );
  }
  const set =
    options.policies === undefined
      ? undefined
      : resolvePolicySet(options.policies, name, 'policies', warner, bans?.ban);
  if (set !== undefined && automaticBans) {
    warnShortBan(set, bans!, warner);
    warnBanConcurrency(set, warner);
  }
  if (set !== undefined) {
    canHold(store, set, 'store');
    if (options.fallback !== undefined) canHold(options.fallback, set, 'fallback');
    const names = namesByStore.get(store) ?? new Map<string, string>();
    namesByStore.set(store, names);
    const other = names.get(name);
    if (other !== undefined && other !== set.id) {
      warner.warn(
        WARNINGS.NAME_CONFLICT,
        `Two limiters named '${name}' with different policies share one store; their counters are separate. Give each a distinct \`name\` (or the same policies) to make this explicit.`,
      );
    }
    names.set(name, set.id);
  }

  return new LimiterImpl(
    name,
    set,
    store,
    ownsStore,
    options.fallback,
    onStoreError,
    probeIntervalMs,
    blocked,
    warner,
    bans,
    banCache,
  );
}

/**
 * TOLLGATE_BAN_SHORT: the longest ban ends before the longest policy window, so a client banned
 * for hammering that policy is refused by the policy itself for longer than by the ban.
 */
function warnShortBan(set: PolicySet, { ban }: BanConfig, warner: Warner): void {
  // Windows refuse an exhausted client for up to their length; a bucket only until its next unit
  // (window / limit), and a shadow policy never: only enforced windows say what a ban must outlast.
  const windows = set.policies.filter((p) => p.mode !== 'shadow' && !STEPS[p.algorithm].params.includes('B'));
  if (windows.length === 0) return;
  const longest = windows.reduce((a, p) => (p.window > a.window ? p : a));
  if (ban.max >= longest.window) return;
  warner.warn(
    WARNINGS.BAN_SHORT,
    `The longest ban of limiter '${set.namespace}' (${ban.max} ms) is shorter than policy '${longest.name}''s window (${longest.window} ms): a client that exhausts that policy waits longer for it than for the ban, so the ban adds little. Make \`ban.for\` (or \`ban.escalate.max\`) at least the window.`,
  );
}

/**
 * TOLLGATE_BAN_CONCURRENCY: automatic bans beside a concurrency policy. Every denial the store sees
 * counts toward a ban, a request refused for want of a free slot too, so a client that sends a few
 * requests at once (a browser, an SDK's parallel calls) can be banned without passing any rate.
 */
function warnBanConcurrency(set: PolicySet, warner: Warner): void {
  const held = set.policies.find((p) => p.algorithm === 'concurrency');
  if (held === undefined) return;
  warner.warn(
    WARNINGS.BAN_CONCURRENCY,
    `Limiter '${set.namespace}' has automatic bans and the concurrency policy '${held.name}': a request refused for want of a free slot counts toward a ban like any denial, so a client sending requests in parallel can be banned without passing any rate. Put the concurrency policy on a limiter of its own, without \`ban\`.`,
  );
}

class LimiterImpl implements Limiter {
  private readonly sets = new WeakMap<object, PolicySet>();
  private readonly syncStore: SyncStore | undefined;
  /** The denied-key cache's time: the store's own clock when it has one (a virtual clock in tests). */
  private readonly cacheClock: Clock;
  /**
   * The failing parts of the store (`WHOLE`, or a shard named by `store.shardOf`), each with when
   * the next request may try it again. Empty while the store works.
   */
  private readonly down = new Map<string, number>();
  /** When the first part of the store went down (monotonic ms), for `tollgate:store-recovered`. */
  private downSince = 0;
  /** Keys (hashed) whose command-level failure was logged: once each, bounded. */
  private readonly loggedKeys = new Set<string>();
  /** The synchronous store's answer besides the outcomes, reused: read at once. */
  private readonly info: ConsumeInfo = {};
  /** Warns of reservations collected unfinished; made with the first reservation. */
  private dropped: FinalizationRegistry<{ done: boolean }> | undefined;
  /** `release` for decisions that hold a slot of a concurrency policy. */
  private readonly releases: Releases;
  /** Removes this limiter's listener from a store that tells of lifted bans (`Store.onLift`). */
  private readonly unlisten: (() => void) | undefined;
  /** What the store's lifts reach, held here: the store holds it only weakly (see `weakListener`). */
  private readonly lifted: LiftListener | undefined;
  /** The store hears every lifted ban now: a known ban is trusted until it ends. */
  private pushed = false;
  /**
   * Counts lifts and changes of `pushed`: a ban answered by the store after one of them may
   * already be lifted (its reply raced the news), so it is trusted for `recheck` only.
   */
  private lifts = 0;
  /**
   * The lifts heard lately, by `liftId`, each with the value of `lifts` it took: a ban answered by
   * the store after a lift of its own key was heard is the store's answer from before that lift,
   * and is not remembered at all. Bounded (`MAX_HEARD_LIFTS`, oldest first).
   */
  private readonly heard = new Map<string, number>();

  constructor(
    readonly name: string,
    readonly policies: PolicySet | undefined,
    readonly store: Store,
    private readonly ownsStore: boolean,
    private readonly fallback: Store | undefined,
    private readonly onStoreError: 'allow' | 'deny',
    private readonly probeIntervalMs: number,
    private readonly blocked: BlockedCache | undefined,
    private readonly warner: Warner,
    private readonly bans: BanConfig | undefined,
    /** Bans this process knows of (remote stores): trusted for `bans.recheckMs` at most. */
    private readonly banCache: BlockedCache | undefined,
  ) {
    this.syncStore = isSync(store) ? store : undefined;
    this.cacheClock = store.clock ?? monotonicClock;
    this.releases = new Releases(name, warner, this.cacheClock);
    if (banCache !== undefined && typeof store.onLift === 'function') {
      this.lifted = this.liftListener(banCache);
      this.unlisten = store.onLift(weakListener(new WeakRef(this.lifted)));
      // A limiter dropped without close() is collected all the same, and then stops listening.
      liftsOfCollected.register(this, this.unlisten, this);
    }
  }

  /** What a store that tells of lifted bans calls: keeps the ban cache to what still holds. */
  private liftListener(banCache: BlockedCache): LiftListener {
    return {
      lifted: (id) => {
        this.lifts++;
        this.heard.delete(id);
        this.heard.set(id, this.lifts);
        if (this.heard.size > MAX_HEARD_LIFTS) this.heard.delete(this.heard.keys().next().value!);
        banCache.forgetLifted(id);
      },
      listening: (on, cause) => {
        this.lifts++;
        if (on) {
          // Lifts may have gone by unheard before this (re)subscribe.
          banCache.clear();
          if (!this.pushed) this.warner.forget(WARNINGS.BAN_PUSH_LOST);
        } else {
          // From now on what is known holds for `recheck` at most, as with a store that cannot tell.
          banCache.clip(this.cacheClock() + this.bans!.recheckMs);
          if (cause !== undefined) {
            this.warner.warn(
              WARNINGS.BAN_PUSH_LOST,
              `Limiter '${this.name}' no longer hears of bans lifted in other processes (${describe(cause)}): until the store is subscribed again, a ban known here is trusted for \`ban.recheck\` (${this.bans!.recheckMs} ms) at most.`,
            );
          }
        }
        this.pushed = on;
      },
    };
  }

  /** A lift of `key` under `set` was heard since a call started at `lifts`. */
  private liftedSince(key: string, set: PolicySet, lifts: number): boolean {
    if (lifts === this.lifts || this.heard.size === 0) return false;
    return (this.heard.get(liftId(key, set)) ?? lifts) > lifts;
  }

  /** How long a ban with `left` ms to go, answered by a call started at `lifts`, is trusted here. */
  private banTrust(left: number, lifts: number): number {
    return this.pushed && lifts === this.lifts ? left : Math.min(left, this.bans!.recheckMs);
  }

  resolve(policies?: Policy | readonly Policy[]): PolicySet {
    if (policies === undefined) return this.policies ?? this.noPolicies();
    const ban = this.bans?.ban;
    if (typeof policies !== 'object' || policies === null)
      return resolvePolicySet(policies, this.name, 'policies', this.warner, ban);
    let set = this.sets.get(policies);
    if (set === undefined) {
      set = resolvePolicySet(policies, this.name, 'policies', this.warner, ban);
      canHold(this.store, set, 'store');
      if (this.fallback !== undefined) canHold(this.fallback, set, 'fallback');
      this.sets.set(policies, set);
      if (this.zones !== undefined) this.noteZones(set);
    }
    return set;
  }

  /** Time zones of the calendar policies met (TOLLGATE_CALENDAR_ZONES); undefined once warned. */
  private zones: Set<string> | undefined = new Set();

  private noteZones(set: PolicySet): void {
    const zones = this.zones!;
    for (const p of set.policies) if (p.calendar !== undefined) zones.add(p.calendar.timeZone);
    if (zones.size <= MAX_CALENDAR_ZONES) return;
    this.zones = undefined;
    this.warner.warn(
      WARNINGS.CALENDAR_ZONES,
      `Limiter '${this.name}' has calendar policies in ${zones.size} time zones (${[...zones].map((z) => `'${z}'`).join(', ')}): a time zone per user gives each zone its own counters, and a user who changes zone starts a fresh quota. Give every calendar policy one zone, the business's (billing) zone.`,
    );
  }

  consume(key: string, options?: ConsumeOptions): Promise<Decision> {
    let decision: Decision | Promise<Decision>;
    try {
      decision = this.decide(key, options);
    } catch (error) {
      return Promise.reject(error);
    }
    return decision instanceof Promise ? decision : Promise.resolve(decision);
  }

  decide(key: string, options?: ConsumeOptions): Decision | Promise<Decision> {
    let set = this.policies;
    let cost = 1;
    checkKey(key);
    if (options !== undefined) {
      if (options.cost !== undefined) cost = checkCost(options.cost);
      if (options.policies !== undefined) set = this.resolve(options.policies);
    }
    if (set === undefined) return this.noPolicies();
    // One read when nobody listens; the message is built only when someone does.
    if (!channels.decision.hasSubscribers) return this.decideOn(key, set, cost);
    const decision = this.decideOn(key, set, cost);
    if (!(decision instanceof Promise)) {
      publishDecision(this.name, key, decision, cost);
      return decision;
    }
    return decision.then((d) => {
      publishDecision(this.name, key, d, cost);
      return d;
    });
  }

  /** `readsDone`: the event loop has read what had reached this process since the call (see below). */
  private decideOn(
    key: string,
    set: PolicySet,
    cost: number,
    readsDone = false,
  ): Decision | Promise<Decision> {
    if (this.banCache !== undefined && this.banCache.size > 0) {
      const banned = this.banCache.lookup(`${set.id}\n${key}`, cost, this.cacheClock());
      if (banned !== undefined) {
        if (this.lifted === undefined || readsDone)
          return bannedDecision(key, set, banned, this.cacheClock());
        // The store tells of lifted bans, and Redis writes that news to every subscriber before it
        // answers the PUBLISH: an unban that another process has seen resolve may be waiting in
        // this process's socket, behind the request asking now. Two turns of the event loop (a
        // poll between them) read it before the key is refused from memory; still no store call.
        return afterPendingReads().then(() => this.decideOn(key, set, cost, true));
      }
    }
    if (this.blocked !== undefined && this.blocked.size > 0) {
      const cached = this.blocked.lookup(`${set.id}\n${key}`, cost, this.cacheClock());
      if (cached !== undefined) return toDecision(key, set, cached, 'blocked-cache');
    }
    if (this.syncStore !== undefined && this.down.size === 0) {
      let outcomes: Outcome[];
      const info = this.info;
      info.countedAt = undefined;
      info.banLeftMs = undefined;
      info.banOffence = undefined;
      info.lease = undefined;
      const startedAt = channels.storeCall.hasSubscribers ? performance.now() : undefined;
      try {
        outcomes = this.syncStore.consumeSync(key, set, cost, info);
      } catch (error) {
        if (startedAt !== undefined) publishStoreCall(this.name, 'consume', startedAt, false);
        return this.afterFailure(error, key, set, cost);
      }
      if (startedAt !== undefined) publishStoreCall(this.name, 'consume', startedAt, true);
      return this.decided(key, set, cost, outcomes, info);
    }
    return this.consumeAsync(key, set, cost);
  }

  private noPolicies(): never {
    throw new ConfigError(
      `Limiter '${this.name}' has no policies of its own (created without \`policies\`, or by \`rateLimit()\` with a policies function): pass them to each call, e.g. \`limiter.peek(key, { policies: TIERS.pro })\`.`,
    );
  }

  /** A store that answers with a promise (Redis). A `then` chain, not an async function: one hop less. */
  private consumeAsync(key: string, set: PolicySet, cost: number): Promise<Decision> {
    if (this.down.size > 0) {
      const part = this.failingPart(key, set);
      if (part !== undefined) {
        const now = monotonicClock();
        if (now < this.down.get(part)!) return this.degraded(key, set, cost);
        // This request probes the part; the others keep away for another interval.
        this.down.set(part, now + this.probeIntervalMs);
      }
    }
    let pending: Promise<Outcome[]>;
    const info: ConsumeInfo = {};
    const lifts = this.lifts;
    const startedAt = channels.storeCall.hasSubscribers ? performance.now() : undefined;
    try {
      pending = Promise.resolve(this.store.consume(key, set, cost, info));
    } catch (error) {
      if (startedAt !== undefined) publishStoreCall(this.name, 'consume', startedAt, false);
      return this.afterFailure(error, key, set, cost);
    }
    return pending.then(
      (outcomes) => {
        if (startedAt !== undefined) publishStoreCall(this.name, 'consume', startedAt, true);
        if (this.down.size > 0) this.recovered(key, set);
        return this.decided(key, set, cost, outcomes, info, lifts);
      },
      (error: unknown) => {
        if (startedAt !== undefined) publishStoreCall(this.name, 'consume', startedAt, false);
        return this.afterFailure(error, key, set, cost);
      },
    );
  }

  /** The failing part of the store that holds `key`, if any (only asked while some part fails). */
  private failingPart(key: string, set: PolicySet): string | undefined {
    if (this.down.has(WHOLE)) return WHOLE;
    const shard = this.store.shardOf?.(key, set);
    return shard !== undefined && this.down.has(shard) ? shard : undefined;
  }

  private decided(
    key: string,
    set: PolicySet,
    cost: number,
    outcomes: Outcome[],
    info: ConsumeInfo,
    lifts = this.lifts,
  ): Decision {
    if (info.banLeftMs !== undefined && info.banLeftMs > 0)
      return this.banned(key, set, outcomes, info, lifts);
    const decision = toDecision(key, set, outcomes);
    if (decision.allowed) {
      if (info.countedAt !== undefined) decision.countedAt = info.countedAt;
      if (info.lease !== undefined) this.releases.attach(decision, this.store, key, set, info.lease);
    } else if (this.blocked !== undefined && key.length <= MAX_CACHED_KEY_LENGTH) {
      // A long key is asked of the store each time rather than held here in full: the stores keep
      // such keys as digests, and 10 000 of them at 15 KB would hold 150 MB in this cache.
      const wait = set.holder < 0 ? decision.retryAfterMs : rateWait(set, outcomes);
      this.blocked.remember(`${set.id}\n${key}`, cost, this.cacheClock(), outcomes, wait);
    }
    return decision;
  }

  /**
   * The store refused `key` for a ban: remembered here (remote stores) until it ends while the store
   * tells of lifted bans, else for up to `recheck`, and published when this very request started it.
   */
  private banned(
    key: string,
    set: PolicySet,
    outcomes: Outcome[],
    info: ConsumeInfo,
    lifts: number,
  ): Decision {
    const left = info.banLeftMs!;
    if (
      this.banCache !== undefined &&
      key.length <= MAX_CACHED_KEY_LENGTH &&
      !this.liftedSince(key, set, lifts)
    ) {
      this.rememberBan(key, set, outcomes, this.banTrust(left, lifts));
    }
    if (info.banOffence !== undefined && info.banOffence > 0) {
      publishBan({
        limiter: this.name,
        key,
        action: 'ban',
        durationMs: left,
        until: (info.countedAt ?? Date.now()) + left,
        offence: info.banOffence,
        manual: false,
      });
    }
    return bannedDecision(key, set, outcomes, this.cacheClock());
  }

  private afterFailure(error: unknown, key: string, set: PolicySet, cost: number): Promise<Decision> {
    this.failed(error, key, set);
    return this.degraded(key, set, cost);
  }

  /**
   * Puts what `error` took down in the failing state (issue 9): the whole store, or only the shard
   * holding `key`; an error on `key`'s value alone changes nothing for other keys (it is logged).
   */
  private failed(error: unknown, key: string, set: PolicySet): void {
    const cause = error instanceof StoreError ? error : new StoreError(describe(error), { cause: error });
    publishStoreError(this.name, cause, cause.scope);
    const then = this.fallback
      ? 'the fallback store decides'
      : `requests are ${this.onStoreError === 'allow' ? 'allowed' : 'denied with 503'}`;
    if (cause.scope === 'key') {
      this.keyFailed(key, cause, then);
      return;
    }
    const shard = cause.scope === 'shard' ? this.store.shardOf?.(key, set) : undefined;
    const part = shard ?? WHOLE;
    if (this.down.has(part) || this.down.has(WHOLE)) return;
    const now = monotonicClock();
    if (this.down.size === 0) this.downSince = now;
    this.down.set(part, now + this.probeIntervalMs);
    const what = part === WHOLE ? 'Store failed' : `Store failed on shard ${part}`;
    const scope = part === WHOLE ? '' : ' for the keys it holds (other keys are unaffected)';
    // Every part that goes down is news, also while another one is down.
    this.warner.forget(WARNINGS.STORE_ERROR);
    this.warner.warn(WARNINGS.STORE_ERROR, `${what} (${cause.message}); ${then}${scope} until it recovers.`);
    this.warner.forget(WARNINGS.STORE_RECOVERED);
  }

  private keyFailed(key: string, cause: StoreError, then: string): void {
    const hash = createHash('sha256').update(key).digest('hex').slice(0, 16);
    if (this.loggedKeys.has(hash)) return;
    if (this.loggedKeys.size >= MAX_LOGGED_KEYS) this.loggedKeys.clear();
    this.loggedKeys.add(hash);
    this.warner.logger.warn(
      `[${WARNINGS.STORE_KEY_ERROR}] Store failed on one key (sha256 ${hash}…): ${cause.message}; for this key ${then}, other keys are unaffected.`,
    );
  }

  /** A call on `key` succeeded: the part holding it works again. */
  private recovered(key: string, set: PolicySet): void {
    let back = this.down.delete(WHOLE);
    const shard = this.down.size > 0 ? this.store.shardOf?.(key, set) : undefined;
    if (shard !== undefined && this.down.delete(shard)) back = true;
    if (!back || this.down.size > 0) return;
    publishStoreRecovered(this.name, monotonicClock() - this.downSince);
    this.warner.warn(WARNINGS.STORE_RECOVERED, 'Store recovered; decisions come from it again.');
    this.warner.forget(WARNINGS.STORE_ERROR);
  }

  /** The decision while the store fails: the fallback's, else `onStoreError`'s. */
  private async degraded(key: string, set: PolicySet, cost: number): Promise<Decision> {
    if (this.fallback !== undefined) {
      try {
        const info: ConsumeInfo = {};
        const outcomes = await this.fallback.consume(key, set, cost, info);
        const banned = info.banLeftMs !== undefined && info.banLeftMs > 0;
        const decision = banned
          ? bannedDecision(key, set, outcomes, this.cacheClock())
          : toDecision(key, set, outcomes, 'fallback');
        if (decision.allowed && info.countedAt !== undefined) decision.countedAt = info.countedAt;
        if (decision.allowed && info.lease !== undefined) {
          this.releases.attach(decision, this.fallback, key, set, info.lease);
        }
        return decision;
      } catch (error) {
        this.warner.logger.error(`[${WARNINGS.STORE_ERROR}] Fallback store failed too: ${describe(error)}`);
      }
    }
    return this.storeErrorDecision(key, set);
  }

  /** What `onStoreError` says when no store answered. */
  private storeErrorDecision(key: string, set: PolicySet): Decision {
    const decision = openDecision(key, set, 'store-error');
    // Shadow policies never deny, not even for a failing store: a set of only those lets requests in.
    if (this.onStoreError === 'deny' && decision.policy.mode !== 'shadow') {
      decision.allowed = false;
      decision.remaining = 0;
      // Unknown when the store comes back: suggest retrying after one probe interval.
      decision.retryAfterMs = this.probeIntervalMs;
      for (const status of decision.policies) {
        if (status.policy.mode === 'shadow') continue;
        status.allowed = false;
        status.remaining = 0;
        status.retryAfterMs = this.probeIntervalMs;
      }
    }
    return decision;
  }

  async peek(key: string, options?: Pick<ConsumeOptions, 'policies'>): Promise<Decision> {
    checkKey(key);
    const set = this.resolve(options?.policies);
    const known = this.banCache?.lookup(`${set.id}\n${key}`, 1, this.cacheClock());
    if (known !== undefined) return bannedDecision(key, set, known, this.cacheClock());
    const fallback =
      this.fallback !== undefined && this.down.size > 0 && this.failingPart(key, set) !== undefined;
    try {
      const info: ConsumeInfo = {};
      const outcomes = fallback
        ? await this.fallback!.peek(key, set, info)
        : await this.timed('peek', () => this.store.peek(key, set, info));
      const banned = info.banLeftMs !== undefined && info.banLeftMs > 0;
      if (banned) return bannedDecision(key, set, outcomes, this.cacheClock());
      return toDecision(key, set, outcomes, fallback ? 'fallback' : undefined);
    } catch (error) {
      this.failed(error, key, set);
      return this.storeErrorDecision(key, set);
    }
  }

  async refund(key: string, cost = 1, options?: RefundOptions): Promise<void> {
    checkKey(key);
    checkCost(cost);
    const set = this.resolve(options?.policies);
    const countedAt = options?.countedAt;
    if (countedAt !== undefined && !Number.isFinite(countedAt)) {
      throw configError('countedAt', "a Decision's `countedAt` (a number of ms)", countedAt);
    }
    this.blocked?.forget(`${set.id}\n${key}`);
    await this.both('refund', (store) => store.refund(key, set, cost, countedAt));
  }

  async reserve(key: string, options?: ConsumeOptions): Promise<Reservation> {
    checkKey(key);
    const estimate = options?.cost === undefined ? 1 : checkCost(options.cost);
    const set = this.resolve(options?.policies);
    for (const store of [this.store, this.fallback]) {
      if (store !== undefined && typeof store.settle !== 'function') {
        throw new ConfigError(
          `limiter.reserve() needs stores that can settle, and the ${store === this.store ? '`store`' : '`fallback`'} of limiter '${this.name}' has no \`settle\` method. Use a MemoryStore or a RedisStore, or implement \`settle\` (see the Store interface).`,
        );
      }
    }
    // A shadow policy never denies, so an estimate above its capacity costs nothing; a concurrency
    // policy takes one slot whatever the estimate.
    const over = set.policies.find(
      (p, i) => p.mode !== 'shadow' && i !== set.holder && estimate > capacityOf(p),
    );
    if (over !== undefined) {
      this.warner.warn(
        WARNINGS.ESTIMATE_ABOVE_CAPACITY,
        `Limiter '${this.name}' reserved an estimate of ${estimate}, more than the capacity of policy '${over.name}' (${capacityOf(over)}): such a reservation is denied, and always will be. Reserve at most ${capacityOf(over)} (a typical or capped estimate) and let settle(actual) charge the rest, or raise the policy's capacity (\`limit\`, or \`burst\` for a bucket).`,
      );
    }
    const decision = await this.consume(key, options);
    // Which store counted the estimate: the primary, the fallback, or none (denied, fail-open).
    const counter = !decision.allowed
      ? undefined
      : decision.reason === undefined
        ? this.store
        : decision.reason === 'fallback'
          ? this.fallback
          : undefined;
    if (counter === undefined) return openReservation(decision, estimate, undefined, undefined);
    this.dropped ??= droppedReservations(() =>
      this.warner.warn(
        WARNINGS.UNSETTLED,
        `A reservation of limiter '${this.name}' was dropped without settle() or release(): its estimate stays counted as its cost. Call settle(actual) once the cost is known, or release() when the call did not happen (in a finally block).`,
      ),
    );
    const { countedAt } = decision;
    return openReservation(
      decision,
      estimate,
      (delta) => this.settleOn(counter, key, set, delta, countedAt),
      this.dropped,
    );
  }

  /** A reservation's settle, on the store that counted it. */
  private async settleOn(
    store: Store,
    key: string,
    set: PolicySet,
    delta: number,
    countedAt: number | undefined,
  ): Promise<Decision> {
    const id = `${set.id}\n${key}`;
    this.blocked?.forget(id);
    let settlement: Settlement;
    try {
      const settle = () => store.settle!(key, set, delta, countedAt);
      settlement = await (store === this.store ? this.timed('settle', settle) : settle());
    } catch (error) {
      throw error instanceof StoreError ? error : new StoreError(describe(error), { cause: error });
    }
    const { outcomes, uncharged } = settlement;
    const decision = toDecision(key, set, outcomes, store === this.store ? undefined : 'fallback');
    uncharged.forEach((units, i) => {
      if (units <= 0) return;
      const status = decision.policies[i]!;
      status.uncharged = units;
      this.warner.warn(
        WARNINGS.DEBT_CAPPED,
        `A settle of limiter '${this.name}' left ${units} units uncharged on policy '${status.name}': counting them would have taken it more than its maxDebt (${status.policy.maxDebt}) over its capacity (${status.limit}). Raise the policy's \`maxDebt\`, or reserve estimates closer to the actual cost.`,
      );
    });
    // A key left in debt: its cost-1 requests are denied here until it has drained.
    if (!decision.allowed && this.blocked !== undefined && key.length <= MAX_CACHED_KEY_LENGTH) {
      this.blocked.remember(id, 1, this.cacheClock(), outcomes, decision.retryAfterMs);
    }
    return decision;
  }

  async reset(key: string, options?: Pick<ConsumeOptions, 'policies'>): Promise<void> {
    checkKey(key);
    const set = this.resolve(options?.policies);
    this.blocked?.forget(`${set.id}\n${key}`);
    this.banCache?.forget(`${set.id}\n${key}`);
    await this.both('reset', (store) => store.reset(key, set));
  }

  async ban(key: string, duration: Duration, options?: Pick<ConsumeOptions, 'policies'>): Promise<void> {
    checkKey(key);
    const durationMs = parseDuration(duration, 'duration', MAX_WINDOW_MS);
    const set = this.banSet(options, 'ban');
    let state: { until: number; offence: number } | undefined;
    const lifts = this.lifts;
    await this.both('ban', async (store) => {
      state = await store.ban!(key, set, durationMs);
    });
    if (this.banCache !== undefined && key.length <= MAX_CACHED_KEY_LENGTH) {
      const outcomes = bannedOutcomes(new Array(set.policies.length), set.policies.length, durationMs);
      this.rememberBan(key, set, outcomes, this.banTrust(durationMs, lifts));
    }
    publishBan({
      limiter: this.name,
      key,
      action: 'ban',
      durationMs,
      until: state!.until,
      offence: state!.offence,
      manual: true,
    });
  }

  async unban(key: string, options?: Pick<ConsumeOptions, 'policies'>): Promise<void> {
    checkKey(key);
    const set = this.banSet(options, 'unban');
    this.banCache?.forget(`${set.id}\n${key}`);
    this.blocked?.forget(`${set.id}\n${key}`);
    await this.both('unban', (store) => store.unban!(key, set));
    publishBan({
      limiter: this.name,
      key,
      action: 'unban',
      durationMs: 0,
      until: Date.now(),
      offence: 0,
      manual: true,
    });
  }

  /** Puts `key`'s ban in the ban cache for `forMs`, named for the store's lifts if it tells of them. */
  private rememberBan(key: string, set: PolicySet, outcomes: Outcome[], forMs: number): void {
    const lift = this.unlisten === undefined ? undefined : liftId(key, set);
    this.banCache!.remember(`${set.id}\n${key}`, ANY_COST, this.cacheClock(), outcomes, forMs, lift);
  }

  /** The set `ban` and `unban` act on: only a limiter with bans has a ban slot. */
  private banSet(options: Pick<ConsumeOptions, 'policies'> | undefined, method: string): PolicySet {
    if (this.bans === undefined) {
      throw new ConfigError(
        `\`limiter.${method}()\` needs the limiter's \`ban\` option: e.g. \`ban: { after: 5, within: '1m', for: '15m' }\`, or \`ban: {}\` for manual bans only.`,
      );
    }
    return this.resolve(options?.policies);
  }

  /** Runs on the primary and, if any, the fallback: a refund must reach whichever counted. */
  private async both(
    operation: StoreCallMessage['operation'],
    run: (store: Store) => Promise<void>,
  ): Promise<void> {
    if (this.fallback !== undefined) await run(this.fallback);
    try {
      await this.timed(operation, () => run(this.store));
    } catch (error) {
      throw error instanceof StoreError ? error : new StoreError(describe(error), { cause: error });
    }
  }

  /** Runs one call on the store, timed on `tollgate:store-call` while someone listens. */
  private async timed<T>(operation: StoreCallMessage['operation'], call: () => Promise<T>): Promise<T> {
    if (!channels.storeCall.hasSubscribers) return call();
    const startedAt = performance.now();
    try {
      const result = await call();
      publishStoreCall(this.name, operation, startedAt, true);
      return result;
    } catch (error) {
      publishStoreCall(this.name, operation, startedAt, false);
      throw error;
    }
  }

  async close(): Promise<void> {
    if (this.unlisten !== undefined) liftsOfCollected.unregister(this);
    this.unlisten?.();
    if (this.ownsStore) await this.store.close?.();
  }
}

/** More distinct time zones than this among one limiter's calendar policies is a zone per user. */
const MAX_CALENDAR_ZONES = 3;
/**
 * A banned key's decision: refused whatever its policies' modes (a set of shadow policies alone
 * allows everything else), every policy refused for the ban's time left, none listed as shadow-limited.
 * A ban's answer carries no calendar period from the store: the period in force at `now` (the
 * store's clock, else this machine's) is stated instead, so `RateLimit-Policy` keeps its `w`.
 */
function bannedDecision(key: string, set: PolicySet, outcomes: readonly Outcome[], now: number): Decision {
  const decision = toDecision(key, set, outcomes, 'banned');
  for (const status of decision.policies) {
    if (status.windowMs === undefined && status.policy.calendar !== undefined) {
      status.windowMs = periodLength(status.policy.calendar, now);
    }
  }
  decision.allowed = false;
  decision.remaining = 0;
  decision.delayMs = 0;
  decision.retryAfterMs = outcomes[0]!.retryAfterMs;
  delete decision.shadowLimited;
  return decision;
}

/**
 * How long a denial of a set with a concurrency policy surely lasts: the longest wait of its
 * enforced rate policies. A concurrency denial is never cached: a release, here or in another process, may free
 * a slot long before the lease ends.
 */
function rateWait(set: PolicySet, outcomes: readonly Outcome[]): number {
  let wait = 0;
  for (let i = 0; i < outcomes.length; i++) {
    const o = outcomes[i]!;
    const enforced = set.policies[i]!.mode !== 'shadow';
    if (i !== set.holder && enforced && !o.allowed && o.retryAfterMs > wait) wait = o.retryAfterMs;
  }
  return wait;
}

/** The part of `down` that stands for the whole store. */
const WHOLE = '';
/** Distinct keys whose failures are logged before the record starts over. */
const MAX_LOGGED_KEYS = 1000;

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
