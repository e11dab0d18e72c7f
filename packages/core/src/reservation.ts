import { configError } from './errors.js';
import type { Decision } from './types.js';

/**
 * A cost charged up front as an estimate and settled once the actual is known (tokens an LLM call
 * used), made by `limiter.reserve()`. The first `settle` or `release` finishes it; later calls of
 * either change nothing and answer as the first did. Until then the estimate counts, and it stays
 * counted if neither is ever called (TOLLGATE_UNSETTLED says so when the reservation is collected).
 */
export interface Reservation {
  /**
   * The decision on the estimate, an ordinary all-or-nothing consume. When it did not count the
   * estimate (denied, or let through while the store failed), `settle` and `release` change nothing.
   */
  readonly decision: Decision;
  /**
   * Charges `actual - estimate` on every policy, atomically: more units even past the limit (each
   * policy at most its `maxDebt` over its capacity; the Decision's `policies[i].uncharged` tells what
   * was not counted), or units back when `actual` is smaller, to the window that counted the
   * estimate. Answers what a cost-1 request would get now: a key left in debt is denied with the
   * wait until it has drained.
   */
  settle(actual: number): Promise<Decision>;
  /**
   * Gives the whole estimate back: the call did not happen. Settling or releasing also frees the
   * slot the decision holds under a concurrency policy (`decision.release`).
   */
  release(): Promise<void>;
}

/** How a reservation reaches the store that counted it: `delta` units more (fewer when negative). */
export type Settle = (delta: number) => Promise<Decision>;

/** What the finalizer of an unfinished reservation needs: nothing that keeps the reservation alive. */
interface Pending {
  done: boolean;
}

class OpenReservation implements Reservation {
  private result: Promise<Decision> | undefined;

  constructor(
    readonly decision: Decision,
    private readonly estimate: number,
    private readonly apply: Settle | undefined,
    private readonly pending: Pending,
  ) {}

  settle(actual: number): Promise<Decision> {
    if (this.result === undefined) {
      if (typeof actual !== 'number' || !Number.isSafeInteger(actual) || actual < 0) {
        return Promise.reject(
          configError('actual', 'a non-negative integer (the units the call cost)', actual),
        );
      }
      this.result = this.finish(actual - this.estimate);
    }
    return this.result;
  }

  release(): Promise<void> {
    this.result ??= this.finish(-this.estimate);
    return this.result.then(() => undefined);
  }

  /** Keeps the estimate as the cost, without a store call (the HTTP layer, when nothing settles it). */
  keep(): void {
    this.result ??= Promise.resolve(this.decision);
    this.pending.done = true;
  }

  private finish(delta: number): Promise<Decision> {
    this.pending.done = true;
    const { apply, decision } = this;
    // The call is over: the slot of a concurrency policy it held is free, and the settle's answer
    // (what a cost-1 request gets now) says so. So the settle waits for the release: on Redis they
    // are two commands, and sent together they can run out of order (one resent after NOSCRIPT).
    // It goes whatever the release's outcome (a failed one is logged; the slot ends with its lease).
    const released = decision.release?.();
    const settle = () => (apply === undefined ? Promise.resolve(decision) : apply(delta));
    return released === undefined ? settle() : released.then(settle, settle);
  }
}

/**
 * A reservation of `estimate` units decided by `decision`; `apply` reaches the store that counted
 * them (undefined when none did). `dropped` hears of one collected before it was finished.
 */
export function openReservation(
  decision: Decision,
  estimate: number,
  apply: Settle | undefined,
  dropped: FinalizationRegistry<Pending> | undefined,
): Reservation {
  const pending: Pending = { done: apply === undefined };
  const reservation = new OpenReservation(decision, estimate, apply, pending);
  if (apply !== undefined && dropped !== undefined) dropped.register(reservation, pending);
  return reservation;
}

/** Lets the estimate stand as the cost, without a store call. */
export function keepEstimate(reservation: Reservation): void {
  if (reservation instanceof OpenReservation) reservation.keep();
}

/** Calls `warn` for each reservation collected before it was settled or released. */
export function droppedReservations(warn: () => void): FinalizationRegistry<Pending> {
  return new FinalizationRegistry<Pending>((pending) => {
    if (!pending.done) warn();
  });
}
