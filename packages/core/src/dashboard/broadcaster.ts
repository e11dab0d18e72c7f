/** The part of a `ServerResponse` a stream writes to. */
export interface StreamResponse {
  write(chunk: string): boolean;
  end(): unknown;
  readonly writableNeedDrain: boolean;
  once(event: 'close', listener: () => void): unknown;
}

/**
 * The open Server-Sent Events streams of one dashboard and the one timer that feeds them: started
 * (unref'd) with the first stream, stopped with the last, so a dashboard nobody watches costs no
 * timer. A stream whose client reads slower than it is fed skips frames instead of buffering them.
 */
export class Broadcaster {
  private readonly streams = new Set<StreamResponse>();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly frame: () => string,
  ) {}

  /** Open streams. */
  get size(): number {
    return this.streams.size;
  }

  /** Whether the timer runs. */
  get running(): boolean {
    return this.timer !== undefined;
  }

  /** Adds a stream whose headers are sent, and writes it the first frame at once. */
  add(res: StreamResponse): void {
    this.streams.add(res);
    res.once('close', () => this.remove(res));
    res.write(this.frame());
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.tick(), this.intervalMs);
      this.timer.unref();
    }
  }

  /** Ends every stream (their clients reconnect elsewhere or give up) and stops the timer. */
  closeAll(): void {
    for (const res of [...this.streams]) {
      this.remove(res);
      res.end();
    }
  }

  private remove(res: StreamResponse): void {
    this.streams.delete(res);
    if (this.streams.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private tick(): void {
    const frame = this.frame();
    for (const res of this.streams) if (!res.writableNeedDrain) res.write(frame);
  }
}
