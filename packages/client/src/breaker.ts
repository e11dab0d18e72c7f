import { CircuitOpenError } from './errors.js';
import { breakerChannel } from './events.js';
import type { ResolvedBreaker } from './options.js';

/** A circuit breaker's state: calls go (`closed`), fail fast (`open`), or one probe goes (`half-open`). */
export type BreakerState = 'closed' | 'open' | 'half-open';

/**
 * A circuit breaker for one origin (or one model of it): `failures` failed calls (or timeouts) in a row open it; while open, calls
 * fail at once with `CircuitOpenError`, unsent; after `resetAfter` one call goes through as a probe
 * (half-open), and its outcome closes or reopens it.
 */
export class Breaker {
  state: BreakerState = 'closed';
  private failed = 0;
  private openedAt = 0;
  private probing = false;

  constructor(
    readonly origin: string,
    /** The model this breaker guards (with `perModel`), else undefined: the whole origin. */
    readonly model: string | undefined,
    private readonly options: ResolvedBreaker,
  ) {}

  /** Throws while open (or while the half-open probe is out); otherwise lets the call go. */
  admit(now: number): void {
    if (this.state === 'closed') return;
    if (this.state === 'open') {
      const until = this.openedAt + this.options.resetAfter;
      if (now < until) throw new CircuitOpenError(this.origin, until, this.model);
      this.set('half-open');
    }
    if (this.probing) throw new CircuitOpenError(this.origin, now, this.model);
    this.probing = true;
  }

  /** The outcome of an admitted call. */
  record(ok: boolean, now: number): void {
    this.probing = false;
    if (ok) {
      this.failed = 0;
      if (this.state !== 'closed') this.set('closed');
      return;
    }
    this.failed++;
    if (this.state === 'half-open' || this.failed >= this.options.failures) {
      this.openedAt = now;
      if (this.state !== 'open') this.set('open');
    }
  }

  /** An admitted call ended without an outcome (aborted, or never sent): the probe slot is free. */
  release(): void {
    this.probing = false;
  }

  isFailure(status: number): boolean {
    return this.options.failureStatus(status);
  }

  private set(state: BreakerState): void {
    this.state = state;
    if (breakerChannel.hasSubscribers) {
      breakerChannel.publish({
        origin: this.origin,
        ...(this.model === undefined ? {} : { model: this.model }),
        state,
      });
    }
  }
}
