import type { QuotaReading, QuotaUnit } from './read-headers.js';
import type { ServerClock } from './server-clock.js';

/**
 * How a quota comes back, as far as its answers tell: all at once at the reset (`window`), one
 * unit at a time where the reset is up to two windows away (`sliding`: the last window's calls fade
 * out of the count), or steadily at its rate (`bucket`). `unknown` until an answer tells.
 */
export type QuotaKind = 'unknown' | 'window' | 'sliding' | 'bucket';

/** One quota as the client knows it, for `snapshot()`. */
export interface QuotaSnapshot {
  key: string;
  unit: QuotaUnit;
  limit: number | undefined;
  /** What the client may still spend now: the last stated remaining, less what it sent since. */
  available: number;
  /** Local epoch ms by which the whole quota is back (the latest it can be). */
  resetAt: number | undefined;
  /** Units per second the quota sustains, when known. */
  rate: number | undefined;
  kind: QuotaKind;
}

/**
 * A quota learned from answers, and when the next call may spend from it. The server's word is the
 * last stated `remaining`; calls sent after the answered one are subtracted until a newer answer
 * counts them. Never earlier than the server allows: every estimate here errs late.
 */
export class Quota {
  limit: number | undefined;
  windowMs: number | undefined;
  kind: QuotaKind = 'unknown';
  /** A reset was seen to bring the whole quota back at once. */
  private windowSeen = false;
  /** A window read from the spacing of resets, used to space calls only, never to predict refills. */
  private inferredWindowMs: number | undefined;
  private remaining = 0;
  private seenAt = 0;
  /** Send order of the request whose answer `remaining` is: older answers are stale. */
  private seq = -1;
  /** Cost sent after request `seq`. */
  private spent = 0;
  /** The instant the whole quota is back, as an interval in local ms (hi is never too early). */
  private resetLo = Number.NEGATIVE_INFINITY;
  private resetHi: number | undefined;
  /** Cost this client sent per aligned window (sliding only): the window index and its sum. */
  private readonly spentIn: Array<[number, number]> = [];

  constructor(
    readonly key: string,
    readonly unit: QuotaUnit,
  ) {}

  /** A call of `cost` was sent at `now`. */
  spend(cost: number, now: number): void {
    this.spent += cost;
    const index = this.windowIndex(now);
    if (index === undefined) return;
    const last = this.spentIn[this.spentIn.length - 1];
    if (last !== undefined && last[0] === index) last[1] += cost;
    else {
      this.spentIn.push([index, cost]);
      if (this.spentIn.length > 3) this.spentIn.shift();
    }
  }

  /** An answer to the call sent as `seq`; `spentAfter` is what calls sent after it cost. */
  update(
    reading: QuotaReading,
    seq: number,
    sentAt: number,
    receivedAt: number,
    clock: ServerClock,
    spentAfter: number,
  ): void {
    if (seq < this.seq) return;
    if (reading.limit !== undefined) this.limit = reading.limit;
    if (reading.windowMs !== undefined) this.windowMs = reading.windowMs;
    // A sliding window states when the whole quota is back: up to twice its window.
    if (reading.reset !== undefined && 'delta' in reading.reset && this.windowMs !== undefined) {
      if (reading.reset.delta > this.windowMs) this.kind = 'sliding';
    }
    // Sent after the last answer arrived, answered before that answer's reset, and no less left
    // although this call spent: units came back in between.
    if (
      this.kind !== 'sliding' &&
      this.seq >= 0 &&
      sentAt >= this.seenAt &&
      receivedAt < this.resetLo &&
      reading.remaining >= this.remaining
    ) {
      this.kind = 'bucket';
    }
    // Sent after the last reset, and the quota is whole again although calls went out just before:
    // it came back all at once, a window. (A bucket paced at its rate never shows that.)
    if (
      this.kind === 'window' &&
      this.resetHi !== undefined &&
      sentAt >= this.resetHi &&
      this.limit !== undefined &&
      this.remaining < this.limit - 1 &&
      reading.remaining + spentAfter >= this.limit - 1
    ) {
      this.windowSeen = true;
    }
    if (reading.reset !== undefined) {
      const { lo, hi } = clock.toLocal(reading.reset, sentAt, receivedAt);
      // A window's reset is one instant that every answer within the window brackets (a sliding
      // window's too: two windows after its start): intersecting them pins it down far below the
      // header's one-second grain. A bucket's moves with every call: until a reset was seen to
      // bring the whole quota back at once, it might be one.
      // More left than before means a new window, whose reset is a new instant.
      const sameWindow = reading.remaining <= this.remaining;
      if (
        (this.windowSeen || this.kind === 'sliding') &&
        sameWindow &&
        this.resetHi !== undefined &&
        lo <= this.resetHi &&
        hi >= this.resetLo
      ) {
        this.resetLo = Math.max(this.resetLo, lo);
        this.resetHi = Math.min(this.resetHi, hi);
      } else {
        // A window's next reset is one window after the last: where the server does not state the
        // window (`X-RateLimit-*`), that jump is the window.
        if (
          reading.windowMs === undefined &&
          this.kind === 'window' &&
          this.resetHi !== undefined &&
          lo > this.resetHi
        ) {
          this.inferredWindowMs = hi - this.resetHi;
        }
        this.resetLo = lo;
        this.resetHi = hi;
      }
    }
    if (this.kind === 'unknown' && reading.reset !== undefined) this.kind = 'window';
    this.remaining = reading.remaining;
    this.seenAt = receivedAt;
    this.seq = seq;
    this.spent = spentAfter;
  }

