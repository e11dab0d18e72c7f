/** One call waiting for Redis, as the timeouts see it; the owner's own object, extended. */
export interface Pending {
  /** performance.now() past which the call has timed out (set by `add`). */
  at: number;
  /** Answered or timed out: whichever comes first wins. */
  done: boolean;
}

const now = () => performance.now();

/**
 * Timeouts for calls in flight, with one timer for all of them instead of one per call. Every call
 * gets the same timeout, so deadlines come in order: a FIFO queue whose head is the next to expire.
 */
export class Deadlines<P extends Pending> {
  private queue: (P | undefined)[] = [];
  private head = 0;
  /** Calls neither answered nor timed out. */
  pending = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** `expire` runs for every call not settled within `timeoutMs`. */
  constructor(
    private readonly timeoutMs: number,
    private readonly expire: (pending: P) => void,
  ) {}

  /** Starts the clock on a call. */
  add(pending: P): void {
    pending.at = now() + this.timeoutMs;
    pending.done = false;
    this.pending++;
    this.queue.push(pending);
    if (this.timer === undefined) this.arm(this.timeoutMs);
  }

  /** Marks a call answered; false if it had already timed out. */
  settle(pending: P): boolean {
    if (pending.done) return false;
    pending.done = true;
    this.pending--;
    this.drain();
    return true;
  }

  private drain(): void {
    const { queue } = this;
    while (this.head < queue.length && queue[this.head]!.done) queue[this.head++] = undefined;
    if (this.head === queue.length) {
      queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > queue.length) {
      this.queue = queue.slice(this.head);
      this.head = 0;
    }
  }

  private arm(delayMs: number): void {
    this.timer = setTimeout(() => this.fire(), delayMs);
    // A pending Redis call keeps the process alive through its socket, not through this timer.
    this.timer.unref();
  }

  /**
   * The timer is due, but a loop kept busy past the deadline (a burst of requests to handle) may
   * have replies waiting unread in the socket: the timers phase runs before the poll phase that
   * reads them. So the calls are expired in the check phase after it (`setImmediate`), and only those
   * still unanswered then: a reply that has arrived is never discarded for a late timer (issue 9).
   */
  private fire(): void {
    setImmediate(this.expireDue);
  }

  private readonly expireDue = (): void => {
    this.timer = undefined;
    const t = now();
    for (;;) {
      this.drain();
      const first = this.queue[this.head];
      if (first === undefined) return;
      if (first.at > t) {
        this.arm(Math.max(1, Math.ceil(first.at - t)));
        return;
      }
      first.done = true;
      this.pending--;
      this.expire(first);
    }
  };
}
