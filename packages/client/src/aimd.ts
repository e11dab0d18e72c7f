import type { ResolvedAimd } from './options.js';

/**
 * Additive increase, multiplicative decrease, for servers that state no quota: the rate grows by
 * `increaseStep` calls/s per second while calls succeed, and is cut by `decreaseFactor` on a
 * `backoffStatus` answer. After a cut the rate holds for `cooldown`: the answers to calls already
 * in flight tell of the same overload and must not cut it again.
 */
export class Aimd {
  rate: number;
  private cutAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: ResolvedAimd) {
    this.rate = options.initialRate;
  }

  backsOff(status: number): boolean {
    return this.options.backoffStatus.has(status);
  }

  /** An answer that is not a backoff status. */
  succeeded(now: number): void {
    if (now - this.cutAt < this.options.cooldown) return;
    // `rate` successes arrive per second at this rate, so each adds step / rate.
    this.rate = Math.min(this.options.maxRate, this.rate + this.options.increaseStep / this.rate);
  }

  /** A backoff status (429, 503 by default). */
  limited(now: number): void {
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
