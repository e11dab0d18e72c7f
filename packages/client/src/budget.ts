import { Aimd } from './aimd.js';
import { CostExceedsLimitError, DeadlineError, QueueFullError } from './errors.js';
import { queuedChannel } from './events.js';
import { type LimitSnapshot, LocalQuota } from './limits.js';
import type { ResolvedAimd } from './options.js';
import { Quota, type QuotaSnapshot } from './quota.js';
import { type HeaderReading, type QuotaUnit, unnamedWindow } from './read-headers.js';
import type { ServerClock } from './server-clock.js';
import type { FleetAnswer, FleetPart, FleetQuestion } from './shared.js';
import { setLongTimeout, type Timer } from './sleep.js';
import { type Waiter, WaitQueue } from './wait-queue.js';

/** What one call spends, per unit. Requests cost 1. */
export type Cost = Partial<Record<QuotaUnit, number>>;

/** A budget as `snapshot()` shows it. */
export interface BudgetSnapshot {
  origin: string;
  /** A hash of the credential (never the credential), or undefined for anonymous calls. */
  credential: string | undefined;
  queued: number;
  inFlight: number;
  /** Local epoch ms until which no call is sent (a `Retry-After`, or backoff after a bare 429). */
  blockedUntil: number | undefined;
  quotas: QuotaSnapshot[];
  /** The budgets configured with `limits` that this origin's calls spent from. */
  limits: LimitSnapshot[];
  /**
   * Tokens: `charged`, what answered calls used (their usage, or their estimate where no usage
   * came back); `pending`, the estimates of calls whose usage is not known yet.
   */
  tokens: { charged: number; pending: number };
  /** AIMD's state, for an origin whose answers state no quota (with the `aimd` option). */
  aimd: { rate: number; cooldownUntil: number | undefined } | undefined;
}

interface Job extends Waiter {
  cost: Cost;
  locals: readonly LocalQuota[];
  resolve: (seq: number) => void;
  reject: (error: unknown) => void;
  cleanup: () => void;
}

interface Sent {
  seq: number;
  cost: Cost;
  answered: boolean;
}

/** A fleet's pacing in a store (`shareLearned`): one decision for the next call. */
export type FleetGate = (question: FleetQuestion) => Promise<FleetAnswer>;

/** A call sent without a fleet permit: counted in no window (see `Budget.countedOut`). */
const NO_WINDOWS: ReadonlyMap<string, number> = new Map();
/** Quotas one server states at most: a misbehaving server cannot grow memory through headers. */
const MAX_QUOTAS = 32;
/** Timer lag made up for when spacing calls (see `send`). */
const LAG_MS = 250;
/** Sends remembered for the "spent since that answer" sum; a bound against answers never coming. */
const MAX_SENDS = 4096;
/** Send times kept for the rate of the last second. */
const MAX_RECENT = 2048;
/** Configured budgets kept per origin and credential (one per rule, unit and model). */
const MAX_LOCALS = 256;

/**
 * The budget of one origin and credential: the quotas its answers state, the calls waiting, and
 * the pump that lets each go when the quotas allow.
 */
