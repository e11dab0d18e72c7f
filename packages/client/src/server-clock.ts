import type { When } from './header-values.js';

/** How far behind a `Date` may be and still be taken for a stale copy rather than a clock set back. */
const STALE_DATE_MS = 5000;
/**
 * How far a `Date` may be from our clock and still be taken for the server's: a day. Beyond that
 * it is broken (a gateway's clock at 1970, a cached date from years ago), not a skew to correct:
 * it is ignored, and the server's times are read on our clock.
 */
export const MAX_SKEW_MS = 86_400_000;

/**
 * The offset of one server's clock from ours, as an interval narrowed by every `Date` it sends.
 * `Date` has whole seconds, so one response says only that the server's clock read [D, D + 1 s)
 * when it answered; responses at different sub-second phases narrow that down. A server whose
 * clock is 30 s off then has its epoch resets and HTTP-date `Retry-After`s read 30 s off too.
 */
export class ServerClock {
  /** skew = server time − local time, within [lo, hi]. Unknown (no `Date` yet) reads as 0. */
  private lo = 0;
  private hi = 0;
  private known = false;

  observe(date: number | undefined, receivedAt: number): void {
    if (date === undefined || Math.abs(date - receivedAt) > MAX_SKEW_MS) return;
    const lo = date - receivedAt;
    const hi = lo + 1000;
    // Above what we knew: the server's clock was set forward (or an earlier `Date` was stale). Far
    // below: set back. A little below: a `Date` cached by the server a moment too long (Node's
    // is refreshed by a timer, late under load), which says nothing new.
    if (!this.known || lo > this.hi || hi < this.lo - STALE_DATE_MS) {
      this.lo = lo;
      this.hi = hi;
      this.known = true;
      return;
    }
    this.lo = Math.max(this.lo, lo);
    this.hi = Math.max(this.lo, Math.min(this.hi, hi));
  }

  /** The server's clock minus ours, the lower bound (what an instant's latest local time uses). */
  get skew(): number {
    return this.lo;
  }

  /** The server's clock minus ours, as an interval: [0, 0] before any `Date`. */
  get skewRange(): [number, number] {
    return [this.lo, this.hi];
  }

  /**
   * Local epoch-ms bounds of `when`, for a response to a request sent at `sentAt` and received at
   * `receivedAt` (the server decided somewhere in between). `hi` is never earlier than the truth.
   */
  toLocal(when: When, sentAt: number, receivedAt: number): { lo: number; hi: number } {
    if ('delta' in when) return { lo: sentAt + when.delta - when.grain, hi: receivedAt + when.delta };
    if (!this.known) return { lo: when.server - when.grain, hi: when.server };
    return { lo: when.server - when.grain - this.hi, hi: when.server - this.lo };
  }
}
