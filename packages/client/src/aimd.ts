import type { ResolvedAimd } from './options.js';

/**
 * Additive increase, multiplicative decrease, for servers that state no quota: the rate grows by
 * `increaseStep` calls/s per second while calls succeed, and is cut by `decreaseFactor` on a
 * `backoffStatus` answer. After a cut the rate holds for `cooldown`: the answers to calls already
 * in flight tell of the same overload and must not cut it again.
 */
export class Aimd {
  rate: number;
  /**
   * Whether it paces. Configured AIMD paces from the first call; the fallback (no `aimd` option)
   * waits, dormant, for the first backoff status that finds calls going out faster than `minRate`.
   */
  engaged: boolean;
  private cutAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: ResolvedAimd) {
    this.rate = options.initialRate;
    this.engaged = !options.fallback;
  }

  backsOff(status: number): boolean {
    return this.options.backoffStatus.has(status);
  }

  /** An answer that is not a backoff status. */
  succeeded(now: number): void {
    if (!this.engaged) return;
    if (now - this.cutAt < this.options.cooldown) return;
    // `rate` successes arrive per second at this rate, so each adds step / rate.
    this.rate = Math.min(this.options.maxRate, this.rate + this.options.increaseStep / this.rate);
  }

  /**
   * A backoff status (429, 503 by default). `observed`: calls sent in the last second, from which
   * a dormant fallback starts (cut by `decreaseFactor`, as any backoff cuts).
   */
  limited(now: number, observed: number): void {
    if (!this.engaged) {
      if (observed <= this.options.minRate) return;
      this.engaged = true;
      this.rate = Math.min(this.options.maxRate, observed);
    }
    if (now - this.cutAt < this.options.cooldown) return;
    this.rate = Math.max(this.options.minRate, this.rate * this.options.decreaseFactor);
    this.cutAt = now;
  }

  /** Until when the rate holds after a cut, or undefined. */
  cooldownUntil(now: number): number | undefined {
    const until = this.cutAt + this.options.cooldown;
    return until > now ? until : undefined;
  }

  /** Milliseconds between calls at the current rate. */
  get interval(): number {
    return 1000 / this.rate;
  }
}
