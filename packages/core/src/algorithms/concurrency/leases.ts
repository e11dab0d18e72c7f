import type { LeaseSet } from '../types.js';

/**
 * The leases of one (policy, key) in the MemoryStore, sorted by when they end: two parallel arrays
 * (ids, ends), searched by bisection. At most `limit` entries (the kernel admits a request only
 * while fewer are live, and `add` first drops the ended ones), so a release's linear search for its
 * id stays short.
 */
export class Leases implements LeaseSet {
  private readonly ids: string[] = [];
  private readonly ends: number[] = [];

  get size(): number {
    return this.ends.length;
  }

  live(now: number): number {
    return this.ends.length - this.after(now);
  }

  firstEnd(now: number): number {
    const i = this.after(now);
    return i < this.ends.length ? this.ends[i]! : Number.POSITIVE_INFINITY;
  }

  lastEnd(): number {
    return this.ends.length === 0 ? Number.NEGATIVE_INFINITY : this.ends[this.ends.length - 1]!;
  }

  add(id: string, now: number, end: number): void {
    const ended = this.after(now);
    if (ended > 0) {
      this.ids.splice(0, ended);
      this.ends.splice(0, ended);
    }
    const at = this.after(end);
    this.ids.splice(at, 0, id);
    this.ends.splice(at, 0, end);
  }

  remove(id: string): boolean {
    const i = this.ids.indexOf(id);
    if (i < 0) return false;
    this.ids.splice(i, 1);
    this.ends.splice(i, 1);
    return true;
  }

  /** The index of the first lease that ends after `t` (a lease ending at `t` has ended at `t`). */
  private after(t: number): number {
    const { ends } = this;
    let lo = 0;
    let hi = ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ends[mid]! <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
