import { createHmac, randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  DECISION_CHANNEL,
  DECISION_RESULTS,
  type DecisionMessage,
  type DecisionResult,
  STORE_ERROR_CHANNEL,
  STORE_RECOVERED_CHANNEL,
  type StoreErrorMessage,
  type StoreRecoveredMessage,
} from '../events.js';
import type { PolicySet, ResolvedPolicy } from '../types.js';
import { SecondRing } from './ring.js';
import { type DeniedResult, TopKeys } from './top-keys.js';

/** What a decision amounted to, as `tollgate:decision` says; the dashboard's columns, in this order. */
export const RESULTS: readonly DecisionResult[] = DECISION_RESULTS;
const COLUMN: Readonly<Record<string, number>> = Object.fromEntries(RESULTS.map((r, i) => [r, i]));

/** Limiters tracked by name; past this, decisions still count in the totals but get no row. */
const MAX_LIMITERS = 64;
/** Policies tracked per limiter (tiers bring several sets under one limiter). */
const MAX_POLICIES = 16;
/** Keys held in the most-denied table, and how many of them the page shows. */
const TOP_KEYS_HELD = 64;
const TOP_KEYS_SHOWN = 10;
/** A key not denied for this long leaves the table. */
const TOP_KEYS_IDLE_MS = 10 * 60_000;
/** Utilisation is the hottest key's share of the limit over this many seconds. */
const PEAK_SECONDS = 10;
/** An error message shown on the page is cut here (messages can quote a whole Redis reply). */
const MAX_ERROR_LENGTH = 200;

class PolicyStats {
  /**
   * Per second: [the hottest key's used / limit, denials this policy bound]; for a shadow policy,
   * the requests it would have denied.
   */
  readonly ring = new SecondRing(2);
  constructor(
    readonly name: string,
    readonly algorithm: string,
    readonly mode: string,
    readonly limit: number,
    readonly windowMs: number,
    readonly calendar: string | undefined,
  ) {}
}

class StoreHealth {
  failing = false;
  since = 0;
  errors = 0;
  scope = '';
  lastError = '';
  lastErrorAt = 0;
  recoveredAt = 0;
  lastDownMs = 0;
  lastFallbackAt = 0;
}

class LimiterStats {
  readonly ring = new SecondRing(RESULTS.length);
  readonly total = new Float64Array(RESULTS.length);
  readonly policies = new Map<string, PolicyStats>();
  readonly store = new StoreHealth();
  constructor(
    readonly name: string,
    readonly configured: boolean,
  ) {}

  policy(p: ResolvedPolicy, limit: number): PolicyStats | undefined {
    let stats = this.policies.get(p.name);
    if (stats === undefined && this.policies.size < MAX_POLICIES) {
      stats = new PolicyStats(p.name, p.algorithm, p.mode, limit, p.window, p.calendar?.unit);
      this.policies.set(p.name, stats);
    }
    return stats;
  }
}

/** One limiter's row on the page. */
export interface LimiterSnapshot {
  name: string;
  /** Given in the dashboard's `limiters` option (shown even before its first decision). */
  configured: boolean;
  /** Decisions by result over the last 60 s, in RESULTS order. */
  lastMinute: number[];
  /** Decisions by result since the dashboard started, in RESULTS order. */
  total: number[];
  policies: {
    name: string;
    algorithm: string;
    /** `'shadow'`: `limited` counts the requests it would have denied. */
    mode: string;
    limit: number;
    windowMs: number;
    /** A calendar window's unit (`'month'`): `windowMs` is then only its nominal length. */
    calendar?: string;
    /** The hottest key's used / limit over the last 10 s (0 to 1). */
    peak: number;
    /** Denials this policy bound (would have, for shadow) over 60 s, and their share of the limiter's decisions. */
    limited: number;
    limitedShare: number;
  }[];
  store: {
    state: 'ok' | 'failing';
    /** While failing: since when (epoch ms); with a fallback store answering meanwhile. */
    since?: number;
    fallback: boolean;
    errors: number;
    scope?: string;
    lastError?: string;
    lastErrorAt?: number;
    recoveredAt?: number;
    lastDownMs?: number;
  };
}

