import type { QuotaReading, QuotaUnit } from './read-headers.js';
import type { ServerClock } from './server-clock.js';
import type { FleetPace } from './shared.js';

/** How far a bucket's rate bounds may cross (a stale `Date`, timer lag) before it is no bucket. */
const BUCKET_SLACK = 1.2;
/**
 * Shares of its rate a fleet sends at (see `fleetPace`): a fixed window's whole rate (its calls are
 * counted per window too; at 97%, 93-95% of the quota was used), 99% of a sliding window's.
 */
const FLEET_WINDOW = 1;
const FLEET_SLIDING = 0.99;
/**
 * Calls the other processes of a fleet may have sent since this process's last answer, kept back
 * from what it spends on top of a bucket's or an unstated sliding window's rate (see `leftOver`),
 * at least (more where the quota's rate over that time, less this process's own calls, says so).
 * Measured: token buckets 65-93% of the quota used without that spending, 110-113% with it (their
 * burst included); `legacy` sliding windows 58-75% and 65-88%; no 429 either way.
 */
const FLEET_UNSEEN = 2;
/**
 * The largest sliding window counted from this client's calls (see `Quota.gridCount`: its cost
 * grows with the square of the calls in two windows), and the longest: 2^40 ms, some 35 years,
 * far from where a double's milliseconds stop being whole.
 */
const GRID_LIMIT = 200;
const GRID_MAX_WINDOW_MS = 2 ** 40;
/** The tollgate policy that mirrors a quota of each kind in a fleet's store. */
const MIRRORS = { window: 'fixed-window', bucket: 'token-bucket', sliding: 'sliding-window' } as const;
/** Sends remembered per sliding window (its refill is this client's sends of the last window). */
const MAX_SENDS = 4096;
/** Milliseconds by which answers' resets may disagree and still be one instant (a server's two clocks). */
const RESET_SLACK = 5;
/** How often a window of unstated length takes a new name in a fleet at most (see `windowId`). */
const WINDOW_NAME_MS = 1000;
/** Names a fleet's process checks at most for the window after the one it knew (see `Quota.fleetNextWindows`). */
const MAX_NEXT_WINDOWS = 4;
/** Steps of the stated reset remembered (see `Quota.guessWindow`). */
const RESET_STEPS = 8;
/** Answers whose round trip widens the grid count's skew (see `update`). */
const RTTS = 8;
/**
 * How long after this client last saw a quota come back it still tells a fleet that the quota is
 * a bucket or a sliding window (see `Quota.toldKind`): ten seconds, or three of the spells
 * between its last two answers where they are longer (a process that calls seldom sees it seldom).
 */
