/** How often the store reads Redis TIME when no script reply gave a reading (see RedisTime). */
const SYNC_EVERY_MS = 10_000;
/** A reading is trusted over an older one if its round trip is at most twice as long, or after this. */
const SYNC_TRUST_MS = 60_000;

/** Redis time against performance.now(): an offset, known to within its reading's round trip. */
class Reading {
  /** Redis time minus performance.now() (ms); undefined until a first reading. */
  offset: number | undefined;
  rtt = 0;
  trustedAt = Number.NEGATIVE_INFINITY;
  /** A command guarded by this reading came too late: send the next one unguarded, to read again. */
  late = false;

  /**
   * Takes `redisMs`, read by Redis between `t0` and `t1` (performance.now() here). A reading delayed
   * by a busy loop or a queue is less exact: the better one is kept for a while.
   */
  take(redisMs: number, t0: number, t1: number): boolean {
    const rtt = t1 - t0;
    if (!Number.isFinite(redisMs)) return false;
    this.late = false;
    if (this.offset !== undefined && rtt > this.rtt * 2 + 1 && t1 - this.trustedAt < SYNC_TRUST_MS)
      return false;
    this.offset = redisMs - (t0 + t1) / 2;
    this.rtt = rtt;
    this.trustedAt = t1;
    return true;
  }
}

/**
 * What the store knows of Redis's clock, for the replay guard's deadlines (see GUARD in clients.ts)
 * and for calendar periods. Readings come from TIME and from every script's reply (its `now`), so a
 * store in use asks TIME only when no reply came for 10 s.
 *
 * On a Cluster each master has its own clock, and a master ahead of the one TIME asked would refuse
 * every guarded command as LATE: there a reading is kept per slot, from the replies of the master
 * that holds it; a slot not read yet gets the highest offset read so far (a deadline never too
 * early for any master read); a slot whose command came back LATE sends its next command
 * unguarded, and that reply reads its master's clock.
 */
export class RedisTime {
  private readonly global = new Reading();
  private readonly slots: Map<number, Reading> | undefined;
  /** Cluster: the highest offset of any slot's reading, and that reading's round trip. */
  private highest: number | undefined;
  private highestRtt = 0;
  private syncedAt = Number.NEGATIVE_INFINITY;
  private syncing = false;

  constructor(cluster: boolean) {
    this.slots = cluster ? new Map() : undefined;
  }

  /** Whether to ask TIME now (at `t`): no reading for a while. Marks the asking. */
  shouldAsk(t: number): boolean {
    if (this.syncing || t - this.syncedAt <= SYNC_EVERY_MS || t - this.global.trustedAt <= SYNC_EVERY_MS)
      return false;
    this.syncing = true;
    this.syncedAt = t;
    return true;
  }

  /** A TIME reply (or its failure: `redisMs` undefined). */
  answered(redisMs: number | undefined, t0: number, t1: number): void {
    this.syncing = false;
    if (redisMs !== undefined) this.global.take(redisMs, t0, t1);
  }

  /** A script's reply on Redis time: its `now` (whole ms), for the key in `slot` (-1: standalone). */
  replied(nowMs: number, t0: number, t1: number, slot: number): void {
    const redisMs = nowMs + 0.5;
    if (this.slots === undefined) {
      this.global.take(redisMs, t0, t1);
      return;
    }
    const reading = this.slotReading(slot);
    if (reading.take(redisMs, t0, t1) && (this.highest === undefined || reading.offset! > this.highest)) {
      this.highest = reading.offset!;
      this.highestRtt = reading.rtt;
    }
  }

  /** A command for `slot` came too late by Redis's clock: the reading it used is off. */
  late(slot: number): void {
    if (this.slots === undefined) {
      this.syncedAt = Number.NEGATIVE_INFINITY;
      this.global.trustedAt = Number.NEGATIVE_INFINITY;
      return;
    }
    const reading = this.slotReading(slot);
    reading.late = true;
    // The next reading is taken whatever its round trip.
    reading.trustedAt = Number.NEGATIVE_INFINITY;
  }

  private slotReading(slot: number): Reading {
    let reading = this.slots!.get(slot);
    if (reading === undefined) {
      reading = new Reading();
      this.slots!.set(slot, reading);
    }
    return reading;
  }

  /** Forgets the reading: the next one is taken whatever its round trip (a calendar period missed). */
  distrust(): void {
    this.syncedAt = Number.NEGATIVE_INFINITY;
    this.global.trustedAt = Number.NEGATIVE_INFINITY;
  }

  /**
   * The guard's deadline for a command to `slot` sent at `t`: `afterMs` later in Redis time, plus
   * the reading's round trip (its uncertainty) and 5 ms; '' (unguarded) while nothing was read.
   */
  deadline(t: number, slot: number, afterMs: number): string {
    let offset = this.global.offset;
    let rtt = this.global.rtt;
    if (this.slots !== undefined) {
      const own = this.slots.get(slot);
      if (own?.late) return '';
      if (own?.offset !== undefined) {
        offset = own.offset;
        rtt = own.rtt;
      } else if (this.highest !== undefined && (offset === undefined || this.highest > offset)) {
        offset = this.highest;
        rtt = this.highestRtt;
      }
    }
    if (offset === undefined) return '';
    return String(Math.ceil(t + offset + afterMs + rtt + 5));
  }

  /** Redis time as this process can tell it without asking, else this machine's clock. */
  now(): number {
    const offset = this.global.offset ?? this.highest;
    return Math.floor(offset === undefined ? Date.now() : performance.now() + offset);
  }
}
