import { keyDigest } from '../key-digest.js';

/** Keys longer than this are held as their digest: a flood of 15 KB keys holds K digests, no more. */
const MAX_HELD_KEY_LENGTH = 100;

/** One tracked key: how often it was denied, by how, and when last. */
export interface TopKeyEntry {
  readonly limiter: string;
  /** The key as held (a digest past MAX_HELD_KEY_LENGTH); never leaves the process. */
  readonly key: string;
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
 * present. Entries not seen for `idleMs` leave at the next `top()`.
 */
export class TopKeys {
  private readonly entries = new Map<string, TopKeyEntry>();

  constructor(
    readonly capacity: number,
    private readonly idleMs: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  add(limiter: string, rawKey: string, result: DeniedResult, now: number): void {
    const key = rawKey.length > MAX_HELD_KEY_LENGTH ? `#${keyDigest(rawKey)}` : rawKey;
    const id = `${limiter}\u0000${key}`;
    let entry = this.entries.get(id);
    if (entry === undefined) {
      let error = 0;
      if (this.entries.size >= this.capacity) {
        const [minId, min] = this.least();
        this.entries.delete(minId);
        error = min.count;
      }
      entry = { limiter, key, count: error, error, limited: 0, banned: 0, shadowLimited: 0, lastSeen: now };
      this.entries.set(id, entry);
    }
    entry.count++;
    entry.lastSeen = now;
    if (result === 'limited') entry.limited++;
    else if (result === 'banned') entry.banned++;
    else entry.shadowLimited++;
  }

  /** The `n` most-denied keys seen within `idleMs`, most first (ties: most recent first). */
  top(n: number, now: number): TopKeyEntry[] {
    for (const [id, entry] of this.entries) {
      if (now - entry.lastSeen > this.idleMs) this.entries.delete(id);
    }
    return [...this.entries.values()]
      .sort((a, b) => b.count - a.count || b.lastSeen - a.lastSeen)
      .slice(0, n);
  }

  /** The least counted entry, the least recent among equals. A linear scan: `capacity` is small (64) and it runs only when a new key meets a full table. */
  private least(): [string, TopKeyEntry] {
    let found: [string, TopKeyEntry] | undefined;
    for (const pair of this.entries) {
      const [, entry] = pair;
      if (
        found === undefined ||
        entry.count < found[1].count ||
        (entry.count === found[1].count && entry.lastSeen < found[1].lastSeen)
      ) {
        found = pair;
      }
    }
    return found!;
  }
}