export class Budget {
  private readonly quotas = new Map<string, Quota>();
  private readonly locals = new Map<string, LocalQuota>();
  /** Send times of the last second at most (AIMD's fallback starts from that rate). */
  private readonly recent: number[] = [];
  private charged = 0;
  private pending = 0;
  private readonly queue = new WaitQueue<Job>();
  private readonly sends: Sent[] = [];
  private seq = 0;
  private order = 0;
  private inFlight = 0;
  private answered = false;
  private lastSentAt = Number.NEGATIVE_INFINITY;
  private blockedUntil = Number.NEGATIVE_INFINITY;
  private timer: Timer | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  /** The fleet (`shareLearned`): a permit taken for the next call, a question out, a refusal's end. */
  private fleetPermit: FleetAnswer | undefined;
  private fleetAsking = false;
  private fleetAt = Number.NEGATIVE_INFINITY;
  /** Answers that named a new window of unstated length (see `answer`): a refusal asked before is stale. */
  private fleetWindows = 0;
  /** Calls sent with no fleet permit, before the pace was known: the fleet counts them on the next question. */
  private unregistered = 0;
  /** The unregistered calls not answered yet, and when the last answered one's answer came. */
  private readonly unregisteredOut = new Set<number>();
  /**
   * A fleet's calls not answered yet, each with the windows of unstated length its permit counted
   * it in (window id by quota; none without a permit): where the answer names another, the fleet
   * counts it there (see `countIn`).
   */
  private readonly countedOut = new Map<number, ReadonlyMap<string, number>>();
  /** The windows the fleet permit taken counts its call in (see `countedOut`). */
  private fleetPermitWindows: ReadonlyMap<string, number> = new Map();
  /**
   * Whether the fleet permit taken counted its call (a question with a pace or a window); one that
   * only read whether the next window is full (see `Quota.fleetNextWindows`) did not: its call is
   * unregistered, counted by the next question that counts.
   */
  private fleetPermitCounts = true;
  private unregisteredAt: number | undefined;
  /**
   * For each window of draft-6/7 policies (see `unnamedWindow`): the one stated last, and since when
   * it is (local ms; see `forgetSuperseded`).
   */
  private readonly unnamedSince = new Map<string, { key: string; since: number }>();

  constructor(
    readonly origin: string,
    readonly credential: string | undefined,
    private readonly clock: ServerClock,
    private readonly now: () => number,
    private readonly maxQueue: number,
    aimd: ResolvedAimd | undefined,
    private readonly fleet?: FleetGate,
  ) {
    this.aimd = aimd === undefined ? undefined : new Aimd(aimd);
  }

  private readonly aimd: Aimd | undefined;

  /** A place in line among equal priorities, kept by the call's retries. */
  nextOrder(): number {
    return this.order++;
  }

  /** Nothing waiting, in flight or owed: forgetting the budget loses nothing. */
  get idle(): boolean {
    if (this.queue.size > 0 || this.inFlight > 0 || this.pending > 0 || this.fleetAsking) return false;
    const now = this.now();
    for (const quota of this.locals.values()) if (!quota.idle(now)) return false;
    return true;
  }