const KIND_FRESH_MS = 10_000;
const KIND_FRESH_GAPS = 3;
/** Distinct resets kept to tell a sliding window's length by (see `Quota.steppedWindow`). */
const RESETS_READ = 16;
/** Whole seconds a sliding window's length is looked for among at most (see `Quota.steppedWindow`). */
const MAX_STEPPED_SECONDS = 4096;
/** Windows a fleet's process asks the others about at most (see `Quota.windowsToHear`). */
const HEARD_WINDOWS = 8;
/** Windows asked about where a process's bounds hold more than HEARD_WINDOWS whole seconds. */
const USUAL_WINDOWS = [10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 43_200, 86_400].map(
  (s) => s * 1000,
);
/** How long a stated limit stands at most before a call larger than it is let go to probe it. */
const LIMIT_HELD_MS = 60_000;

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
  /**
   * An answer stated a reset (epoch, whole seconds) that had surely passed before its call was
   * sent: the server writes its resets early (its current second plus a TTL rounded or floored),
   * and a reset passed is no sign its window ended (see `fleetNextWindows`).
   */
  private resetsEarly = false;
  /**
   * The fleet's pace before the stated limit changed, asked too until `until` (see `retiredPace`).
   */
  private retired: { pace: Extract<FleetPace, { mirror: string }>; until: number } | undefined;
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
  /**
   * This client's sends to a sliding window, [local ms, cost, early], oldest first: what its refill
   * is. `early`: sent while the quota read as another kind (a window, a bucket; no window stated),
   * kept for the grid count only (see `guessWindow`): the refill reads the sends the old way.
   */
  private readonly sends: Array<[number, number, boolean]> = [];
  /**
   * Units per ms a bucket refills at, as an interval every answer narrows: read as a bucket, an
   * answer's remaining and reset (the time to full) bound the rate from both sides. Only used where
   * the server states no window (`X-RateLimit-*`); an empty intersection says it is no bucket.
   */
  private rateLo = 0;
  private rateHi = Number.POSITIVE_INFINITY;
  /** Answers whose remaining and reset no bucket explains: a sliding window (see `update`). */
  private notBucket = false;
  /**
   * The kind before one was taken from the fleet (see `heard`), while the kind is the fleet's
   * word (undefined: this client's own answers told it, or nothing was taken).
   */
  private adopted: QuotaKind | undefined;
  /** When this client last saw the quota come back between two answers within one reset. */
  private cameBackAt = Number.NEGATIVE_INFINITY;
  /** Whether the last answer was a success (see the rule telling a bucket, in `update`). */
  private lastAllowed = false;
  /** The time between this client's last two answers (see KIND_FRESH_MS). */
  private answerGap = 0;
  /**
   * For a sliding window that states no window: the least of (reset - sent) over allowed answers.
   * The reset is the end of the window after the one that counted the call, more than one window
   * after the call, so this is never below the window and, from a call just before a boundary,
   * barely above it.
   */
  private slidingWindowHi: number | undefined;
  /**
   * ...and the most of (reset - answered) / 2 over them: a call counted in a window is answered
   * less than two windows before the reset. The window lies in [lo, hi).
   */
  private slidingWindowLo = 0;
  /**
   * ...and half the span from this client's last allowed call of one window to the reset stated
   * in a later one, at the least (see `learnUnstated`): a bound on the window where the reset's
   * rounding up to a second counts half (the bounds above count it whole), for a fleet's reading
   * of the window (see `steppedWindow`).
   */
  private spanWindowHi: number | undefined;
  /** The last allowed answer's send time and reset (local bounds), for `spanWindowHi`. */
  private lastAllowedAnswer: { sentAt: number; hi: number } | undefined;
  /**
   * The whole number of seconds such a window is taken to be (see `guessWindow`): counted on the
   * server clock's grid like a stated window (see `gridCount`; tollgate's and most sliding-window
   * counters keep their windows there), which the answers refute if the guess is wrong.
   */
  private guessedWindowMs: number | undefined;
  private guessRefuted = false;
  /** The steps by which the stated resets (epoch ones) moved from one answer to the next, the last few. */
  private readonly resetSteps: number[] = [];
  /** Whether a call was refused while a fleet paced by the resets' step (see `steppedWindow`). */
  private steppedRefuted = false;
  /** When the window's length was last seen to change (see `forgetWindow`). */
  private forgottenAt = Number.NEGATIVE_INFINITY;
  /** The length read from the resets (see `steppedWindow`) that a refusal refuted, to tell the fleet. */
  private refutedWindow: number | undefined;
  /** The last distinct resets stated (epoch seconds), for a fleet (see `steppedWindow`). */
  private readonly resetsRead: number[] = [];
  /** `windowsToHear`'s last answer, and what it was read from. */
  private toHear: { read: number; lo: number; hi: number; windows: number[] } | undefined;
  /** `steppedWindow`'s last answer, and what it was read from. */
  private stepped: { read: number; lo: number; hi: number; window: number | undefined } | undefined;
  private resetsReadCount = 0;
  /** The window of a sliding quota as the fleet tells it (see `heardWindow`). */
  private heardWindowMs: number | undefined;
  /**
   * A sliding window of stated length, counted from this client's own calls on the server clock's
   * grid (see `gridCount`): trusted while every answer leaves at least the room it predicts; once
   * one leaves less (others spend from the quota, or the windows are not on the grid), never again.
   */
  private grid: 'untold' | 'trusted' | 'refuted' = 'untold';
  /**
   * Whether a fleet's store held this quota's last permit (`shareLearned`; false where it failed
   * open, or none is shared). A sliding window of stated length is then mirrored there, and what
   * is left of it comes back as the fleet's calls of the last window fade, not this client's alone:
   * this client's own count is no bound on when the next call may go (measured: each process,
   * told `remaining: 0` by nearly every answer at the window's pace, held its calls for its own
   * refill, 300-400 ms, and all four at once left the fleet's room unused: 91.7-95% used).
   */
  fleetHeld = false;
  /** The server's clock minus ours, as far as known (see `ServerClock`), and a round trip more. */
  private skews: [number, number] = [0, 0];
  /** The round trips of the last answers (see `update`). */
  private readonly rtts: number[] = [];
  /**
   * A window that states no length (see `followWindow`): the local interval of this client's first
   * call answered in it, by whose answer it had opened (that call opened it, or another client's
   * did before): its end is no later than the length after that answer.
   */
  private opened: [number, number] | undefined;
  private openedHere = false;
  /** ...and the earliest it can have opened: the end of the one before it, as far as known. */
  private startLo = Number.NEGATIVE_INFINITY;
  /** ...the latest send counted in it, and the earliest its end can be. */
  private lastIn = Number.NEGATIVE_INFINITY;
  private endLo = Number.NEGATIVE_INFINITY;
  /** ...and its length, as an interval narrowed window by window. */
  private lengthLo = 0;
  private lengthHi = Number.POSITIVE_INFINITY;
  /**
   * ...and where one length is the only whole number of seconds those bounds and this window's
   * reset allow (windows of whole seconds are the rule), its end if this client's call opened it
   * (see `windowEnd`). The call sent then opens the next window, or the guess is wrong and never
   * made again (a window longer than it: the call counts in this one, or is refused once).
   */
  private probeAt: number | undefined;
  private probeRefuted = false;
  /** The length guessed last (see `probeAt`), while no answer refuted it: a fleet's spacing. */
  private guessedLength: number | undefined;
  /**
   * The call sent past the end this client puts the window at (see `windowEnd`), while unanswered:
   * the calls after it wait for its answer, which opens the next window or says this one runs on.
   */
  private pastEndSentAt: number | undefined;
  /**
   * A window of unstated length: its reset as the server wrote it (epoch ms), naming it in a fleet
   * (one store key each), and when this client took that name. The server writes resets, so a new
   * name is taken at most once a second (their grain: no two windows end within one): a server
   * stating a new reset on every answer cannot make a key per call in the fleet's store.
   */
  private windowId: number | undefined;
  private windowIdSince = Number.NEGATIVE_INFINITY;
  /** The reset the last answer stated (see `windowId`), and its grain. */
  private lastReset: number | undefined;
  private lastResetGrain: number | undefined;

  constructor(
    readonly key: string,
    readonly unit: QuotaUnit,
  ) {}

  /** A call of `cost` was sent at `now`. */
  spend(cost: number, now: number): void {
    this.spent += cost;
    const end = this.windowEnd();
    if (end !== undefined && now >= end && this.pastEndSentAt === undefined) this.pastEndSentAt = now;
    // Also before the kind is told: the call that told it counts in a sliding window, and a quota
    // that states no window may turn out to be one.
    const early = this.kind !== 'sliding' && this.kind !== 'unknown';
    if (early && this.windowMs !== undefined) return;
    this.sends.push([now, cost, early]);
    // Two windows back is all the refill needs; until the kind is told, what the grid count can
    // use at most (two windows of GRID_LIMIT calls).
    const window = this.window();
    const horizon = window === undefined ? Number.NEGATIVE_INFINITY : now - 3 * window;
    const most = this.kind === 'sliding' ? MAX_SENDS : 2 * GRID_LIMIT;
    while (this.sends.length > 0 && (this.sends.length > most || this.sends[0]![0] < horizon)) {
      this.sends.shift();
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
    allowed = true,
  ): void {
    if (seq < this.seq) return;
    if (this.pastEndSentAt !== undefined && sentAt >= this.pastEndSentAt) this.pastEndSentAt = undefined;
    const before = this.remaining;
    const resetBefore = this.resetHi;
    const limitBefore = this.limit;
    // A stated policy's limit changed: its mirror is asked on for a while (see `retiredPace`).
    if (limitBefore !== undefined && reading.limit !== undefined && reading.limit !== limitBefore) {
      const paceBefore = this.fleetPace(receivedAt);
      if (paceBefore !== undefined && 'mirror' in paceBefore && paceBefore.mirror === 'fixed-window') {
        this.retired = { pace: paceBefore, until: receivedAt + 2 * paceBefore.window };
      }
    }
    if (reading.limit !== undefined) this.limit = reading.limit;
    // (Back to it: that mirror is the quota's own again.)
    if (this.retired !== undefined && this.limit === this.retired.pace.limit) this.retired = undefined;
    if (reading.windowMs !== undefined) this.windowMs = reading.windowMs;
    // A sliding window states when the whole quota is back: up to twice its window.
    if (reading.reset !== undefined && 'delta' in reading.reset && this.windowMs !== undefined) {
      if (reading.reset.delta > this.windowMs) this.kind = 'sliding';
    }
    if (reading.windowMs === undefined && reading.reset !== undefined) {
      const { lo, hi } = clock.toLocal(reading.reset, sentAt, receivedAt);
      this.learnUnstated(reading, lo, hi, sentAt, receivedAt, allowed);
    }
    // Sent after the last answer arrived, answered before that answer's reset, and no less left
    // although this call spent (a denied one spent nothing): units came back in between. Not
    // after a refused or failed answer (a server may give a failed call back: `refund.onFailure`,
    // `skipFailedRequests`), nor across a change of the limit.
    if (
      allowed &&
      this.lastAllowed &&
      limitBefore === this.limit &&
      this.seq >= 0 &&
      sentAt >= this.seenAt &&
      receivedAt < this.resetLo &&
      reading.remaining >= this.remaining
    ) {
      this.cameBackAt = receivedAt;
      if (this.kind !== 'sliding') this.kind = 'bucket';
      // Its own answers tell it now (a sliding window: once they also cross as a bucket's), no
      // longer the fleet's word.
      if (this.kind === 'bucket' || this.notBucket) this.adopted = undefined;
    }
    this.lastAllowed = allowed;
    if (!allowed && this.kind === 'sliding') this.refusedStepped(receivedAt);
    // A quota that comes back gradually but whose answers no bucket explains: a sliding window.
    if (this.kind === 'bucket' && this.notBucket) this.kind = 'sliding';
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
      // A sliding window's count rises and falls within one reset: overlapping is enough there.
      // (A few ms of slack: a server may count on one clock and state the reset on another.)
      const sameWindow = this.kind === 'sliding' || reading.remaining <= this.remaining;
      if (
        (this.windowSeen || this.kind === 'sliding') &&
        sameWindow &&
        this.resetHi !== undefined &&
        lo <= this.resetHi + RESET_SLACK &&
        hi >= this.resetLo - RESET_SLACK
      ) {
        this.resetLo = Math.max(this.resetLo, lo);
        this.resetHi = Math.max(this.resetLo, Math.min(this.resetHi, hi));
      } else {
        // A window's next reset is one window after the last: where the server does not state the
        // window (`X-RateLimit-*`), that jump is the window. The last window's reset is read
        // again through the skew known now: read through a wider one, its latest instant was up to
        // a second late, and the jump as much short (a 2 s window as 1.075 s: a sliding window's 18
        // calls left went in a second, too fast to see it come back, and the client waited 3 s).
        if (
          reading.windowMs === undefined &&
          this.kind === 'window' &&
          this.resetHi !== undefined &&
          lo > this.resetHi
        ) {
          const last =
            this.lastReset !== undefined && 'server' in reading.reset
              ? clock.toLocal({ server: this.lastReset, grain: reading.reset.grain }, sentAt, receivedAt).hi
              : this.resetHi;
          this.inferredWindowMs = hi - Math.min(this.resetHi, last);
        }
        this.resetLo = lo;
        this.resetHi = hi;
      }
    }
    if (this.kind === 'unknown' && reading.reset !== undefined) this.kind = 'window';
    const id =
      reading.windowMs === undefined && reading.reset !== undefined && 'server' in reading.reset
        ? reading.reset.server
        : undefined;
    if (id !== undefined && this.lastReset !== undefined && id > this.lastReset) {
      this.resetSteps.push(id - this.lastReset);
      if (this.resetSteps.length > RESET_STEPS) this.resetSteps.shift();
    }
    this.lastReset = id;
    this.lastResetGrain = reading.reset?.grain;
    if (id !== undefined && reading.reset !== undefined) this.stepReset(id, reading.reset.grain);
    if (
      id !== undefined &&
      reading.reset !== undefined &&
      reading.reset.grain >= 1000 &&
      clock.toLocal(reading.reset, sentAt, receivedAt).hi < sentAt
    ) {
      this.resetsEarly = true;
    }
    if (id === undefined) this.windowId = undefined;
    else if (id !== this.windowId && receivedAt - this.windowIdSince >= WINDOW_NAME_MS) {
      this.windowId = id;
      this.windowIdSince = receivedAt;
    }
    // From the first answer on: the first call may have opened the first window.
    if (this.kind === 'window' && this.windowMs === undefined) {
      // A new window has a later reset: more left under the same reset is a quota coming back
      // gradually (a bucket, a sliding window not told yet), no new window.
      const moved = resetBefore === undefined || (this.resetHi ?? resetBefore) > resetBefore + RESET_SLACK;
      const stated =
        reading.reset === undefined ? undefined : clock.toLocal(reading.reset, sentAt, receivedAt);
      this.followWindow(
        reading.remaining,
        moved ? before : Number.POSITIVE_INFINITY,
        sentAt,
        receivedAt,
        stated,
      );
    }
    // The grid count places a call at its send time plus the skew, the server counts it on arrival:
    // up to a round trip later than that (the `Date` read at receipt puts the skew low by the
    // answer's way back, the call takes its way there). The interval is widened by the longest
    // round trip of the last answers; and downward by RESET_SLACK: a server may keep its windows on
    // a clock a few ms behind the one its `Date` reads (tollgate's memory store counts on a
    // monotonic clock), which puts them a few ms past the multiples of the window there.
    this.rtts.push(receivedAt - sentAt);
    if (this.rtts.length > RTTS) this.rtts.shift();
    const [skewLo, skewHi] = clock.skewRange;
    this.skews = [skewLo - RESET_SLACK, skewHi + Math.max(0, ...this.rtts)];
    // Told once the server's clock is known to an eighth of the window (a few answers at different
    // phases of its `Date`'s second), for quotas of up to GRID_LIMIT (the count sums every call).
    const [lo, hi] = this.skews;
    if (this.kind === 'sliding' && reading.windowMs === undefined && reading.reset !== undefined && allowed) {
      this.guessWindow();
    }
    const gridWindow = this.gridWindow();
    if (
      this.kind === 'sliding' &&
      gridWindow !== undefined &&
      this.limit !== undefined &&
      this.limit <= GRID_LIMIT &&
      gridWindow <= GRID_MAX_WINDOW_MS &&
      this.grid !== 'refuted' &&
      hi - lo <= gridWindow / 8
    ) {
      // The server decided between `sentAt` and `receivedAt`, after counting this call and maybe
      // not calls sent before it: the grid's count at `sentAt` with every call sent by then is the
      // most it can be. Less room stated than that leaves (or a refusal): the count is not ours
      // alone, or the windows are not on the grid.
      const room = Math.floor(this.limit - this.gridCount(sentAt, sentAt));
      this.grid = allowed && reading.remaining >= room ? 'trusted' : 'refuted';
      // A guessed window is dropped with it: its refill would be guessed too (see `window`).
      if (this.grid === 'refuted') this.refuteGuess();
    }
    if (this.seq >= 0) this.answerGap = receivedAt - this.seenAt;
    this.remaining = reading.remaining;
    this.seenAt = receivedAt;
    this.seq = seq;
    this.spent = spentAfter;
  }

  /** The length of the sliding window counted on the grid: stated, or guessed (see `guessWindow`). */
  private gridWindow(): number | undefined {
    return this.windowMs ?? this.guessedWindowMs;
  }

  /**
   * A sliding window that states no length: once [slidingWindowLo, slidingWindowHi) holds one
   * whole second, that is taken for its length, counted on the grid; where it holds two (bounds
   * less than two seconds apart), the shorter, once the stated resets were seen to step by it (a
   * sliding window's reset moves by its window from one window to the next). One second apart
   * would do if resets were exact, but a reset rounded up to the second reads a whole second late
   * where the server's windows lie a few ms past its `Date`'s seconds, as tollgate's memory store on
   * a monotonic clock does: the upper bound then stays a second high. The first answer that leaves
   * less room than the count predicts (a window of no whole seconds, not on the grid, or others
   * spending) ends the guess for good, with the count.
   */
  private guessWindow(): void {
    if (this.guessRefuted || this.guessedWindowMs !== undefined || this.slidingWindowHi === undefined) return;
    const span = this.slidingWindowHi - this.slidingWindowLo;
    if (span >= 2000) return;
    const guess = Math.max(1000, Math.ceil(this.slidingWindowLo / 1000) * 1000);
    if (guess >= this.slidingWindowHi) return;
    if (span >= 1000 && !this.resetSteps.includes(guess)) return;
    this.guessedWindowMs = guess;
  }

  private refuteGuess(): void {
    this.guessRefuted = true;
    this.guessedWindowMs = undefined;
  }

  /**
   * A sliding window's count at local time `at` from this client's calls sent by `sentBy`, with the
   * windows on the multiples of the window on the server's clock (tollgate's and most sliding-window
   * counters keep them so): the last window's calls weighted by the part of it still in the window,
   * plus the current window's. `least`: a last window that had calls counted as holding at least
   * that many (see `readyAt`).
   */
  private gridCount(at: number, sentBy = Number.POSITIVE_INFINITY, least = 0): number {
    // The skew is known to an interval: the count is the most it can be over it.
    let most = 0;
    for (const skew of this.gridSkews(at)) most = Math.max(most, this.gridCountAt(at, sentBy, skew, least));
    return most;
  }

  /**
   * The skews at which the count can be highest: the lowest (a later server clock only fades the
   * last window more), and each at which a call crosses into a later window (from the last window's
   * weight to a whole one).
   */
  private gridSkews(at: number): number[] {
    const W = this.gridWindow()!;
    const [lo, hi] = this.skews;
    const skews = [lo];
    for (const [t] of this.sends) {
      if (t < at - 2 * W - (hi - lo)) continue;
      for (let b = Math.ceil((t + lo) / W) * W; b <= t + hi; b += W) if (b - t > lo) skews.push(b - t);
    }
    return skews;
  }

  private gridCountAt(at: number, sentBy: number, skew: number, least = 0): number {
    const W = this.gridWindow()!;
    const k = Math.floor((at + skew) / W);
    const elapsed = at + skew - k * W;
    let previous = 0;
    let current = 0;
    for (const [t, cost] of this.sends) {
      if (t > sentBy) continue;
      const i = Math.floor((t + skew) / W);
      if (i === k) current += cost;
      else if (i === k - 1) previous += cost;
    }
    if (previous > 0) previous = Math.max(previous, least);
    return (previous * (W - elapsed)) / W + current;
  }

  /**
   * The earliest local time from `now` at which the grid's count leaves room for `cost` (a last
   * window that had calls counted as holding at least `least`).
   */
  private gridReadyAt(now: number, cost: number, least = 0): number {
    const L = this.limit!;
    if (this.gridCount(now, Number.POSITIVE_INFINITY, least) + cost <= L) return now;
    // The count only falls between calls: the earliest time it leaves room, to a millisecond,
    // by bisection up to two windows on (by then this client's calls have faded out). Counted with
    // `least`, it also steps up where a window ends, to `least` at most: room for `cost` still,
    // since `least` is never more than the limit less the cost.
    let lo = now;
    let hi = now + 2 * this.gridWindow()! + 1;
    for (let step = 0; step < 64 && hi - lo > 1; step++) {
      const mid = Math.floor((lo + hi) / 2);
      if (mid <= lo || mid >= hi) break;
      if (this.gridCount(mid, Number.POSITIVE_INFINITY, least) + cost <= L) hi = mid;
      else lo = mid;
    }
    return hi;
  }

  /**
   * Whether the window before the one `now` is in had calls of this client at both ends of the
   * skew's interval: surely, not only where the server's clock may lag (a first window's first
   * calls may then lie in the window before it).
   */
  private lastWindowHadCalls(now: number): boolean {
    const W = this.gridWindow()!;
    return this.skews.every((skew) => {
      const k = Math.floor((now + skew) / W);
      return this.sends.some(([t]) => Math.floor((t + skew) / W) === k - 1);
    });
  }

  /**
   * Where the room the grid count leaves in a window is spread: the call after one sent at
   * `lastSentAt` goes a share of what is left of that call's window, so that the room there (what
   * the count leaves at its last millisecond) lasts until its end instead of going at once. Once
   * one window was full the count leaves room one call at a time anyway (this adds nothing); after
   * a quiet spell, or once the window is learned mid-way, it spreads what came back.
   */
  private gridSpread(cost: number, lastSentAt: number): number {
    if (!Number.isFinite(lastSentAt)) return Number.NEGATIVE_INFINITY;
    const W = this.gridWindow()!;
    // The earliest the window can end on our clock: the server's clock at its latest.
    const skew = this.skews[1];
    const end = (Math.floor((lastSentAt + skew) / W) + 1) * W - skew;
    // The room at its last millisecond on that clock (not the most the count can be over the
    // skew's interval: the spread only spaces calls, gridReadyAt keeps them safe, and a wide
    // interval would otherwise spread them past the window's end).
    const room = Math.max(
      0,
      Math.floor(this.limit! - this.gridCountAt(end - 1, Number.POSITIVE_INFINITY, skew)),
    );
    // The room's calls one share apart, the last of them a share before the end.
    return lastSentAt + ((end - lastSentAt) * cost) / (room + cost);
  }

  /**
   * A window that states no length (`X-RateLimit-*`, whose reset has a grain of a whole second):
   * where it ends, from this client's own calls. A call answered within the window was decided
   * before its end; a call that opened the next one (its answer's remaining is the whole quota less
   * one) after it. A window that opens at its first call (tollgate's fixed window does) lasts from
   * that call: the length read off one window predicts the end of the next, far below a second.
   */
  private followWindow(
    remaining: number,
    before: number,
    sentAt: number,
    receivedAt: number,
    stated: { lo: number; hi: number } | undefined,
  ): void {
    const probed = this.probeAt !== undefined && sentAt >= this.probeAt;
    if (remaining > before) {
      // This call opened it (the whole quota less one left), or another client's did before.
      this.openedHere = this.limit !== undefined && remaining === this.limit - 1;
      this.probeAt = undefined;
      // A new window. The last one ended after `lastIn` and before this answer.
      if (this.opened !== undefined) {
        const lo = Math.max(this.lastIn, this.endLo) - this.opened[1];
        // The window may have opened before the call that opened it here (a window on the clock's
        // grid, as many gateways keep), though not before the window ahead of it ended: it lasted
        // until this answer at most since then.
        const hi = receivedAt - this.startLo;
        if (lo > this.lengthHi || hi < this.lengthLo) {
          // Not the length seen before (the server's policy changed): start over.
          this.lengthLo = lo;
          this.lengthHi = hi;
        } else {
          this.lengthLo = Math.max(this.lengthLo, lo);
          this.lengthHi = Math.min(this.lengthHi, hi);
        }
      }
      this.startLo = Math.max(this.lastIn, this.endLo);
      this.opened = [sentAt, receivedAt];
      this.lastIn = sentAt;
    } else {
      // Counted in this window (or refused) though sent at the latest it could end by the length
      // dated before: that was not this window's length (the policy changed). The header's bounds
      // stand until a new length is dated.
      // The call sent at the guessed end is one such: the guess is wrong, and so may be the length
      // dated before it (it fit in there); not guessed again.
      if (probed) {
        this.probeRefuted = true;
        this.guessedLength = undefined;
        this.probeAt = undefined;
      }
      const datedEnd =
        this.opened !== undefined && Number.isFinite(this.lengthHi)
          ? this.opened[1] + this.lengthHi
          : Number.POSITIVE_INFINITY;
      if (stated !== undefined && (probed || sentAt >= datedEnd)) {
        this.lengthLo = 0;
        this.lengthHi = Number.POSITIVE_INFINITY;
        this.resetLo = stated.lo;
        this.resetHi = stated.hi;
      }
      this.lastIn = Math.max(this.lastIn, sentAt);
      this.resetLo = Math.max(this.resetLo, sentAt);
      if (this.resetHi !== undefined) this.resetHi = Math.max(this.resetHi, this.resetLo);
    }
    if (this.opened !== undefined && Number.isFinite(this.lengthHi) && this.resetHi !== undefined) {
      // Opened no earlier than the window ahead ended, and no later than the call's answer.
      const lo = this.startLo + this.lengthLo;
      const hi = this.opened[1] + this.lengthHi;
      if (lo <= this.resetHi && hi >= this.resetLo) {
        this.resetLo = Math.max(this.resetLo, lo);
        this.resetHi = Math.max(this.resetLo, Math.min(this.resetHi, hi));
      }
    }
    if (remaining > before && this.openedHere) this.guessEnd();
    this.endLo = this.resetLo;
  }

  /** The end of a window, if one whole-second length fits (see `probeAt`), from the answer it had opened by. */
  private guessEnd(): void {
    const opened = this.opened;
    if (this.probeRefuted || opened === undefined || this.resetHi === undefined) return;
    // Only once a window lasted that long: the first reset alone fits a shorter window on the
    // clock's grid too (opened before this call).
    if (!(this.lengthLo > 0)) return;
    const lo = Math.max(this.lengthLo, this.resetLo - opened[1]);
    // Opened no earlier than that call if it opened it, else than the window ahead ended.
    const hi = Math.min(this.lengthHi, this.resetHi - (this.openedHere ? opened[0] : this.startLo));
    // The shortest whole second in [lo, hi], where at most two lie there: a window opened within
    // the round trip after a whole second states a reset that leaves the next one too (its end,
    // rounded up, a second later), for every window alike when they open at their first call. A
    // shorter guess than the window costs the one call sent at its end, as any wrong guess does.
    const length = Math.max(1000, Math.ceil(lo / 1000) * 1000);
    if (length > hi || length + 2000 <= hi) return;
    // Opened by then at the latest: a call sent at its end arrives after it.
    const end = opened[1] + length;
    if (end < this.resetHi) {
      this.probeAt = end;
      this.guessedLength = length;
    }
  }

  /**
   * Where the server states no window: narrows the bucket rate, and tells a sliding window from a
   * bucket. A bucket's reset is its time to full: with `remaining` r of `limit` L (r whole, the
   * bucket holding r + a fraction) and the decision between `sentAt` and `receivedAt`, the rate lies
   * in [(L - r - 1) / (hi - sentAt), (L - r) / (lo - receivedAt)]. A sliding window's reset is the
   * end of the window after this one, constant through each window: read as a bucket it gives
   * bounds that cross.
   */
  private learnUnstated(
    reading: QuotaReading,
    lo: number,
    hi: number,
    sentAt: number,
    receivedAt: number,
    allowed: boolean,
  ): void {
    this.boundWindow(lo, hi, sentAt, receivedAt, allowed);
    // Bounds that cross: a sliding window's length changed (the server's policy), and each bound
    // holds the least or most of every answer since the first. Learned again from this answer on.
    // (The span's bound tells a shorter window: the others' rounding keeps 2 s within 3 s's. A
    // sliding log, whose resets break its premise, measured the same with this as without: four
    // processes, seven runs of 40 s, 17 and 28 calls answered 429 at 3 s and 4 s, none at 2 s, an
    // older misreading of such servers.)
    const most = this.readWindowHi();
    if (this.kind === 'sliding' && most !== undefined && this.slidingWindowLo > most + RESET_SLACK) {
      this.forgetWindow(receivedAt);
      this.boundWindow(lo, hi, sentAt, receivedAt, allowed);
    }
    const L = reading.limit ?? this.limit;
    if (L === undefined || reading.remaining >= L) return;
    const missing = L - reading.remaining;
    const lower = hi > sentAt ? (missing - 1) / (hi - sentAt) : 0;
    const upper = lo > receivedAt ? missing / (lo - receivedAt) : Number.POSITIVE_INFINITY;
    const rateLo = Math.max(this.rateLo, lower);
    const rateHi = Math.min(this.rateHi, upper);
    // Crossed by more than a stale `Date` or a slow answer explains: no bucket behaves so.
    if (rateLo > rateHi * BUCKET_SLACK) {
      this.notBucket = true;
      this.rateLo = lower;
      this.rateHi = upper;
      return;
    }
    this.rateLo = rateLo;
    this.rateHi = rateHi;
  }

  /**
   * A sliding window's length that states none, as an answer whose reset lies in [lo, hi] bounds
   * it (see `slidingWindowHi`, `slidingWindowLo`, `spanWindowHi`).
   */
  private boundWindow(lo: number, hi: number, sentAt: number, receivedAt: number, allowed: boolean): void {
    if (
      allowed &&
      hi > sentAt &&
      (this.slidingWindowHi === undefined || hi - sentAt < this.slidingWindowHi)
    ) {
      this.slidingWindowHi = hi - sentAt;
    }
    if (allowed && lo > receivedAt)
      this.slidingWindowLo = Math.max(this.slidingWindowLo, (lo - receivedAt) / 2);
    // A sliding window's allowed call states the end of the window after the one that counted it
    // (tollgate's, and the rest of this reading assumes it too: see `steppedWindow`): its reset
    // is two windows after that window's start. A later reset than the last allowed call's is a
    // later window's, which started after that call was sent: two windows are less than from then
    // to the reset's latest instant (a few ms more: a server may state the reset on another clock
    // than it counts on). Not from an answer whose reset had passed when it was sent (a cached or
    // replayed copy: a review put a 4 s window at 2 s from one), as for the bound above.
    if (allowed && hi > sentAt) {
      const last = this.lastAllowedAnswer;
      if (last !== undefined && lo > last.hi + RESET_SLACK) {
        const span = (hi + RESET_SLACK - last.sentAt) / 2;
        if (this.spanWindowHi === undefined || span < this.spanWindowHi) this.spanWindowHi = span;
      }
      this.lastAllowedAnswer = { sentAt, hi };
    }
  }

  /**
   * A sliding window whose length changed (see `learnUnstated`): each bound, the resets read, and
   * the length guessed or read (and its refutation) start over. Measured on a simulated server
   * going from 2 s to 4 s, four processes: 10-17 calls of ~200 answered 429 in every 40 s, minutes
   * on, paced by the old bounds for good (a review found it); none since. From 3 s to 2 s one
   * client was held at the old 3 s (66% of the quota), 100% since.
   */
  private forgetWindow(now: number): void {
    this.forgottenAt = now;
    this.slidingWindowHi = undefined;
    this.slidingWindowLo = 0;
    this.spanWindowHi = undefined;
    this.lastAllowedAnswer = undefined;
    this.resetsRead.length = 0;
    this.resetsReadCount++;
    this.steppedRefuted = false;
    this.refutedWindow = undefined;
    this.heardWindowMs = undefined;
    this.guessedWindowMs = undefined;
    this.guessRefuted = false;
    this.grid = 'untold';
  }

  /**
   * The window: stated, or for a sliding window that states none, its guessed length while the
   * grid count holds, else its upper bound (a slower refill; a fleet's spacing).
   */
  private window(): number | undefined {
    if (this.windowMs !== undefined) return this.windowMs;
    if (this.kind !== 'sliding') return undefined;
    return this.grid === 'trusted' ? (this.guessedWindowMs ?? this.slidingWindowHi) : this.slidingWindowHi;
  }

  /**
   * For a fleet: the length of a sliding window that states none, from the resets it states (a
   * sliding window's reset is the end of the window after this one: it moves by the window from
   * one window to the next). Every process sees every window's reset, where its own bounds (see
   * `learnUnstated`) narrow slowly on a share of the answers, and its own count on the grid (see
   * `guessWindow`) is refuted by the others' calls. A window of whole seconds moves its reset by
   * whole seconds; one stated in seconds, rounded up, reads a second late now and then where the
   * window ends a few ms either side of a whole second (tollgate's memory store counts on a
   * monotonic clock beside the one its `Date` reads): every reset read is then one of two
   * seconds in turn, modulo the window. The window is the longest of whole seconds within the
   * bounds that every reset read fits so: never shorter than the true one, which fits (from a
   * few windows on, the true one). A window of no whole seconds fits none for long (2.2 s: 2 s
   * for four windows), and is told by the fleet's refusals meanwhile (see `refusedStepped`).
   * Undefined once it was, and where resets are stated in ms (left to the bounds).
   */
  private steppedWindow(): number | undefined {
    const hi = this.readWindowHi();
    if (this.steppedRefuted || hi === undefined || this.resetsRead.length === 0) return undefined;
    const lo = this.slidingWindowLo;
    const last = this.stepped;
    if (last !== undefined && last.read === this.resetsReadCount && last.lo === lo && last.hi === hi) {
      return last.window;
    }
    let window: number | undefined;
    const top = Math.floor(hi / 1000);
    const least = Math.max(1, Math.ceil(lo / 1000));
    if (top - least <= MAX_STEPPED_SECONDS) {
      for (let n = top; n >= least && window === undefined; n--) if (this.fitsResets(n)) window = n * 1000;
    }
    this.stepped = { read: this.resetsReadCount, lo, hi, window };
    return window;
  }

  /**
   * A sliding window's refusal while a fleet may pace by its length as read (see
   * `fleetSlidingWindow`): that length is dropped for good, here and, told (see `refutedLength`),
   * in every process. A window of no whole seconds is read as whole for a few windows (2.2 s as
   * 2 s, a step of 3 s only every fifth window), and one of one or two seconds is read from the
   * bounds alone (any resets fit them); at its pace the fleet is refused within a window or two.
   * (A refusal may also be the pace's phase against the server's windows where the server's clock
   * is not the store's: see `SharedPacing.permit`'s first and last ms.)
   */
  private refusedStepped(now: number): void {
    const window = this.fleetSlidingWindow();
    if (window === undefined) return;
    // Two windows after the length changed: the fleet's processes learn the new one each at its
    // own pace, and one still at the old length is refused, or gets another refused (measured: the
    // new length, 4 s, refuted 5 s after a change from 2 s, and the fleet at 82% for good).
    if (now - this.forgottenAt < 2 * window) return;
    this.refutedWindow = window;
    this.steppedRefuted = true;
  }

  /** For a fleet: the length a refusal refuted here (see `refusedStepped`), to tell the others. */
  refutedLength(): number | undefined {
    return this.refutedWindow;
  }

  /** The fleet says a refusal refuted the length `ms` (see `refusedStepped`): dropped here too. */
  lengthRefuted(ms: number): void {
    if (this.fleetSlidingWindow() !== ms && this.heardWindowMs !== ms) return;
    this.steppedRefuted = true;
  }

  /** Whether every reset read, in seconds modulo `n`, is one of two seconds in turn (see `steppedWindow`). */
  private fitsResets(n: number): boolean {
    let a: number | undefined;
    let b: number | undefined;
    for (const reset of this.resetsRead) {
      const at = (reset / 1000) % n;
      if (at === a || at === b) continue;
      if (a === undefined) a = at;
      else if (b === undefined && ((at - a + n) % n === 1 || (a - at + n) % n === 1)) b = at;
      else return false;
    }
    return true;
  }

  /** Keeps a stated reset of whole seconds `id` (see `steppedWindow`), RESETS_READ distinct ones. */
  private stepReset(id: number, grain: number): void {
    if (grain !== 1000 || id % 1000 !== 0 || this.resetsRead.includes(id)) return;
    this.resetsRead.push(id);
    if (this.resetsRead.length > RESETS_READ) this.resetsRead.shift();
    this.resetsReadCount++;
  }

  /**
   * For a fleet: the window of a sliding quota that states none, as its resets tell (see
   * `steppedWindow`), or as another process told it (see `heardWindow`) where shorter and what
   * this client's own answers tell allows it: each is the longest its teller's answers allow.
   */
  private fleetSlidingWindow(): number | undefined {
    if (this.windowMs !== undefined || this.steppedRefuted) return undefined;
    const own = this.steppedWindow();
    const heard = this.heardWindowMs;
    return heard !== undefined && heard < (own ?? Number.POSITIVE_INFINITY) && this.mayBe(heard)
      ? heard
      : own;
  }

  /**
   * The most a sliding window that states none can be, as its lengths are read from the resets
   * (see `steppedWindow`): the least of its upper bounds. The span's (see `spanWindowHi`) tells a
   * 2 s window from 3 s at the first window a process sees start, where each reset reads a
   * second late (on a simulated server whose every reset reads so, the others fit 3 s until a
   * third window's reset was read: four processes used 83-93% of the quota after the first
   * window, 90-95% with this bound).
   */
  private readWindowHi(): number | undefined {
    const hi = this.slidingWindowHi;
    return hi === undefined ? undefined : Math.min(hi, this.spanWindowHi ?? hi);
  }

  /** Whether a sliding window of `ms` fits what this client's own answers tell (see `steppedWindow`). */
  private mayBe(ms: number): boolean {
    if (ms < this.slidingWindowLo || ms > (this.readWindowHi() ?? ms)) return false;
    return this.resetsRead.length === 0 || (ms % 1000 === 0 && this.fitsResets(ms / 1000));
  }

  /**
   * For a fleet: the window this client tells the others (see `steppedWindow`): where the server
   * states none, its quota is a sliding window, and its resets tell one within its bounds. Each
   * process sees every window's reset, but one whose calls the others' lower spacing kept from
   * going (they each charge their own in one bucket) sees few, and would be left on its own
   * bounds, a second or more long, for good (measured: three of four processes never had a call).
   */
  toldWindow(): number | undefined {
    if (this.windowMs !== undefined || this.unit !== 'requests' || this.kind !== 'sliding') return undefined;
    return this.steppedRefuted ? undefined : this.steppedWindow();
  }

  /**
   * The windows this client would take from the fleet (see `heardWindow`) for a sliding quota
   * (told by its own answers or the fleet's, or that may be one): the whole seconds within its
   * bounds, and shorter than its own reading (see `steppedWindow`), that fit the resets it read;
   * eight at most, or where more the usual ones among them (a minute, an hour...).
   */
  windowsToHear(): number[] {
    if (this.windowMs !== undefined || this.unit !== 'requests' || this.steppedRefuted) return [];
    if (this.kind !== 'sliding' && !this.adoptable()) return [];
    const hi = Math.min(this.readWindowHi() ?? 0, (this.steppedWindow() ?? Number.POSITIVE_INFINITY) - 1);
    const lo = Math.max(1000, Math.ceil(this.slidingWindowLo / 1000) * 1000);
    // (Asked on every question: the same list while nothing it is read from changed.)
    const last = this.toHear;
    if (last !== undefined && last.read === this.resetsReadCount && last.lo === lo && last.hi === hi) {
      return last.windows;
    }
    const windows = this.windowsWithin(lo, hi);
    this.toHear = { read: this.resetsReadCount, lo, hi, windows };
    return windows;
  }

  /** The whole seconds in [lo, hi] that fit the resets read (see `windowsToHear`). */
  private windowsWithin(lo: number, hi: number): number[] {
    const seconds: number[] = [];
    const most = Math.min(hi, lo + MAX_STEPPED_SECONDS * 1000);
    for (let w = lo; w <= most && seconds.length <= HEARD_WINDOWS; w += 1000)
      if (this.mayBe(w)) seconds.push(w);
    if (seconds.length <= HEARD_WINDOWS) return seconds;
    return USUAL_WINDOWS.filter((w) => w >= lo && w <= hi && this.mayBe(w)).slice(0, HEARD_WINDOWS);
  }

  /** The smallest window the fleet tells of those asked (see `windowsToHear`), or none. */
  heardWindow(ms: number | undefined): void {
    this.heardWindowMs = ms;
  }

  /** Units per millisecond the quota sustains, when it can be told. */
  rate(): number | undefined {
    if (this.limit === undefined) return undefined;
    const window = this.window();
    if (window !== undefined) return this.limit / window;
    if (this.kind === 'bucket' && this.rateLo > 0 && !this.notBucket) return this.rateLo;
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

  /**
   * Units that come back between `from` and `to`: a bucket's rate over the span; a sliding window's
   * previous window fading out, window by window. Only this client's own calls in each previous
   * window are known (others' only add to the refill): a lower bound.
   */
  private refilled(from: number, to: number): number {
    if (to <= from) return 0;
    if (this.kind === 'bucket') {
      const rate = this.rate();
      return rate === undefined ? 0 : (to - from) * rate;
    }
    const window = this.window();
    let index = this.windowIndex(from);
    if (window === undefined || index === undefined) return 0;
    // Only the windows after one that holds a send refill anything: the sum skips the rest, so it
    // takes a few steps however long the span (a 1 ms window idle for a day).
    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    for (const [at, , early] of this.sends) {
      if (early) continue;
      first = Math.min(first, at);
      last = Math.max(last, at);
    }
    if (!Number.isFinite(first)) return 0;
    const firstIndex = this.windowIndex(first)!;
    let at = from;
    if (index < firstIndex + 1) {
      index = firstIndex + 1;
      at = Math.max(from, this.resetHi! + index * window);
    }
    const until = Math.min(to, this.resetHi! + (this.windowIndex(last)! + 2) * window);
    let sum = 0;
    for (; at < until; index++) {
      const end = Math.min(until, this.resetHi! + (index + 1) * window);
      sum += (this.spentInWindow(index - 1) * (end - at)) / window;
      at = end;
    }
    return sum;
  }

  /** The earliest time by which `need` units have come back since `from` (Infinity: none come back). */
  private refilledBy(from: number, need: number): number {
    if (this.kind === 'bucket') {
      const rate = this.rate();
      return rate === undefined || rate <= 0 ? Number.POSITIVE_INFINITY : from + need / rate;
    }
    const window = this.window();
    let index = this.windowIndex(from);
    if (window === undefined || index === undefined) return Number.POSITIVE_INFINITY;
    // Three windows on, what this client sent has faded out: more waits for an answer.
    for (let at = from, n = 0; n < 3; index++, n++) {
      const end = this.resetHi! + (index + 1) * window;
      const rate = this.spentInWindow(index - 1) / window;
      if (rate > 0 && at + need / rate <= end) return at + need / rate;
      need -= rate * (end - at);
      at = end;
    }
    return Number.POSITIVE_INFINITY;
  }

  /** What this client sent in aligned window `index` (see `windowIndex`). */
  private spentInWindow(index: number): number {
    let sum = 0;
    for (const [at, cost, early] of this.sends) if (!early && this.windowIndex(at) === index) sum += cost;
    return sum;
  }

  /**
   * Aligned window number of `at`, counted from the sliding window's reset (a window boundary), so
   * that a window known only roughly still numbers the windows near it right.
   */
  private windowIndex(at: number): number | undefined {
    const window = this.window();
    if (this.kind !== 'sliding' || window === undefined || this.resetHi === undefined) return undefined;
    return Math.floor((at - this.resetHi) / window);
  }

  /**
   * Until when the stated limit refuses calls larger than it: its reset (the server may state
   * another then), a minute after the answer at most (a limit of 0, a plan changed back).
   */
  limitHeldUntil(): number {
    return Math.min(this.resetHi ?? Number.POSITIVE_INFINITY, this.seenAt + LIMIT_HELD_MS);
  }

  available(now: number): number {
    if (this.grid === 'trusted') return Math.min(this.limit!, this.limit! - this.gridCount(now));
    const left = this.remaining - this.spent;
    if (this.resetHi !== undefined && now >= this.resetHi) return (this.limit ?? this.remaining) - this.spent;
    return Math.min(this.limit ?? Number.POSITIVE_INFINITY, left + this.refilled(this.seenAt, now));
  }

  /**
   * At most what the server has left now, where that is sure: before the earliest its window can
   * end (its reset's lower bound), what the last answer said less what was sent since. Undefined
   * once the window may have ended: what this client sent before the end did not count in the next.
   */
  leftAtMost(now: number): number | undefined {
    // A bucket refills at its rate whoever spent it; a sliding window's refill counts only this
    // client's calls (a lower bound): no upper bound there.
    if (this.kind === 'bucket') return this.available(now);
    if (this.kind === 'sliding') return undefined;
    if (this.resetHi === undefined || now >= this.resetLo) return undefined;
    return this.remaining - this.spent;
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
    // A sliding window this client alone spends from: once its count leaves room, spread.
    // A last send ahead of now (the wall clock stepped back since) is spread from now instead: from
    // it, every call would be held for as long as the clock jumped.
    // A call of one unit is held as if the last window, where it surely had calls, had been full
    // (limit - 1): once a window had calls, a sliding window admits no more than limit - 1 in the
    // next, at the pace its count sets after a full one. So the window after the one the client
    // learned the quota in (or after one it sent little in) takes its calls at the same offsets as
    // every later window, not a little faster and earlier: its room is the same, and a measure of
    // whole windows' length then holds as many calls wherever it starts. (Calls of more units
    // take what the count leaves at once: held so, they would go up to (limit - 1) / (limit -
    // cost) times slower after a window that had calls.)
    if (this.grid === 'trusted') {
      const least = cost === 1 && this.lastWindowHadCalls(now) ? this.limit! - 1 : 0;
      return Math.max(this.gridReadyAt(now, cost, least), this.gridSpread(cost, Math.min(lastSentAt, now)));
    }
    const end = this.windowEnd();
    if (end !== undefined && now >= end) {
      // Past the end: one call, the rest once its answer tells where the window is (a lost answer:
      // at the latest end, or a second after the call).
      const sent = this.pastEndSentAt;
      if (sent === undefined) return now;
      return Math.max(now, sent < this.resetHi! ? this.resetHi! : sent + 1000);
    }
    const available = this.available(now);
    // A sliding window of stated length that a fleet's store holds (see `fleetHeld`): what this
    // client's own answers leave is no bound (others spend, and it comes back from their calls
    // too); its calls are only kept to the quota's rate.
    // So too one of unstated length whose window the fleet knows (see `fleetSlidingWindow`).
    const heldWindow =
      !this.fleetHeld || this.kind !== 'sliding' ? undefined : (this.windowMs ?? this.fleetSlidingWindow());
    if (available < cost && heldWindow !== undefined && this.limit !== undefined) {
      return lastSentAt + (cost * heldWindow) / this.limit;
    }
    if (available < cost) {
      const by = this.refilledBy(now, cost - available);
      const refilled = Number.isFinite(by) ? by : undefined;
      if (this.resetHi !== undefined && this.resetHi > now)
        return Math.min(refilled ?? this.resetHi, this.probeAt ?? this.resetHi);
      if (refilled !== undefined) return Math.max(refilled, now);
      // Spent out with no word on when more comes (or past the last reset with the new window's
      // share sent already): wait for an answer, or probe once a second (a 429's Retry-After or
      // backoff takes over if that is too early).
      return Math.max(this.seenAt, lastSentAt) + 1000;
    }
    const rate = this.rate();
    let interval = rate === undefined ? Number.POSITIVE_INFINITY : cost / rate;
    // What comes back gradually and is left over (the rate read low, a slow stretch) is spent over
    // a window on top of the rate, so an estimate that errs slow does not leave quota unused.
    if (rate !== undefined && (this.kind === 'bucket' || this.kind === 'sliding') && available > cost) {
      interval = cost / (rate + (available - cost) / (this.limit! / rate));
    }
    if (this.resetHi !== undefined) {
      // A window of unstated length is spread up to the middle of where its end may be: a call there
      // either still counts in it or opens the next (whose answer says so), and either way narrows
      // the end down. Until one length was seen, up to the latest end: the calls past the end open
      // the next window one by one, and the first of them dates the end closely.
      let until = this.resetLo;
      if (this.kind === 'window' && this.windowMs === undefined) {
        until = Number.isFinite(this.lengthHi) ? (this.resetLo + this.resetHi) / 2 : this.resetHi;
        if (this.probeAt !== undefined) until = this.probeAt;
      }
      if (until > now) interval = Math.min(interval, (cost * (until - now)) / available);
    }
    return Number.isFinite(interval) ? lastSentAt + interval : Number.NEGATIVE_INFINITY;
  }

  /**
   * For a fleet (`shareLearned`): the kind this client told from its own answers where the server
   * states no window (`X-RateLimit-*`), once it is more than the `window` every such quota reads as
   * first: a quota seen to come back gradually (`bucket`), and one whose answers no bucket explains
   * (`sliding`). Each process sees only its own share of the answers, and a quota is seen to come
   * back only between two answers of one process with nothing spent by others in between: most
   * processes of a busy fleet never see it (measured: three of four read a token bucket as a
   * window for a whole run), so the first to tell it tells the others (see `heard`). Only while
   * this client saw it come back lately (KIND_FRESH_MS): one misleading answer (a fixed window
   * whose server restarted and lost its counts) is not told for long.
   */
  toldKind(now: number): 'bucket' | 'sliding' | undefined {
    if (this.windowMs !== undefined || this.unit !== 'requests' || this.adopted !== undefined)
      return undefined;
    if (!this.fresh(now)) return undefined;
    return this.kind === 'bucket' || this.kind === 'sliding' ? this.kind : undefined;
  }

  /** Whether this client saw the quota come back lately (see KIND_FRESH_MS). */
  private fresh(now: number): boolean {
    return now - this.cameBackAt <= Math.max(KIND_FRESH_MS, KIND_FRESH_GAPS * this.answerGap);
  }

  /**
   * Whether this quota takes the kind the fleet tells (see `heard`): no window stated, and read
   * as a window none was seen to come back whole at once, or as a bucket; or a kind it took.
   */
  adoptable(): boolean {
    if (this.windowMs !== undefined || this.unit !== 'requests') return false;
    if (this.adopted !== undefined) return true;
    return (this.kind === 'window' && !this.windowSeen) || this.kind === 'bucket';
  }

  /**
   * What the fleet tells of this quota's kind (see `toldKind`): a kind another process told from
   * its answers, taken by a quota still read as a window (or a bucket, for a sliding window, told
   * from one), since both are told only from what a window never shows; nothing, once no process
   * tells it any more: a kind taken is given up (back to what this client read before), unless
   * this client's own answers have told it since. The rate or window is still this client's own,
   * from its own answers (each of them bounds it whoever spent the quota).
   */
  heard(kind: 'bucket' | 'sliding' | undefined): void {
    if (!this.adoptable()) return;
    if (kind === undefined) {
      if (this.adopted === undefined) return;
      this.kind = this.adopted;
      this.adopted = undefined;
      return;
    }
    if (this.kind === kind || (kind === 'bucket' && this.kind === 'sliding')) return;
    this.adopted ??= this.kind;
    // (This client's own answers no bucket explains: a sliding window, as `update` would tell.)
    this.kind = kind === 'bucket' && this.notBucket ? 'sliding' : kind;
    this.probeAt = undefined;
    this.pastEndSentAt = undefined;
  }

  /**
   * What a fleet's process spends on top of an unstated bucket's or sliding window's rate (see
   * `fleetPace`): what it has left, less the call and the others' calls since its last answer;
   * only while this client's own answers hold the kind up (it saw the quota come back lately,
   * KIND_FRESH_MS): a fixed window misread as a bucket (one answer after a restart), or a kind
   * taken from the fleet, gets no more than its rate (measured: 77 answers of 429 in a minute
   * after a restart, 69 without).
   */
  private leftOver(now: number): number {
    if (this.adopted !== undefined || !this.fresh(now)) return 0;
    // The others' calls since this client's last answer, as many as the quota sustains over that
    // time less this client's own (the fleet paces at that rate): a fleet of many processes,
    // each answered seldom, spends no more than is left.
    const rate = this.rate();
    const others = rate === undefined ? 0 : Math.ceil((now - this.seenAt) * rate - this.spent);
    return Math.max(0, this.available(now) - 1 - Math.max(FLEET_UNSEEN, others));
  }

  /**
   * How a fleet sharing this quota should send (`shareLearned`): `spacing` ms apart, and `burst`
   * calls at most in a row to make up for late ones. A fixed window at its rate (the fleet counts
   * each window's calls under its reset, up to its limit: see `fleetWindow`), a sliding window at
   * 99% of the `(limit - 1) / window` it sustains (a window whose last one was full admits one
   * call fewer), both one call at a time; a bucket at its rate, two in a row (its burst takes up
   * the jitter). Where no window is stated, a bucket's and a sliding window's rate is this
   * process's lower bound, and what is left over is spent on top of it (see `leftOver`). A fixed
   * window of stated length: its limit per window, mirrored in the store.
   * A window of unstated length not dated yet: what is left spread from `now` to its latest end.
   * Undefined while the policy is not known.
   */
  fleetPace(now: number): FleetPace | undefined {
    const L = this.limit;
    if (L === undefined) return undefined;
    // Stated: mirrored by the same policy in the store (see `SharedPacing`), which counts calls.
    if (this.windowMs !== undefined && this.kind !== 'unknown' && this.unit === 'requests') {
      const mirror = MIRRORS[this.kind];
      return { mirror, window: this.windowMs, limit: L };
    }
    if (this.kind === 'bucket') {
      const rate = this.rate();
      if (rate === undefined) return undefined;
      // What is left over is spent on top of the rate over the time the bucket takes to fill, as
      // one client spends it (see `readyAt`), less what the others may have sent since this
      // process's last answer (see `leftOver`): the fleet's rate is each process's lower bound,
      // read from a share of the answers, and the quota it leaves unspent shows up as more left.
      const over = this.leftOver(now);
      return { spacing: 1 / (rate + over / (L / rate)), burst: Math.min(2, L) };
    }
    if (this.kind === 'sliding') {
      const stepped = this.fleetSlidingWindow();
      if (stepped !== undefined && L >= 2) {
        return { spacing: stepped / (L - 1), burst: 1, slack: 0.1, sliding: { window: stepped, limit: L } };
      }
      const window = this.window();
      if (window === undefined || L < 2) return undefined;
      const spacing = window / ((L - 1) * FLEET_SLIDING);
      // (Left over, where no window is stated: spent on top over a window, as for a bucket.)
      if (this.windowMs !== undefined) return { spacing, burst: 1 };
      const over = this.leftOver(now);
      return { spacing: 1 / (1 / spacing + over / window), burst: 1 };
    }
    if (this.kind !== 'window') return undefined;
    // Unstated: the length this client dated, else the step between resets (what a process that
    // opened no window of its own sees).
    const window =
      this.guessedLength ?? (Number.isFinite(this.lengthHi) ? this.lengthHi : this.inferredWindowMs);
    if (window !== undefined) return { spacing: window / (L * FLEET_WINDOW), burst: 1 };
    // No length yet (the first window): what this process knows is left, spread up to the latest
    // end, as one client spreads it, so that the window is not spent long before it ends (the
    // fleet waits for its latest end then) and a call past its end opens the next one.
    const left = this.remaining - this.spent;
    const end = this.windowEnd();
    if (end === undefined || end <= now || left < 1) return undefined;
    return { spacing: (end - now) / left, burst: 1 };
  }

  /**
   * Where a window of unstated length ends as this client puts it: at its latest (the reset's upper
   * bound), or earlier at a guessed end (see `probeAt`). Past it a call may open the next window,
   * which no answer has told yet: one goes at a time.
   */
  private windowEnd(): number | undefined {
    if (this.kind !== 'window' || this.windowMs !== undefined || this.resetHi === undefined) return undefined;
    return Math.min(this.resetHi, this.probeAt ?? Number.POSITIVE_INFINITY);
  }

  /**
   * For a fleet (see `FleetPart.window`): the window of unstated length this process's last answer
   * was in, named by its reset as written (an epoch one: a delta reset names no instant alike for
   * every process), while it surely runs: up to its guessed end (a call then may open the next) or
   * its latest. Past that a call may be the next window's first, which no process can name yet.
   */
  fleetWindow(now: number): { id: number; limit: number; waitMs: number; left: number } | undefined {
    const until = this.windowEnd();
    if (until === undefined || this.windowId === undefined || this.limit === undefined) return undefined;
    // A newer reset than the name taken (a second not passed since): this window has no name yet.
    if (this.windowId !== this.lastReset) return undefined;
    // A count of calls (a quota of tokens is spent by the call's size, known after it).
    if (this.unit !== 'requests') return undefined;
    // What the last answer left, less what was sent since: in this window, whatever its end.
    const left = this.remaining - this.spent;
    return now < until ? { id: this.windowId, limit: this.limit, waitMs: until - now, left } : undefined;
  }

  /**
   * For a fleet: the pace a stated fixed window had before its limit changed, for two of its
   * windows after this client saw the change. Its mirror in the store counts the calls of the
   * processes that have not seen the change yet: a process that has asks it too, so that one count
   * holds every call (see `FleetPart.floor`).
   */
  retiredPace(now: number): Extract<FleetPace, { mirror: string }> | undefined {
    if (this.retired === undefined) return undefined;
    if (now < this.retired.until) return this.retired.pace;
    this.retired = undefined;
    return undefined;
  }

  /** The send order of the call whose answer last stated this quota (-1 before any). */
  statedSeq(): number {
    return this.seq;
  }

  /** The name of the window of unstated length this client is in, for a fleet (see `windowId`). */
  windowName(): number | undefined {
    return this.windowId;
  }

  /**
   * For a fleet (see `FleetPart.next`): past the latest end of the window of unstated length this
   * process's last answer was in, the names the windows after it may have that may still run, up to
   * MAX_NEXT_WINDOWS (none where more). Each is its reset as written, in whole seconds: after the
   * last one's, and not passed now on the server's clock (`skew`: its offset's bounds); and no later
   * than a window that opened now would state (by the length as read, or its upper bound); and
   * that length. With no length read yet (a process whose few answers dated none), the first
   * MAX_NEXT_WINDOWS names: such a process had no pace to send by, and sent unasked (measured:
   * four processes against a `legacy` fixed window of 10 per second, the ones that had not read
   * its length each sent one call past the end of the window they knew into a window the others
   * had filled; 2-4 calls of ~40 answered 429 in most cases).
   */
  fleetNextWindows(
    now: number,
    skew: readonly [number, number],
  ): { ids: number[]; length: number | undefined } | undefined {
    if (this.kind !== 'window' || this.windowMs !== undefined || this.unit !== 'requests') return undefined;
    const id = this.lastReset;
    const end = this.windowEnd();
    if (id === undefined || this.lastResetGrain !== 1000 || end === undefined || now < end) return undefined;
    const length =
      this.guessedLength ?? (Number.isFinite(this.lengthHi) ? this.lengthHi : this.inferredWindowMs);
    // (With no length, not where resets are written early: the window known may run on past its
    // reset, and the names read here are not the next one's. A review measured a window of 10
    // per second written as the current second plus a floored TTL: two processes, 0 calls
    // answered 429 in 54 runs before the names were read with no length, 94 after.)
    if (length === undefined && this.resetsEarly) return undefined;
    // (A window opened after the last ended, within the second before its reset: it lasts at
    // least `lengthLo`, the least a window was seen to.)
    const first = Math.max(
      id + 1000,
      Math.ceil((now + skew[0]) / 1000) * 1000,
      Math.ceil((id - 1000 + this.lengthLo) / 1000) * 1000,
    );
    const last =
      length === undefined
        ? first + (MAX_NEXT_WINDOWS - 1) * 1000
        : Math.ceil((now + skew[1] + length) / 1000) * 1000;
    if (last < first || last - first >= MAX_NEXT_WINDOWS * 1000) return undefined;
    const ids: number[] = [];
    for (let next = first; next <= last; next += 1000) ids.push(next);
    return { ids, length };
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