/** One most-denied key: never the key itself, a label (see `keyLabel`). */
export interface KeySnapshot {
  limiter: string;
  /** `ip`, `api key`, `header x-org`, or `custom`: the kind of key, from its built-in prefix. */
  kind: string;
  /** HMAC-SHA-256 of the key under a secret made per dashboard, first 12 hex digits. */
  label: string;
  count: number;
  limited: number;
  banned: number;
  shadowLimited: number;
  lastSeen: number;
}

/** What the page receives each tick (Server-Sent Events) and `GET <path>/data` answers. */
export interface Snapshot {
  now: number;
  results: readonly DecisionResult[];
  /** 60 rows of decisions by result, oldest first; the last row is the current (partial) second. */
  series: number[][];
  /** Decisions by result since the dashboard started. */
  total: number[];
  limiters: LimiterSnapshot[];
  topKeys: KeySnapshot[];
}

/**
 * Subscribes to the decision and store events while started and folds them into fixed-size
 * per-second rings, a most-denied-keys table and per-limiter store health: its memory is bounded
 * whatever the traffic. `only`, when given, limits the rows to those limiters.
 */
export class Collector {
  private readonly ring = new SecondRing(RESULTS.length);
  private readonly total = new Float64Array(RESULTS.length);
  private readonly limiters = new Map<string, LimiterStats>();
  private readonly topKeys = new TopKeys(TOP_KEYS_HELD, TOP_KEYS_IDLE_MS);
  private readonly secret = randomBytes(32);
  private readonly only: ReadonlySet<string> | undefined;
  private started = false;

  constructor(
    configured: readonly { name: string; policies: PolicySet | undefined }[] | undefined,
    private readonly clock: () => number = Date.now,
  ) {
    if (configured === undefined) return;
    this.only = new Set(configured.map((l) => l.name));
    for (const { name, policies } of configured) {
      const stats = this.limiters.get(name) ?? new LimiterStats(name, true);
      this.limiters.set(name, stats);
      for (const p of policies?.policies ?? []) stats.policy(p, p.burst);
    }
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    subscribe(DECISION_CHANNEL, this.onDecision);
    subscribe(STORE_ERROR_CHANNEL, this.onStoreError);
    subscribe(STORE_RECOVERED_CHANNEL, this.onStoreRecovered);
  }

  stop(): void {
    if (!this.started) return;
    this.started = false;
    unsubscribe(DECISION_CHANNEL, this.onDecision);
    unsubscribe(STORE_ERROR_CHANNEL, this.onStoreError);
    unsubscribe(STORE_RECOVERED_CHANNEL, this.onStoreRecovered);
  }

  private readonly onDecision = (message: unknown): void => {
    const { limiter, key, decision, result } = message as DecisionMessage;
    const column = COLUMN[result];
    if (column === undefined || (this.only !== undefined && !this.only.has(limiter))) return;
    const now = this.clock();
    const second = Math.floor(now / 1000);
    this.ring.data[this.ring.row(second) + column]!++;
    this.total[column]!++;
    if (result === 'limited' || result === 'banned' || result === 'shadow_limited') {
      this.topKeys.add(limiter, key, result as DeniedResult, now);
    }
    const stats = this.stats(limiter);
    if (stats === undefined) return;
    stats.ring.data[stats.ring.row(second) + column]!++;
    stats.total[column]!++;
    if (result === 'fallback') stats.store.lastFallbackAt = now;
    // Open decisions (no store answered) say nothing about how full a key is.
    if (result === 'store_error') return;
    const { shadowLimited } = decision;
    for (const status of decision.policies) {
      const p = stats.policy(status.policy, status.limit);
      if (p === undefined || status.limit <= 0) continue;
      const row = p.ring.row(second);
      const used = Math.min(1, Math.max(0, (status.limit - status.remaining) / status.limit));
      if (used > p.ring.data[row]!) p.ring.data[row] = used;
      const denied =
        p.mode === 'shadow'
          ? shadowLimited?.includes(status.name) === true
          : result === 'limited' && decision.policy.name === status.name;
      if (denied) p.ring.data[row + 1]!++;
    }
  };