  /**
   * Waits for the turn of a call costing `cost`; resolves with its send number once it may go (it
   * counts as sent from then on). `order` keeps a retried call's place among equal priorities.
   */
  acquire(
    cost: Cost,
    priority: number,
    signal: AbortSignal | null | undefined,
    deadline: number | undefined,
    order: number,
    locals: readonly LocalQuota[] = [],
  ): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      signal?.throwIfAborted();
      if (this.queue.size >= this.maxQueue) throw new QueueFullError(this.origin, this.queue.size);
      let timer: Timer | undefined;
      const job: Job = {
        priority,
        order,
        cost,
        locals,
        resolve,
        reject,
        cleanup: () => {
          signal?.removeEventListener('abort', onAbort);
          timer?.clear();
        },
      };
      const drop = (error: unknown) => {
        if (!this.queue.remove(job)) return;
        job.cleanup();
        reject(error);
        this.pump();
      };
      const onAbort = () => drop(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (deadline !== undefined) {
        timer = setLongTimeout(() => drop(new DeadlineError(this.origin)), deadline - this.now());
      }
      this.queue.push(job);
      if (queuedChannel.hasSubscribers) {
        const now = this.now();
        queuedChannel.publish({
          origin: this.origin,
          credential: this.credential,
          queued: this.queue.size,
          waitMs: Math.max(0, this.readyAt(cost, now, locals) - now),
        });
      }
      this.pump();
    });
  }

  /** Lets waiting calls go while the quotas allow; sets a timer for the next one. */
  pump = (): void => {
    for (;;) {
      const job = this.queue.peek();
      // Until the first answer nothing is known: one call goes alone and learns the quotas.
      if (job === undefined || (!this.answered && this.inFlight > 0)) {
        this.clearTimer();
        this.returnPermit();
        return;
      }
      const now = this.now();
      const at = this.readyAt(job.cost, now, job.locals);
      if (at === Number.POSITIVE_INFINITY) {
        if (this.forgetStaleLimits(job.cost, now)) continue;
        this.queue.shift();
        job.cleanup();
        job.reject(this.tooLarge(job.cost, job.locals));
        continue;
      }
      if (at > now) {
        // A permit is for a call that goes now: the fleet's count must not hold one unsent.
        this.returnPermit();
        this.setTimer(at, now);
        return;
      }
      // With `shareLearned` the call at the head (the highest priority) also waits, queued, for
      // the fleet's token: one question to the store at a time, again when the fleet's is back.
      const question =
        this.fleet === undefined || this.fleetPermit !== undefined
          ? undefined
          : this.fleetQuestion(job.cost, now);
      if (question !== undefined) {
        if (this.fleetAt > now) {
          this.setTimer(this.fleetAt, now);
          return;
        }
        this.clearTimer();
        if (!this.fleetAsking) this.askFleet(question);
        return;
      }
      const unregistered =
        this.fleet !== undefined && (this.fleetPermit === undefined || !this.fleetPermitCounts);
      if (unregistered) this.unregistered++;
      const windows = this.fleetPermit === undefined ? NO_WINDOWS : this.fleetPermitWindows;
      this.fleetPermit = undefined;
      this.queue.shift();
      job.cleanup();
      const seq = this.send(job.cost, now, at, job.locals);
      if (unregistered) this.unregisteredOut.add(seq);
      if (this.fleet !== undefined) this.countedOut.set(seq, windows);
      job.resolve(seq);
    }
  };

  private askFleet(question: FleetQuestion): void {
    this.fleetAsking = true;
    const generation = this.fleetWindows;
    // Counted by this question (as far as the fleet has room), whatever its answer.
    if (question.unregistered > 0) {
      this.unregistered = 0;
      this.unregisteredOut.clear();
      this.unregisteredAt = undefined;
    }
    this.fleet!(question).then(
      (answer) => {
        this.fleetAsking = false;
        for (const [scope, kind] of answer.told ?? []) this.quotas.get(scope)?.heard(kind);
        for (const [scope, ms] of answer.windows ?? []) this.quotas.get(scope)?.heardWindow(ms);
        for (const [scope, ms] of answer.refuted ?? []) this.quotas.get(scope)?.lengthRefuted(ms);
        for (const part of question.parts) {
          const quota = this.quotas.get(part.scope);
          if (quota !== undefined) quota.fleetHeld = answer.held;
        }
        if (answer.allowed) {
          this.fleetPermit = answer;
          this.fleetPermitCounts = question.parts.some((p) => p.pace !== undefined || p.window !== undefined);
          const windows = new Map<string, number>();
          for (const part of question.parts)
            if (part.window !== undefined) windows.set(part.scope, part.window.id);
          for (const [scope, id] of answer.counted ?? []) windows.set(scope, id);
          this.fleetPermitWindows = windows;
        } else if (generation === this.fleetWindows) this.fleetAt = this.now() + answer.retryAfterMs;
        this.pump();
      },
      (error: unknown) => {
        // Not the store being down (that lets calls go): the limiter itself refused to be made.
        this.fleetAsking = false;
        const job = this.queue.shift();
        job?.cleanup();
        job?.reject(error);
        this.pump();
      },
    );
  }

  /**
   * A fleet's call, allowed, that its permit did not count in the window of unstated length its
   * answer names (`counted`: the one it did, if any): counted there at once. Past the latest end of
   * the window a process knew, its calls go before it can name the next (one unasked, to learn it:
   * see `Quota.windowEnd`; others by the fleet's spacing alone), while the others may have opened
   * that window and counted theirs in it. Left out, the fleet's count stayed a call short for each,
   * and what a process knows is left (the drain) is stale by the others' calls since (measured:
   * four processes against a `legacy` fixed window, one call of ~77 answered 429 in 4 of 32 cases,
   * the window's 21st).
   */
  private countIn(quota: Quota, counted: number | undefined, receivedAt: number): void {
    const window = quota.fleetWindow(receivedAt);
    if (this.fleet === undefined || window === undefined || window.id === counted) return;
    const { id, limit, waitMs } = window;
    const tell: FleetQuestion = {
      parts: [
        { scope: quota.key, pace: undefined, window: { id, limit, waitMs, known: limit, uncounted: 1 } },
      ],
      unregistered: 0,
      countOnly: true,
    };
    this.fleet(tell).catch(() => {});
  }

  /** Holds every call of this budget until `until` (a Retry-After, or backoff after a bare 429). */
  block(until: number): void {
    if (until <= this.blockedUntil) return;
    this.blockedUntil = until;
  }

  /** An answer arrived for send `seq`. */
  answer(
    seq: number,
    reading: HeaderReading | undefined,
    sentAt: number,
    receivedAt: number,
    status: number,
  ): void {
    this.inFlight--;
    this.markAnswered(seq);
    this.reached(seq, receivedAt);
    const counted = this.countedOut.get(seq);
    this.countedOut.delete(seq);
    this.answered = true;
    if (reading !== undefined) {
      const latest = this.latestUnnamed();
      for (const q of reading.quotas) {
        let quota = this.quotas.get(q.key);
        if (quota === undefined) {
          if (this.quotas.size >= MAX_QUOTAS) continue;
          // A draft-6/7 policy stated no more, in an answer to a call sent before the one that
          // stated its window's last (a slow answer): old news, not a policy back.
          const family = unnamedWindow(q.key);
          const last = family === undefined ? undefined : latest.get(family);
          if (last !== undefined && last.statedSeq() > seq) continue;
          quota = new Quota(q.key, q.unit);
          this.quotas.set(q.key, quota);
          // The call that told it spent from it too.
          const sent = this.sends.find((s) => s.seq === seq);
          if (sent !== undefined) quota.spend(costIn(sent.cost, q.unit), sentAt);
        }
        const refutedBefore = quota.refutedLength();
        const windowBefore = quota.windowName();
        quota.update(q, seq, sentAt, receivedAt, this.clock, this.spentAfter(seq, q.unit), status < 400);
        // (Every answer but a refusal: a server's limiter counts a call before its handler fails.)
        if (counted !== undefined && status !== 429) this.countIn(quota, counted.get(q.key), receivedAt);
        // A new window: the fleet's refusal for the last one (its count full, a wait up to its latest
        // end) no longer holds. Asked again at once (measured: every process of a fleet waited for a
        // window that had ended, up to 0.65 s into the next: 91.7% of the quota used).
        if (
          this.fleet !== undefined &&
          quota.windowName() !== windowBefore &&
          quota.fleetWindow(receivedAt) !== undefined
        ) {
          this.fleetWindows++;
          this.fleetAt = Number.NEGATIVE_INFINITY;
        }
        // A length the fleet paced by, refuted by this refusal: told at once (a question that asks
        // for no permit), not at this budget's next call, which waits for the Retry-After.
        const refuted = quota.refutedLength();
        if (this.fleet !== undefined && refuted !== undefined && refuted !== refutedBefore) {
          const tell: FleetQuestion = {
            parts: [{ scope: q.key, pace: undefined, refuted }],
            unregistered: 0,
          };
          this.fleet(tell).catch(() => {});
        }
      }
      this.forgetSuperseded(receivedAt);
      this.forget();
    }
    // AIMD steps in only while the server has stated no quota at all.
    if (this.aimd !== undefined && this.quotas.size === 0) {
      if (this.aimd.backsOff(status)) this.aimd.limited(receivedAt, this.sentInLastSecond(receivedAt));
      else if (status < 400) this.aimd.succeeded(receivedAt);
    }
    this.pump();
  }

  /** A send that got no answer (network error, abort). */
  unanswered(seq: number): void {
    this.inFlight--;
    this.markAnswered(seq);
    this.countedOut.delete(seq);
    this.reached(seq, this.now());
    this.pump();
  }

  /** A permit held for a call that is not going now (none waiting, or held back) is given back. */
  private returnPermit(): void {
    const permit = this.fleetPermit;
    if (permit === undefined) return;
    this.fleetPermit = undefined;
    // Fail open: a refund the store does not take leaves the fleet's count a call high.
    permit.giveBack().catch(() => {});
  }

  /**
   * What a fleet sharing these quotas asks for the next call (`shareLearned`): every quota whose
   * pace is known, with what this process knows each has left for a call of `cost`.
   */
  private fleetQuestion(cost: Cost, now: number): FleetQuestion | undefined {
    const parts: FleetPart[] = [];
    // draft-6/7 state one policy per answer, named by its quota and window: a policy whose limit
    // changed is a new one, and the old one is stated no more. The last stated of each window holds
    // the others of that window to its limit (see `FleetPart.floor`) until they are forgotten.
    const latest = this.latestUnnamed();
    for (const quota of this.quotas.values()) {
      const pace = quota.fleetPace(now);
      const counted = quota.fleetWindow(now);
      const window =
        counted === undefined
          ? undefined
          : { ...counted, known: Math.floor(counted.left / costIn(cost, quota.unit)) };
      const next = window === undefined ? quota.fleetNextWindows(now, this.clock.skewRange) : undefined;
      if (pace === undefined && window === undefined) {
        // No pace yet, past the end of the window this process knew: only whether the fleet
        // counted the next full (see `Quota.fleetNextWindows`).
        if (next !== undefined && quota.limit !== undefined) {
          parts.push({
            scope: quota.key,
            pace: undefined,
            skew: this.clock.skewRange,
            next: { ...next, limit: quota.limit },
          });
        }
        continue;
      }
      const left = quota.leftAtMost(now);
      let known = left === undefined ? undefined : Math.floor(left / costIn(cost, quota.unit));
      // An unnamed policy stated no more since one of its window with a lower limit was: the old
      // one's mirror is held to the new limit (see `FleetPart.floor`), what is left by its answers.
      const family = unnamedWindow(quota.key);
      const last = family === undefined ? undefined : latest.get(family);
      let floor: number | undefined;
      if (
        last !== undefined &&
        last !== quota &&
        last.limit !== undefined &&
        quota.limit !== undefined &&
        last.limit < quota.limit
      ) {
        floor = quota.limit - last.limit;
        const lastLeft = last.leftAtMost(now);
        if (lastLeft !== undefined) {
          const bound = Math.floor(lastLeft / costIn(cost, last.unit)) + floor;
          known = known === undefined ? bound : Math.min(known, bound);
        }
      }
      const told = quota.toldKind(now);
      const adoptable = quota.adoptable();
      const part: FleetPart = {
        scope: quota.key,
        pace,
        known,
        skew: this.clock.skewRange,
        window,
        told,
        adoptable,
      };
      if (next !== undefined && quota.limit !== undefined) part.next = { ...next, limit: quota.limit };
      const toldWindow = quota.toldWindow();
      if (toldWindow !== undefined) part.toldWindow = toldWindow;
      const windowsToHear = quota.windowsToHear();
      if (windowsToHear.length > 0) part.windowsToHear = windowsToHear;
      const refuted = quota.refutedLength();
      if (refuted !== undefined) part.refuted = refuted;
      if (floor !== undefined) part.floor = floor;
      parts.push(part);
      // A limit that changed: the old one's window too, where the others that have not seen the
      // change count their calls. Held to a lower limit now (see `FleetPart.floor`); a higher one
      // is used once they have seen it (until then all count against the old).
      const retired = quota.retiredPace(now);
      if (retired !== undefined && quota.limit !== undefined) {
        const drop = retired.limit - quota.limit;
        const old: FleetPart = {
          scope: quota.key,
          pace: retired,
          known: known === undefined ? undefined : Math.max(0, known + drop),
          skew: this.clock.skewRange,
        };
        if (drop > 0) old.floor = drop;
        parts.push(old);
      }
    }
    if (parts.length === 0) return undefined;
    // Calls sent unasked are counted by a question that counts calls (one with a pace or a
    // window), not by one that only reads whether a window is full.
    const counts = parts.some((part) => part.pace !== undefined || part.window !== undefined);
    const question: FleetQuestion = { parts, unregistered: counts ? this.unregistered : 0 };
    if (question.unregistered > 0) {
      const by = this.unregisteredOut.size > 0 ? now : this.unregisteredAt;
      if (by !== undefined) question.unregisteredAt = by;
    }
    return question;
  }

  snapshot(now: number): BudgetSnapshot {
    return {
      origin: this.origin,
      credential: this.credential,
      queued: this.queue.size,
      inFlight: this.inFlight,
      blockedUntil: this.blockedUntil > now ? this.blockedUntil : undefined,
      quotas: [...this.quotas.values()].map((q) => q.snapshot(now)),
      limits: [...this.locals.values()].map((q) => q.snapshot(now)),
      tokens: { charged: this.charged, pending: this.pending },
      aimd:
        this.aimd === undefined || !this.aimd.engaged || this.quotas.size > 0
          ? undefined
          : { rate: this.aimd.rate, cooldownUntil: this.aimd.cooldownUntil(now) },
    };
  }

  /**
   * The configured budget `key` (a rule's, for one unit and model), made on first use. Bounded: past
   * MAX_LOCALS, full ones are forgotten (a full bucket is the same as a new one).
   */
  local(key: string, unit: 'requests' | 'tokens', limit: number, windowMs: number): LocalQuota {
    let quota = this.locals.get(key);
    if (quota === undefined) {
      const now = this.now();
      if (this.locals.size >= MAX_LOCALS) {
        for (const [k, q] of this.locals) if (q.idle(now)) this.locals.delete(k);
      }
      quota = new LocalQuota(key, unit, limit, windowMs, now);
      this.locals.set(key, quota);
    }
    return quota;
  }

  /**
   * A sent call's tokens are known: `actual` (undefined: none came back; the estimate stands).
   * Configured token budgets are charged the difference, past zero if need be, so that what they
   * charged is what the calls used.
   */
  settle(locals: readonly LocalQuota[], estimate: number, actual: number | undefined): void {
    const used = actual ?? estimate;
    this.pending -= estimate;
    this.charged += used;
    if (used !== estimate) {
      const now = this.now();
      for (const quota of locals) if (quota.unit === 'tokens') quota.settle(used - estimate, now);
    }
    this.pump();
  }

  /** Calls sent in the second before `now`. */
  private sentInLastSecond(now: number): number {
    while (this.recent.length > 0 && this.recent[0]! <= now - 1000) this.recent.shift();
    return this.recent.length;
  }

  /** When a call of `cost` may go; in the past when it may go now. */
  private readyAt(cost: Cost, now: number, locals: readonly LocalQuota[]): number {
    let at = this.blockedUntil;
    for (const local of locals) at = Math.max(at, local.readyAt(now, costIn(cost, local.unit)));
    for (const quota of this.quotas.values()) {
      at = Math.max(at, quota.readyAt(now, costIn(cost, quota.unit), this.lastSentAt));
    }
    if (this.aimd?.engaged && this.quotas.size === 0) at = Math.max(at, this.lastSentAt + this.aimd.interval);
    return at;
  }

  /**
   * Learned limits below `cost` that may have changed since (see `Quota.limitHeldUntil`) are
   * forgotten, with all their quota told: the next call goes alone, as the first did, and learns
   * the limit again. True when one was.
   */
  private forgetStaleLimits(cost: Cost, now: number): boolean {
    let forgot = false;
    for (const [key, quota] of this.quotas) {
      if (quota.limit === undefined || costIn(cost, quota.unit) <= quota.limit) continue;
      if (now < quota.limitHeldUntil()) continue;
      this.quotas.delete(key);
      forgot = true;
    }
    if (forgot) this.answered = false;
    return forgot;
  }

  private tooLarge(cost: Cost, locals: readonly LocalQuota[]): CostExceedsLimitError {
    for (const quota of locals) {
      const c = costIn(cost, quota.unit);
      if (c > quota.limit) return new CostExceedsLimitError(quota.key, c, quota.limit);
    }
    for (const quota of this.quotas.values()) {
      const c = costIn(cost, quota.unit);
      if (quota.limit !== undefined && c > quota.limit)
        return new CostExceedsLimitError(quota.key, c, quota.limit);
    }
    throw new Error('unreachable: no quota is smaller than the cost');
  }

  private send(cost: Cost, now: number, due: number, locals: readonly LocalQuota[]): number {
    const seq = this.seq++;
    for (const local of locals) local.spend(costIn(cost, local.unit), now);
    this.pending += cost.tokens ?? 0;
    this.inFlight++;
    // Spacing counts from when the call was due, not when a busy event loop got to it, so timer lag
    // does not add up to a lower rate; at most LAG_MS is made up.
    this.lastSentAt = Math.min(now, Math.max(due, now - LAG_MS));
    for (const quota of this.quotas.values()) quota.spend(costIn(cost, quota.unit), now);
    this.sends.push({ seq, cost, answered: false });
    this.recent.push(now);
    if (this.recent.length > MAX_RECENT) this.recent.shift();
    if (this.sends.length > MAX_SENDS) this.sends.shift();
    return seq;
  }

  /**
   * What the answer to `seq` may not count yet: calls sent after it, and calls sent before it still
   * unanswered (the server may decide them after it: separate connections do not keep order).
   */
  private spentAfter(seq: number, unit: QuotaUnit): number {
    let sum = 0;
    for (const sent of this.sends) {
      if (sent.seq > seq || (sent.seq < seq && !sent.answered)) sum += costIn(sent.cost, unit);
    }
    return sum;
  }

  /** An unregistered call (see `fleetQuestion`) surely reached the server by `at`, or never will. */
  private reached(seq: number, at: number): void {
    if (this.unregisteredOut.delete(seq)) this.unregisteredAt = Math.max(this.unregisteredAt ?? at, at);
  }

  private markAnswered(seq: number): void {
    for (let i = this.sends.length - 1; i >= 0; i--) {
      if (this.sends[i]!.seq === seq) {
        this.sends[i]!.answered = true;
        return;
      }
    }
  }

  /**
   * draft-6/7 name a policy by its quota and window: one whose limit changed is stated as a new
   * policy, and the old one no more. It stops binding two of its windows after another became its
   * window's last stated (until then the fleet's processes that have not seen the change count
   * their calls under it: see `FleetPart.floor`); a higher limit is used from then on. A policy
   * stated again is the last again, whatever it was before.
   */
  private forgetSuperseded(now: number): void {
    const latest = this.latestUnnamed();
    for (const family of this.unnamedSince.keys()) if (!latest.has(family)) this.unnamedSince.delete(family);
    for (const [family, quota] of latest) {
      if (this.unnamedSince.get(family)?.key !== quota.key) {
        this.unnamedSince.set(family, { key: quota.key, since: now });
      }
    }
    for (const [key, quota] of this.quotas) {
      const family = unnamedWindow(key);
      if (family === undefined || latest.get(family) === quota || quota.windowMs === undefined) continue;
      const since = this.unnamedSince.get(family)!.since;
      if (now - since >= 2 * quota.windowMs) this.quotas.delete(key);
    }
  }

  /**
   * The last stated draft-6/7 policy of each window (see `unnamedWindow`): the one whose last
   * answer was to the call sent last.
   */
  private latestUnnamed(): Map<string, Quota> {
    const latest = new Map<string, Quota>();
    for (const quota of this.quotas.values()) {
      const family = unnamedWindow(quota.key);
      if (family === undefined) continue;
      const last = latest.get(family);
      if (last === undefined || quota.statedSeq() > last.statedSeq()) latest.set(family, quota);
    }
    return latest;
  }

  /** Sends older than every in-flight call and every quota's answer are no longer needed. */
  private forget(): void {
    if (this.inFlight === 0 && this.sends.length > 0) this.sends.length = 0;
  }

  private setTimer(at: number, now: number): void {
    if (this.timer !== undefined && this.timerAt === at) return;
    this.clearTimer();
    this.timerAt = at;
    // Whole milliseconds, rounded up: a timer may fire at the floor of a fractional delay, and the
    // pump would find it is not time yet.
    this.timer = setLongTimeout(this.wake, Math.ceil(at - now));
  }

  private wake = (): void => {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    this.pump();
  };

  private clearTimer(): void {
    if (this.timer === undefined) return;
    this.timer.clear();
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }
}

/**
 * What a call costs in a quota's unit: what the call says, else 1 (a request; and a call of unknown
 * token cost needs at least one token, so a token quota at zero holds it).
 */
export const costIn = (cost: Cost, unit: QuotaUnit): number => cost[unit] ?? 1;