  /** Units per millisecond the quota sustains, when it can be told. */
  rate(): number | undefined {
    if (this.limit === undefined) return undefined;
    if (this.windowMs !== undefined) return this.limit / this.windowMs;
    if (this.kind === 'window' && this.inferredWindowMs !== undefined)
      return this.limit / this.inferredWindowMs;
    // A bucket with no stated window refills what is missing by its reset.
    if (this.kind === 'bucket' && this.resetHi !== undefined && this.resetHi > this.seenAt) {
      return this.remaining < this.limit
        ? (this.limit - this.remaining) / (this.resetHi - this.seenAt)
        : undefined;
    }
    return undefined;
  }

  /** Units per ms that come back now: a bucket's rate; a sliding window's last window fading out. */
  private refillRate(now: number): number | undefined {
    if (this.kind === 'bucket') return this.rate();
    if (this.kind !== 'sliding' || this.windowMs === undefined) return undefined;
    // The previous window's count fades over this one. Only this client's own calls in it are
    // known (others only add to it, and so to the refill): the lower bound of both windows spanned.
    const from = this.windowIndex(this.seenAt);
    const to = this.windowIndex(now);
    if (from === undefined || to === undefined) return undefined;
    let least = Number.POSITIVE_INFINITY;
    for (let index = from; index <= to; index++) {
      least = Math.min(least, this.spentIn.find(([i]) => i === index - 1)?.[1] ?? 0);
    }
    return least > 0 ? least / this.windowMs : undefined;
  }

  /** Aligned window number of `at`, from the sliding window's reset (a window boundary). */
  private windowIndex(at: number): number | undefined {
    if (this.kind !== 'sliding' || this.windowMs === undefined || this.resetHi === undefined)
      return undefined;
    const phase = this.resetHi % this.windowMs;
    return Math.floor((at - phase) / this.windowMs);
  }

  available(now: number): number {
    const left = this.remaining - this.spent;
    if (this.resetHi !== undefined && now >= this.resetHi) return (this.limit ?? this.remaining) - this.spent;
    const rate = this.refillRate(now);
    if (rate === undefined) return left;
    return Math.min(this.limit ?? Number.POSITIVE_INFINITY, left + (now - this.seenAt) * rate);
  }

  /**
   * The earliest local time a call costing `cost` may be sent, given the last send at `lastSentAt`:
   * once enough is available, and spaced so that what is left lasts until the reset (or, with a
   * known rate, no faster than the quota sustains). May be in the past. `Infinity` when the cost
   * can never fit.
   */
  readyAt(now: number, cost: number, lastSentAt: number): number {
    if (cost <= 0) return Number.NEGATIVE_INFINITY;
    if (this.limit !== undefined && cost > this.limit) return Number.POSITIVE_INFINITY;
    const available = this.available(now);
    if (available < cost) {
      const refill = this.refillRate(now);
      const refilled = refill === undefined ? undefined : now + (cost - available) / refill;
      if (this.resetHi !== undefined && this.resetHi > now)
        return Math.min(refilled ?? this.resetHi, this.resetHi);
      if (refilled !== undefined) return Math.max(refilled, now);
      // Spent out with no word on when more comes (or past the last reset with the new window's
      // share sent already): wait for an answer, or probe once a second (a 429's Retry-After or
      // backoff takes over if that is too early).
      return Math.max(this.seenAt, lastSentAt) + 1000;
    }
    const rate = this.rate();
    let interval = rate === undefined ? Number.POSITIVE_INFINITY : cost / rate;
    if (this.resetHi !== undefined && this.resetLo > now) {
      interval = Math.min(interval, (cost * (this.resetLo - now)) / available);
    }
    return Number.isFinite(interval) ? lastSentAt + interval : Number.NEGATIVE_INFINITY;
  }

  snapshot(now: number): QuotaSnapshot {
    const rate = this.rate();
    return {
      key: this.key,
      unit: this.unit,
      limit: this.limit,
      available: Math.max(0, Math.floor(this.available(now))),
      resetAt: this.resetHi,
      rate: rate === undefined ? undefined : rate * 1000,
      kind: this.kind,
    };
  }
}