  private readonly onStoreError = (message: unknown): void => {
    const { limiter, error, scope } = message as StoreErrorMessage;
    const stats = this.stats(limiter);
    if (stats === undefined) return;
    const store = stats.store;
    const now = this.clock();
    if (!store.failing) {
      store.failing = true;
      store.since = now;
    }
    store.errors++;
    store.scope = String(scope);
    store.lastErrorAt = now;
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    store.lastError = text.length > MAX_ERROR_LENGTH ? `${text.slice(0, MAX_ERROR_LENGTH)}…` : text;
  };

  private readonly onStoreRecovered = (message: unknown): void => {
    const { limiter, downMs } = message as StoreRecoveredMessage;
    const stats = this.stats(limiter);
    if (stats === undefined) return;
    stats.store.failing = false;
    stats.store.recoveredAt = this.clock();
    stats.store.lastDownMs = Number(downMs) || 0;
  };

  private stats(limiter: string): LimiterStats | undefined {
    let stats = this.limiters.get(limiter);
    if (stats === undefined && this.only === undefined && this.limiters.size < MAX_LIMITERS) {
      stats = new LimiterStats(String(limiter), false);
      this.limiters.set(limiter, stats);
    }
    return stats;
  }

  snapshot(): Snapshot {
    const now = this.clock();
    const second = Math.floor(now / 1000);
    return {
      now,
      results: RESULTS,
      series: this.ring.rows(second),
      total: Array.from(this.total),
      limiters: [...this.limiters.values()].map((stats) => this.limiterSnapshot(stats, second)),
      topKeys: this.topKeys.top(TOP_KEYS_SHOWN, now).map((entry) => ({
        limiter: entry.limiter,
        kind: keyKind(entry.key),
        label: this.keyLabel(entry.key),
        count: entry.count,
        limited: entry.limited,
        banned: entry.banned,
        shadowLimited: entry.shadowLimited,
        lastSeen: entry.lastSeen,
      })),
    };
  }

  /** A stable, unlinkable name for a key: an HMAC under this dashboard's own random secret. */
  keyLabel(key: string): string {
    return createHmac('sha256', this.secret).update(key, 'utf16le').digest('hex').slice(0, 12);
  }

  private limiterSnapshot(stats: LimiterStats, second: number): LimiterSnapshot {
    const lastMinute = RESULTS.map((_, column) => stats.ring.over(column, second, 60));
    const decisions = lastMinute.reduce((a, b) => a + b, 0);
    const { store } = stats;
    return {
      name: stats.name,
      configured: stats.configured,
      lastMinute,
      total: Array.from(stats.total),
      policies: [...stats.policies.values()].map((p) => {
        const limited = p.ring.over(1, second, 60);
        return {
          name: p.name,
          algorithm: p.algorithm,
          mode: p.mode,
          limit: p.limit,
          windowMs: p.windowMs,
          ...(p.calendar === undefined ? {} : { calendar: p.calendar }),
          peak: p.ring.over(0, second, PEAK_SECONDS, true),
          limited,
          limitedShare: decisions === 0 ? 0 : limited / decisions,
        };
      }),
      store: {
        state: store.failing ? 'failing' : 'ok',
        fallback: store.failing && store.lastFallbackAt >= store.since,
        errors: store.errors,
        ...(store.failing ? { since: store.since } : {}),
        ...(store.errors > 0
          ? { scope: store.scope, lastError: store.lastError, lastErrorAt: store.lastErrorAt }
          : {}),
        ...(store.recoveredAt > 0 ? { recoveredAt: store.recoveredAt, lastDownMs: store.lastDownMs } : {}),
      },
    };
  }
}

/** The kind of a key from the prefixes of the built-in key helpers (`ip:`, `key:`, `hdr:<name>:`). */
export function keyKind(key: string): string {
  if (key.startsWith('ip:')) return 'ip';
  if (key.startsWith('key:')) return 'api key';
  const header = /^hdr:([a-z0-9-]{1,40}):/.exec(key);
  return header === null ? 'custom' : `header ${header[1]}`;
}
