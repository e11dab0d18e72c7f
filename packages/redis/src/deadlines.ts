/** One call waiting for Redis. */
export interface Pending<T = unknown> {
  at: number;
  done: boolean;
  /** What the owner needs to fail the call when it expires. */
  readonly data: T;
}

const now = () => performance.now();

/**
 * Timeouts for calls in flight, with one timer for all of them instead of one per call. Every call
 * gets the same timeout, so deadlines come in order: a FIFO queue whose head is the next to expire.
 */
export class Deadlines<T> {
  private queue: (Pending<T> | undefined)[] = [];
  private head = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** `expire` runs for every call not settled within `timeoutMs`. */
  constructor(
    private readonly timeoutMs: number,
    private readonly expire: (data: T) => void,
  ) {}

  /** Starts the clock on a call. */
  add(data: T): Pending<T> {
    const pending: Pending<T> = { at: now() + this.timeoutMs, done: false, data };
    this.queue.push(pending);
    if (this.timer === undefined) this.arm(this.timeoutMs);
    return pending;
  }

  /** Marks a call answered; false if it had already timed out. */
  settle(pending: Pending<T>): boolean {
    if (pending.done) return false;
    pending.done = true;
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

  private fire(): void {
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
      this.expire(first.data);
    }
  }
}
