import { keyDigest } from '../key-digest.js';

/** Keys longer than this are held as their digest: a flood of 15 KB keys holds K digests, no more. */
const MAX_HELD_KEY_LENGTH = 100;

/** One tracked key: how often it was denied, by how, and when last. */
export interface TopKeyEntry {
  limiter: string;
  /** The key as held (a digest past MAX_HELD_KEY_LENGTH); never leaves the process. */
  key: string;
  /** Denials counted since the key entered the table (an over-estimate by at most `error`). */
  count: number;
  /** Space-Saving's bound on the over-estimate: the count of the key this one replaced. */
  error: number;
  limited: number;
  banned: number;
  shadowLimited: number;
  lastSeen: number;
}

export type DeniedResult = 'limited' | 'banned' | 'shadow_limited';

/**
 * The most-denied keys in a fixed-size table (Space-Saving, Metwally et al. 2005): at most
 * `capacity` entries whatever the traffic; a new key replaces the least counted one and inherits
 * its count as `error`, so a key denied more often than count / capacity of all denials is always
 * present. Entries not seen for `idleMs` leave at the next `top()`. A flood of distinct keys
 * allocates nothing per denial: the replaced entry is reused.
 */
export class TopKeys {
  /** Every entry, for the scan for the least counted one. */
  private entries: TopKeyEntry[] = [];
  /** The same entries by limiter, then key (no string joined per denial to look one up). */
  private readonly byLimiter = new Map<string, Map<string, TopKeyEntry>>();
  /** No entry counts less than this (see `least`). */
  private floor = 0;
  /** Where the next scan for the least counted entry starts. */
  private cursor = 0;

  constructor(
    readonly capacity: number,
    private readonly idleMs: number,
  ) {}

  get size(): number {
    return this.entries.length;
  }

  add(limiter: string, rawKey: string, result: DeniedResult, now: number): void {
    const key = rawKey.length > MAX_HELD_KEY_LENGTH ? `#${keyDigest(rawKey)}` : rawKey;
    let keys = this.byLimiter.get(limiter);
    if (keys === undefined) {
      keys = new Map();
      this.byLimiter.set(limiter, keys);
    }
    let entry = keys.get(key);
    if (entry === undefined) {
      if (this.entries.length < this.capacity) {
        entry = { limiter, key, count: 0, error: 0, limited: 0, banned: 0, shadowLimited: 0, lastSeen: now };
        this.entries.push(entry);
        this.floor = 0;
      } else {
        entry = this.least();
        this.forget(entry);
        entry.limiter = limiter;
        entry.key = key;
        entry.error = entry.count;
        entry.limited = entry.banned = entry.shadowLimited = 0;
      }
      keys.set(key, entry);
    }
    entry.count++;
    entry.lastSeen = now;
    if (result === 'limited') entry.limited++;
    else if (result === 'banned') entry.banned++;
    else entry.shadowLimited++;
  }

  /** The `n` most-denied keys seen within `idleMs`, most first (ties: most recent first); copies. */
  top(n: number, now: number): TopKeyEntry[] {
    const idle = this.entries.filter((entry) => now - entry.lastSeen > this.idleMs);
    for (const entry of idle) this.forget(entry);
    if (idle.length > 0) {
      this.entries = this.entries.filter((entry) => now - entry.lastSeen <= this.idleMs);
      this.cursor = 0;
    }
    return [...this.entries]
      .sort((a, b) => b.count - a.count || b.lastSeen - a.lastSeen)
      .slice(0, n)
      .map((entry) => ({ ...entry }));
  }

  /** Removes `entry` from the lookup maps (not from `entries`). */
  private forget(entry: TopKeyEntry): void {
    const keys = this.byLimiter.get(entry.limiter);
    keys?.delete(entry.key);
    if (keys?.size === 0) this.byLimiter.delete(entry.limiter);
  }

  /**
   * A least counted entry. Counts only grow, so `floor` (no entry counts less) lets the scan stop at
   * the first entry at the floor, resuming after the last one taken: under a flood of new keys,
   * where many entries share the least count, a replacement reads a few entries, not all 64.
   */
  private least(): TopKeyEntry {
    const n = this.entries.length;
    let best = -1;
    for (let step = 0; step < n; step++) {
      const i = (this.cursor + step) % n;
      const count = this.entries[i]!.count;
      if (count <= this.floor) {
        best = i;
        break;
      }
      if (best === -1 || count < this.entries[best]!.count) best = i;
    }
    const entry = this.entries[best]!;
    this.floor = entry.count;
    this.cursor = (best + 1) % n;
    return entry;
  }
}
