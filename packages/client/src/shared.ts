import { CostExceedsLimitError, DeadlineError } from './errors.js';
import type { ResolvedRule } from './limits.js';
import { setLongTimeout, sleep } from './sleep.js';

/** What the client reads of a tollgate `Decision`. */
interface SharedDecision {
  allowed: boolean;
  /** `store-error`: the store did not answer, the limiter let the call through (fail open). */
  reason?: string;
  remaining: number;
  resetMs: number;
  retryAfterMs: number;
  countedAt?: number;
}

/** What the client reads of a tollgate `Reservation` (`limiter.reserve`). */
interface SharedReservation {
  decision: SharedDecision;
  settle(actual: number): Promise<unknown>;
  release(): Promise<void>;
}

/** The part of a tollgate `Limiter` (from `@tollgate/core`'s `createLimiter`) the client calls. */
interface SharedLimiter {
  consume(key: string, options: { cost: number }): Promise<SharedDecision>;
  refund(key: string, cost: number, options?: { countedAt?: number }): Promise<void>;
  peek(key: string): Promise<SharedDecision>;
  reserve?(key: string, options: { cost: number }): Promise<SharedReservation>;
}

type CreateLimiter = (options: Record<string, unknown>) => SharedLimiter;

/** A spend from the shared budgets, to be settled once the call's tokens are known. */
export interface SharedSpend {
  /** Charges the tokens the call used instead of its estimate (undefined: keep the estimate). */
  settle(actual: number | undefined): Promise<void>;
  /** The call was never sent: gives back everything it spent. */
  cancel(): Promise<void>;
}

const NO_SPEND: SharedSpend = { settle: async () => {}, cancel: async () => {} };

/** A rule's name as a tollgate limiter name allows (letters, digits, `.`, `_`, `:`, `/`, `-`). */
const safe = (name: string) => name.replace(/[^A-Za-z0-9._:/-]/g, '_');

/**
 * Configured budgets (`limits`) kept in a tollgate store, so that every process using the store
 * spends from one budget: per rule and unit, one tollgate limiter of token buckets (one per
 * window), keyed by origin, credential hash and model. Reached through `@tollgate/core`, an
 * optional peer dependency loaded on first use.
 */
export class SharedBudgets {
  private limiters: Promise<Map<string, SharedLimiter>> | undefined;

  constructor(
    private readonly store: unknown,
    private readonly rules: readonly ResolvedRule[],
  ) {}

  private load(): Promise<Map<string, SharedLimiter>> {
    this.limiters ??= import('@tollgate/core').then((core) => {
      const createLimiter = core.createLimiter as unknown as CreateLimiter;
      const map = new Map<string, SharedLimiter>();
      for (const rule of this.rules) {
        for (const unit of ['requests', 'tokens'] as const) {
          const windows = rule.windows.filter((w) => w.unit === unit);
          if (windows.length === 0) continue;
          const name = `client:${safe(rule.name)}:${unit}`.slice(0, 64);
          const policies = windows.map((w) => ({
            name: w.label,
            algorithm: 'token-bucket',
            limit: w.limit,
            window: w.windowMs,
          }));
          // Fail open: while the store is down each process goes on its own pacing.
          map.set(
            `${rule.name}\n${unit}`,
            createLimiter({ policies, store: this.store, name, onStoreError: 'allow' }),
          );
        }
      }
      return map;
    });
    return this.limiters;
  }

  /**
   * Waits until every shared budget the call spends from (`scopes`: rule and model) has room for
   * one request and `tokens`, and spends them. All or nothing: when one refuses, what the others
   * gave is given back while the call waits, and it tries again.
   */
  async spend(
    scopes: ReadonlyArray<{ rule: ResolvedRule; scope: string }>,
    key: string,
    origin: string,
    tokens: number | undefined,
    signal: AbortSignal | null | undefined,
    deadline: number | undefined,
    now: () => number,
  ): Promise<SharedSpend> {
    if (scopes.length === 0) return NO_SPEND;
    const limiters = await this.load();
    const parts: Array<{
      limiter: SharedLimiter;
      key: string;
      cost: number;
      rule: ResolvedRule;
      unit: string;
    }> = [];
    for (const { rule, scope } of scopes) {
      for (const unit of ['tokens', 'requests'] as const) {
        const limiter = limiters.get(`${rule.name}\n${unit}`);
        if (limiter === undefined) continue;
        const cost = unit === 'requests' ? 1 : (tokens ?? 1);
        parts.push({ limiter, key: scope === '' ? key : `${key} ${scope}`, cost, rule, unit });
      }
    }
    for (;;) {
      const held: Array<() => Promise<void>> = [];
      const settlers: Array<(actual: number | undefined) => Promise<unknown>> = [];
      let refused: { decision: SharedDecision; part: (typeof parts)[number] } | undefined;
      for (const part of parts) {
        const { limiter, key: k, cost } = part;
        if (part.unit === 'tokens' && limiter.reserve !== undefined) {
          const reservation = await limiter.reserve(k, { cost });
          if (!reservation.decision.allowed) {
            refused = { decision: reservation.decision, part };
            break;
          }
          held.push(() => reservation.release());
          settlers.push((actual) => reservation.settle(actual ?? cost));
          continue;
        }
        const decision = await limiter.consume(k, { cost });
        if (!decision.allowed) {
          refused = { decision, part };
          break;
        }
        const at = decision.countedAt === undefined ? {} : { countedAt: decision.countedAt };
        held.push(() => limiter.refund(k, cost, at));
        if (part.unit === 'tokens') {
          // Without reservations (a core before `reserve`): less is refunded; more is charged as
          // far as the budget has room.
          settlers.push(async (actual) => {
            if (actual === undefined || actual === cost) return;
            if (actual < cost) await limiter.refund(k, cost - actual, at);
            else await limiter.consume(k, { cost: actual - cost });
          });
        }
      }
      if (refused === undefined) {
        return {
          settle: async (actual) => void (await Promise.all(settlers.map((s) => s(actual)))),
          cancel: async () => void (await Promise.all(held.map((give) => give()))),
        };
      }
      await Promise.all(held.map((give) => give()));
      const wait = this.waitOf(refused.decision, refused.part.rule, refused.part.unit, refused.part.cost);
      if (deadline !== undefined && now() + wait > deadline) throw new DeadlineError(origin);
      await sleep(wait, signal);
    }
  }

  private waitOf(decision: SharedDecision, rule: ResolvedRule, unit: string, cost: number): number {
    if (decision.retryAfterMs === Number.POSITIVE_INFINITY) {
      const limit = Math.min(...rule.windows.filter((w) => w.unit === unit).map((w) => w.limit));
      throw new CostExceedsLimitError(`${rule.name}:${unit}`, cost, limit);
    }
    return Math.max(1, decision.retryAfterMs);
  }
}

/** The longest fleet bucket of spacings, in ms: 2^49 (a tollgate window takes up to 2^51). */
const MAX_FLEET_SPAN = 2 ** 49;
/**
 * The fleet's bucket of spacings for every span up to 2^26 ms (some 18.6 hours): one bucket, so
 * that processes whose estimates differ (each learns from its own answers) still pace through the
 * same one. Longer spans have a bucket per power of two.
 */
const SHARED_SPAN = 2 ** 26;
/**
 * A token bucket's limit times its window must stay within 2^53 (tollgate refuses more): a bucket
 * spanning `span` ms counts tokens of `span / limit` ms, one a millisecond up to 2^26.
 */
const bucketLimit = (span: number): number => Math.max(1, Math.min(span, Math.floor(2 ** 52 / span)));
/** Fleet limiters kept at most; past it they are made again on use. */
const MAX_FLEET_LIMITERS = 64;
/**
 * The longest window a tollgate policy takes (core's MAX_WINDOW_MS, 2^51 ms, some 71 000 years):
 * a fleet bucket's window (spacing times burst) is clamped to it. A quota that slow holds every
 * call but the first for ages either way.
 */
const MAX_FLEET_WINDOW_MS = 2 ** 51;

/**
 * How a fleet sends by one quota: `spacing` ms apart, `burst` in a row at most (a policy of
 * unstated window); or mirrored, the server's policy of stated `limit` and `window` kept in the
 * store (see `SharedPacing.decide`).
 */
export type FleetPace =
  | {
      spacing: number;
      burst: number;
      slack?: number;
      /** A sliding window of unstated length whose length the resets told (see `Quota.steppedWindow`). */
      sliding?: { window: number; limit: number };
    }
  | { mirror: 'fixed-window' | 'token-bucket' | 'sliding-window'; window: number; limit: number };

/** One quota a fleet's call spends from, as a process knows it. */
export interface FleetPart {
  /** The quota's key (the draft-8 policy name, `20;w=2`): each quota has its own state. */
  scope: string;
  /** Undefined while only the window is known (see `window`). */
  pace: FleetPace | undefined;
  /**
   * At most how many calls the server has left for this one, as this process surely knows
   * (its last answer, less what it sent since): a fleet count showing more is drained down to it.
   */
  known?: number | undefined;
  /** The server's clock minus ours, as far as its `Date`s tell (a sliding window's mirror). */
  skew?: [number, number];
  /**
   * A window of unstated length this process surely is in (see `Quota.fleetWindow`): `id`, its
   * reset as the server writes it, names it alike for every process that has an answer from it, so
   * the fleet counts its calls there up to `limit`; `waitMs` until it surely ended at the latest;
   * `known` calls at most left in it, as this process's last answer tells (drained to);
   * `uncounted`, this process's calls its answers put in it that the fleet did not count (sent
   * unasked: see `Budget.countIn`), counted now.
   */
  window?: { id: number; limit: number; waitMs: number; known: number; uncounted?: number } | undefined;
  /**
   * Past the latest end of the window of unstated length this process knew: the names the next may
   * have (see `Quota.fleetNextWindows`). The call waits while the fleet counted any of them full:
   * it would be that window's call past its limit (measured: a process held back by the others'
   * calls for a window, on a simulated server, sent one a run, answered 429, at the spacing alone).
   * It is counted in the window its answer names (see `window.uncounted`).
   */
  next?: { ids: number[]; limit: number; length: number | undefined };
  /** The kind this process told from its own answers, no window being stated (see `Quota.toldKind`). */
  told?: ToldKind | undefined;
  /** Whether this process takes a kind the fleet told (see `Quota.heard`). */
  adoptable?: boolean;
  /** The sliding window this process tells the others, no window being stated (see `Quota.toldWindow`). */
  toldWindow?: number | undefined;
  /** The windows this process would take from the others (see `Quota.windowsToHear`). */
  windowsToHear?: number[];
  /** A length read from the resets that a refusal refuted here, told to the others (see `Quota.refusedStepped`). */
  refuted?: number;
  /**
   * A mirrored policy whose stated limit has dropped since (see `Quota.retiredPace`): the limit
   * less the one stated now. Its window's count, which the processes that have not seen the drop
   * still spend from, is held to the limit now: the call is refused where less than this is left
   * after it (`known` is in the old limit's terms, this added). Only the window is asked.
   */
  floor?: number;
}

/** A kind of quota one process tells from its answers and the fleet's others take (see `Quota.heard`). */
export type ToldKind = 'bucket' | 'sliding';

/** A process's question for its next call: every quota it spends from, all or nothing. */
export interface FleetQuestion {
  parts: FleetPart[];
  /** Calls this process sent before it knew the pace (the first, which learns it): counted now. */
  unregistered: number;
  /** By when (local ms) they surely reached the server: their answers' arrival, else now. */
  unregisteredAt?: number;
  /** Asks for no permit: only counts the windows' `uncounted` calls (see `FleetPart.window`). */
  countOnly?: boolean;
}

/** The store's answer: a permit (which `giveBack` returns, unused), or how long until one is back. */
export interface FleetAnswer {
  allowed: boolean;
  retryAfterMs: number;
  giveBack(): Promise<void>;
  /**
   * What the fleet tells of the kind of the question's adoptable quotas, by scope (undefined: no
   * process tells one; see `Quota.heard`).
   */
  told?: ReadonlyArray<[scope: string, kind: ToldKind | undefined]>;
  /**
   * The smallest of the windows asked about that the fleet tells, by scope (undefined: none; see
   * `Quota.heardWindow`).
   */
  windows?: ReadonlyArray<[scope: string, ms: number | undefined]>;
  /** Lengths read from the resets that a process's refusal refuted, by scope (see `Quota.lengthRefuted`). */
  refuted?: ReadonlyArray<[scope: string, ms: number]>;
  /** Whether the store held every count this answer asked for (false: it failed open). */
  held: boolean;
  /**
   * The windows of unstated length past the one its process knew that the permit counted its call
   * in, by scope (see `SharedPacing.nextWindow`).
   */
  counted?: ReadonlyArray<[scope: string, id: number]>;
}

/** One limiter a call spends `cost` from, under `key`. */
interface Check {
  limiter: SharedLimiter;
  key: string;
  cost: number;
  /**
   * Drains after this call: where more than `above` units are left, down to `to` (the least of
   * those that apply): `known` calls less this one, a burst.
   */
  drains?: Array<{ above: number; to: number }>;
  /** A fixed window's margin (see `fleetMargin`): no call is counted in its last two. */
  margin?: number;
  /**
   * A mirrored sliding window: its length; how far ahead of the store's the server's windows may
   * start (see `SharedPacing.fade`); the first ms of the store's window in which no call is
   * counted (see `permit`).
   */
  sliding?: { window: number; ahead: number; behind: number; guard: number };
  /**
   * Calls sent before the pace was known are all counted (see `slidingPace`), not only as far as
   * there is room: what does not fit is owed, under this name, and paid before this process's
   * next call.
   */
  owes?: string;
  limit: number;
  /** What a spacing with a slack left unrounded after this call, committed once it is allowed. */
  carry?: { key: string; left: number };
  /** How long a refusal holds at most (a window counter's own window is far longer than the server's). */
  waitMs?: number;
  /** The call is refused where less than this is left after it (see `FleetPart.floor`). */
  floor?: number;
  /**
   * A count of one window's calls: calls sent before the pace was known may have gone in an earlier
   * window, so they are not counted here (the drain to what the server says is left counts them).
   */
  windowed?: boolean;
  /** Calls the answers put in this window that the fleet did not count (see `FleetPart.window`): counted now. */
  uncounted?: number;
}

/**
 * The margin a fleet's fixed window lasts beyond the server's: the server's window opens when the
 * fleet's first call of it arrives, a little after the fleet counted it, so the fleet's window must
 * end no earlier than the server's. 2% of the window, 20 ms to a second.
 */
export const fleetMargin = (windowMs: number): number =>
  Math.min(1000, Math.max(20, Math.ceil(windowMs * 0.02)));

/**
 * How far behind its `Date`s a server may keep its windows: tollgate's memory store counts on a
 * monotonic clock a few ms off the wall clock (see `Quota`'s RESET_SLACK).
 */
const RESET_SLACK_MS = 5;

/**
 * The last ms of a mirrored sliding window in which no call is counted (see `SharedPacing.permit`):
 * a call's way to the server, and how far behind the store's its windows may end.
 */
const END_GUARD_MS = 10;

/** Timers at most that give back calls sent before the pace was known (see `SharedPacing.fade`). */
const FADE_STEPS = 16;

/** A sliding window's pace in the fleet is counted in parts of a call (see `slidingPace`). */
const SLIDING_UNITS = 10;

/**
 * How far the server's and the store's clocks may sit from a multiple of the window apart for a
 * sliding window to be mirrored (its windows lie on multiples of the window on each clock).
 */
const slidingTolerance = (windowMs: number): number => Math.max(20, windowMs / 100);

/**
 * Limiter names a SharedPacing makes at most. Each is kept by the core for the store's life (it
 * tells two limiters sharing counters apart), and a server that states a new policy on every
 * answer would make a new one each time: past this, the fleet's calls go on each process's own
 * pacing (fail open), as when the store is down.
 */
const MAX_FLEET_NAMES = 1024;

const NOTHING = async () => {};

/**
 * How long the fleet counts the calls in one window of unstated length (each under its own reset):
 * an hour, beyond which the count starts over (a longer window is still held by what each
 * process's last answer says is left, the count drained to it).
 */
const WINDOW_COUNTER = '1h';
const WINDOW_COUNTER_MS = 3_600_000;

/**
 * The fleet's word on a quota's kind (see `SharedPacing.kinds`): a process that tells one votes for
 * it every five seconds while it does (at its calls); a vote empties a bucket of twenty that
 * refills one a second, so it reads as voted (not full) for twenty seconds after the last vote,
 * whoever cast it and however often (its teller gone, or no longer seeing it; see
 * `Quota.toldKind`). A process that may take one reads the votes at most once a second.
 */
const KIND_VOTES = { algorithm: 'token-bucket', limit: 20, window: '20s' } as const;
const VOTE_AGAIN_MS = 5000;
const HEAR_EVERY_MS = 1000;
/** Quotas whose votes a process remembers; past it they are forgotten and asked again. */
const MAX_KIND_KEYS = 1024;

/**
 * The learned quotas paced across processes (`shareLearned`): the fleet's calls to one origin and
 * credential each take a permit from limiters in the store, for every quota at once. A policy of
 * stated window is mirrored there (see `decide`); one of unstated window goes through a token
 * bucket of milliseconds, each call costing its spacing. The policy is part of each limiter's
 * name, so processes that learned different policies never read each other's state as their own.
 */
export class SharedPacing {
  private createLimiter: Promise<CreateLimiter> | undefined;
  private readonly limiters = new Map<string, SharedLimiter>();
  private names = 0;
  /**
   * The store's clock minus ours, narrowed by every decision's `countedAt`; taken for ours until
   * the first (a store on this host, or on one whose clock is kept like ours).
   */
  private storeSkew: [number, number] = [0, 0];
  private storeSkewKnown = false;
  /** When this process last voted for a kind or window (see `vote`), by what it voted for. */
  private readonly voted = new Map<string, number>();
  /**
   * Units this process owes a limiter (see `Check.owes`), by limiter name and key, and when it next
   * tries to pay (see `payOff`).
   */
  private readonly owed = new Map<string, { units: number; payAt: number }>();
  /** What a spacing with a slack left unrounded, by key (see `spacingCheck`). */
  private readonly carry = new Map<string, number>();
  /** The window the fleet told of a quota as last read, of those asked, and when (see `windows`). */
  private readonly heardWindows = new Map<string, { at: number; asked: string; ms: number | undefined }>();
  /** The kind the fleet told of a quota as last read, and when. */
  private readonly heard = new Map<string, { at: number; kind: ToldKind | undefined }>();

  constructor(
    private readonly store: unknown,
    private readonly now: () => number,
  ) {}

  private async limiter(name: string, policy: Record<string, unknown>): Promise<SharedLimiter | undefined> {
    this.createLimiter ??= import('@tollgate/core').then(
      (core) => core.createLimiter as unknown as CreateLimiter,
    );
    const createLimiter = await this.createLimiter;
    let limiter = this.limiters.get(name);
    if (limiter === undefined) {
      if (this.names >= MAX_FLEET_NAMES) return undefined;
      if (this.limiters.size >= MAX_FLEET_LIMITERS) this.limiters.clear();
      this.names++;
      // Fail open: while the store is down each process goes on its own pacing.
      limiter = createLimiter({
        policies: [{ name: 'fleet', ...policy }],
        store: this.store,
        name: `client-fleet:${name}`,
        onStoreError: 'allow',
      });
      this.limiters.set(name, limiter);
    }
    return limiter;
  }

  /** A consume that also narrows the store's clock offset from its `countedAt`. */
  private async consume(limiter: SharedLimiter, key: string, cost: number): Promise<SharedDecision> {
    const before = this.now();
    const decision = await limiter.consume(key, { cost });
    if (decision.countedAt !== undefined) {
      const lo = decision.countedAt - this.now();
      const hi = decision.countedAt - before;
      const [oldLo, oldHi] = this.storeSkew;
      this.storeSkew =
        !this.storeSkewKnown || lo > oldHi || hi < oldLo
          ? [lo, hi]
          : [Math.max(lo, oldLo), Math.min(hi, oldHi)];
      this.storeSkewKnown = true;
    }
    return decision;
  }

  /**
   * A spacing bucket: a call costs its `spacing` in ms of a bucket refilled one ms per ms. Every
   * process paces a quota through one bucket (spans up to SHARED_SPAN), each call taking the time
   * its process thinks it needs: estimates that differ (each learns from its own answers) still
   * add up in one place. The bucket holds far more than a call's spacing; after an idle spell it
   * is drained (see below). (`exact`: a spacing every process computes alike, from a
   * stated policy: a bucket of `burst` spacings.) (A string window: a number under a second would
   * draw TOLLGATE_NUMERIC_WINDOW.)
   */
  private async spacingCheck(
    key: string,
    { spacing, burst, slack }: { spacing: number; burst: number; slack?: number },
    known?: number,
    exact = false,
  ): Promise<Check | undefined> {
    // With a slack stated: whole ms, what is rounded off carried to the next call (a sliding
    // window's pace of 105.3 ms charged as 106 sends 1% under it).
    let cost = Math.max(1, Math.ceil(spacing));
    let carry: Check['carry'];
    if (slack !== undefined) {
      const carried = (this.carry.get(key) ?? 0) + spacing;
      cost = Math.max(1, Math.floor(carried));
      carry = { key, left: carried - cost };
    }
    const span = Math.min(MAX_FLEET_SPAN, cost * burst);
    const capacity = exact ? span : span <= SHARED_SPAN ? SHARED_SPAN : 2 ** Math.ceil(Math.log2(span));
    const limit = bucketLimit(capacity);
    const limiter = await this.limiter(`ms:${capacity}`, {
      algorithm: 'token-bucket',
      limit,
      window: `${capacity}ms`,
    });
    if (limiter === undefined) return undefined;
    // In tokens of `capacity / limit` ms (one ms up to SHARED_SPAN).
    const charge = Math.min(limit, Math.ceil((cost * limit) / capacity));
    const check: Check = { limiter, key, cost: charge, limit };
    if (carry !== undefined) check.carry = carry;
    // After an idle spell, at most twice `burst` in a row: drained to `burst` - 1 spacings and a
    // quarter of one once it holds more than 2 `burst` - 1 spacings after the call (what a send's
    // lag leaves over stays: in a steady stream no call drains, a store command more, and the
    // next call does not lose it). Where this process's last answer leaves `known` calls: to
    // `known` - 1 spacings, as soon as it holds more.
    // With a slack stated, (`burst` - 1 spacings and) that share of one at most after every call.
    check.drains =
      slack === undefined
        ? [{ above: (2 * burst - 1) * charge, to: (burst - 1) * charge + Math.floor(charge / 4) }]
        : [
            {
              above: (burst - 1) * charge + Math.floor(charge * slack),
              to: (burst - 1) * charge + Math.floor(charge * slack),
            },
          ];
    if (known !== undefined) {
      const knownTo = Math.max(0, (known - 1) * charge);
      check.drains.push({ above: knownTo, to: knownTo });
    }
    return check;
  }

  /**
   * A sliding window's pace where its windows may not lie on the store's: calls at least
   * `window / (limit - 1)` apart reach a sliding window at a count of `limit - 1` at most, wherever
   * its windows lie (the most it sustains; see `Quota.fleetPace`). A token bucket of that rate in
   * tenths of a call, holding a call and a tenth: a call sent up to a tenth of the spacing late is
   * made up by the next, not lost (each refusal's wait and store commands make calls a few ms late:
   * at 99% of the rate in whole ms with no such slack the fleet used 90-95% of the quota). The
   * slack is only what lateness left: whole tenths left after a call (after an idle spell) are
   * drained, so no run of calls is ever closer than the spacing less a tenth of it, once (a
   * reviewer's run: after a pause, 20 calls in 1990 ms, and the server's next window refused its
   * first). The calls sent before the pace was known are counted in it whole, what does not fit
   * owed and paid from what comes back (see `payOff`): they went at once, and the server's sliding
   * window (not mirrored where its windows may lie elsewhere) counts them with the rest (measured:
   * four processes' first calls, then the pace, filled the server's first window to 20, and its
   * next window's first call was answered 429).
   */
  private async slidingPace(key: string, window: number, limit: number): Promise<Check | undefined> {
    const units = SLIDING_UNITS;
    if ((limit - 1) * units * (units + 1) * window > 2 ** 52) {
      return this.spacingCheck(key, { spacing: window / ((limit - 1) * 0.99), burst: 1 }, undefined, true);
    }
    const name = `sliding-pace:${window}x${limit}`;
    const limiter = await this.limiter(name, {
      algorithm: 'token-bucket',
      limit: (limit - 1) * units,
      window: `${window}ms`,
      burst: units + 1,
    });
    return limiter === undefined
      ? undefined
      : {
          limiter,
          key,
          cost: units,
          limit: (limit - 1) * units,
          owes: name,
          // Whole tenths left after a call (an idle spell filled the slack) are drained.
          drains: [{ above: 0, to: 0 }],
        };
  }

  /**
   * Calls sent before the pace was known, counted now in a mirrored sliding window (`counted`
   * units at store time `countedAt`), though sent in an earlier window of the store's clock: the
   * server weighs them as its last window's, less and less as the window slides past them, and
   * not at all from the next. Counted whole in the store's current window they would hold the
   * fleet back for the whole of it and weigh in the next (measured: a fleet that started 73 ms
   * before a window's end sent 16 calls in the next, not 19, and none for 369 ms). So they are
   * given back as their weight falls: at once down to what they weigh now, rounded up, then one
   * by one as it falls below each whole call, the last at the window's end.
   */
  private fade(
    check: Check,
    { window: windowMs, ahead, behind }: { window: number; ahead: number; behind: number },
    counted: number,
    reachedBy: number,
    countedAt?: number,
  ): void {
    if (countedAt === undefined || counted <= 0) return;
    const start = countedAt - (countedAt % windowMs);
    // When the server counted them, on the store's clock at its latest (they reached it by
    // `reachedBy`, local): in this window for all it knows, where its windows may start `ahead`
    // ms before the store's, they weigh whole; two windows back or more, nothing.
    const reached = reachedBy + this.storeSkew[1];
    if (reached >= start - ahead) return;
    const at = { countedAt };
    const give = (units: number) => check.limiter.refund(check.key, units, at).catch(NOTHING);
    const weighs =
      reached < start - ahead - windowMs
        ? 0
        : Math.ceil((counted * (start + behind + windowMs - countedAt)) / windowMs);
    if (counted > weighs) void give(counted - weighs);
    // One unit each time their weight falls below a whole call, in FADE_STEPS timers at most (a
    // group given back when its last unit's weight has gone): however many calls went unpaced.
    const group = Math.ceil(weighs / FADE_STEPS);
    for (let j = weighs; j >= 1; j -= group) {
      const units = Math.min(group, j);
      // The group's last unit's weight falls to j - units calls at this store time (later where
      // the server's window starts up to `behind` ms after the store's).
      const when = start + behind + Math.ceil((windowMs * (counted - j + units)) / counted);
      // (A timer past 24.8 days is waited in parts: Node's own would fire at once.)
      setLongTimeout(() => void give(units), Math.max(0, when - countedAt), true);
    }
  }

  /** Records `units` this process owes `check`'s limiter (see `Check.owes`) and starts paying. */
  private owe(check: Check, units: number): void {
    const key = `${check.owes}\n${check.key}`;
    // A window's calls at most: the server's sliding window holds no more.
    const most = check.limit;
    const owed = this.owed.get(key);
    if (owed !== undefined) {
      owed.units = Math.min(most, owed.units + units);
      return;
    }
    if (this.owed.size >= MAX_FLEET_LIMITERS) return;
    this.owed.set(key, { units: Math.min(most, units), payAt: this.now() });
    void this.payOff(check, key);
  }

  /**
   * Pays what this process owes `check`'s limiter as it comes back, a unit at a time if need be,
   * whether or not the process calls again (a process whose first call was its last still owes
   * it): the others' calls wait meanwhile. A store that fails forgives it (fail open).
   */
  private async payOff(check: Check, key: string): Promise<void> {
    const { limiter, key: limiterKey } = check;
    for (;;) {
      const owed = this.owed.get(key);
      if (owed === undefined) return;
      let paid = 0;
      let wait = 0;
      try {
        const whole = await this.consume(limiter, limiterKey, owed.units);
        if (whole.reason === 'store-error' || whole.allowed) paid = owed.units;
        else {
          const part = Math.min(owed.units, whole.remaining);
          if (part > 0 && (await this.consume(limiter, limiterKey, part)).allowed) paid = part;
          // The next unit's wait (a call needs more: this pays before the others' calls).
          if (paid < owed.units) wait = (await limiter.peek(limiterKey)).retryAfterMs;
        }
      } catch {
        paid = owed.units;
      }
      owed.units -= paid;
      if (owed.units <= 0) {
        this.owed.delete(key);
        return;
      }
      wait = Math.max(1, wait);
      owed.payAt = this.now() + wait;
      await new Promise<void>((resolve) => setTimeout(resolve, wait).unref?.());
    }
  }

  /** The limiters a part's call spends from (undefined: past MAX_FLEET_NAMES). */
  private async checks(base: string, part: FleetPart): Promise<Check[] | undefined> {
    const key = `${base} ${part.scope}`;
    const { pace, known } = part;
    // The calls in a window of unstated length, counted under its reset: what a process's own
    // last answer leaves is no bound once the others have spent from it since. Asked first, so
    // that the drain to what this process knows is left happens even when its spacing refuses.
    let counted: Check | undefined;
    if (part.window !== undefined) {
      const { id, limit, waitMs } = part.window;
      const left = part.window.known;
      const counter = await this.windowCounter(limit);
      if (counter === undefined) return undefined;
      counted = { limiter: counter, key: `${key} @${id}`, cost: 1, limit, waitMs, windowed: true };
      if (part.window.uncounted !== undefined) counted.uncounted = part.window.uncounted;
      const to = Math.max(0, left - 1);
      counted.drains = [{ above: to, to }];
    }
    if (pace === undefined) return counted === undefined ? [] : [counted];
    /** A limiter of the server's own policy: its count drained to what this process knows is left. */
    const mirroredOf =
      (limit: number) =>
      async (algorithm: string, span: number, margin?: number): Promise<Check | undefined> => {
        const limiter = await this.limiter(`${algorithm}:${span}x${limit}`, {
          algorithm,
          limit,
          window: `${span}ms`,
        });
        if (limiter === undefined) return undefined;
        const check: Check = { limiter, key, cost: 1, limit };
        if (known !== undefined) {
          const to = Math.max(0, known - 1);
          check.drains = [{ above: to, to }];
        }
        if (margin !== undefined) check.margin = margin;
        return check;
      };
    if (!('mirror' in pace)) {
      const check = await this.spacingCheck(key, pace, known);
      if (check === undefined) return undefined;
      const checks: Array<Check | undefined> = counted === undefined ? [check] : [counted, check];
      // A sliding window whose length the resets told (see `Quota.steppedWindow`): paced through
      // the spacing bucket every process shares, whatever it reads, and mirrored where the server's
      // windows may lie on the store's, for the first and last ms of each window (see `permit`): at exactly
      // `(limit - 1) / window` the calls keep one phase against the server's windows, and where a
      // window's first call was due just before it and sent a few ms late, the next, made up for
      // it, reaches the server before the window has room for it, window after window.
      if (pace.sliding !== undefined) {
        const { window, limit } = pace.sliding;
        const mirrored = mirroredOf(limit);
        const { check: mirror } = await this.slidingMirror(part, window, (span) =>
          mirrored('sliding-window', span),
        );
        if (mirror !== null) checks.push(mirror);
      }
      return checks.some((c) => c === undefined) ? undefined : (checks as Check[]);
    }
    const { mirror, window, limit } = pace;
    const stated = Math.min(MAX_FLEET_WINDOW_MS, Math.ceil(window));
    const mirrored = mirroredOf(limit);
    if (part.floor !== undefined) {
      // A fixed window's limit that has dropped: its window's count only (the rate is the one now).
      if (mirror !== 'fixed-window') return [];
      const margin = fleetMargin(window);
      const check = await mirrored('fixed-window', Math.min(MAX_FLEET_WINDOW_MS, stated + margin), margin);
      if (check === undefined) return undefined;
      check.floor = part.floor;
      return [check];
    }
    const checks = [await mirrored('token-bucket', stated)];
    if (mirror === 'fixed-window') {
      const margin = fleetMargin(window);
      checks.push(await mirrored('fixed-window', Math.min(MAX_FLEET_WINDOW_MS, stated + margin), margin));
    } else if (mirror === 'sliding-window') {
      // The store's sliding windows lie on multiples of the window on its clock, the server's on
      // its own. Where the two clocks are surely a multiple of the window apart (within the
      // tolerance), the sliding window is mirrored; where they surely are not, the fleet is paced
      // at the `(limit - 1) / window` a sliding window sustains (see `slidingPace`); while unsure,
      // by both, so that processes deciding differently still share a limiter.
      const { check, surely } = await this.slidingMirror(part, stated, (span) =>
        mirrored('sliding-window', span),
      );
      if (check !== null) checks.push(check);
      if (!surely) {
        // A sliding window of 1 admits a call once the window after the last one's has begun: two
        // windows apart, wherever they lie.
        checks.push(
          limit >= 2
            ? await this.slidingPace(key, stated, limit)
            : await this.spacingCheck(key, { spacing: 2 * stated, burst: 1 }, undefined, true),
        );
      }
    }
    return checks.some((c) => c === undefined) ? undefined : (checks as Check[]);
  }

  /**
   * A sliding window of `window` ms mirrored in the store where the server's windows may lie on the
   * store's (null where they surely do not), and whether they surely do. The store's sliding
   * windows lie on multiples of the window on its clock, the server's on its own: the two clocks
   * must be a multiple of the window apart, within the tolerance.
   */
  private async slidingMirror(
    part: FleetPart,
    window: number,
    mirrored: (span: number) => Promise<Check | undefined>,
  ): Promise<{ check: Check | undefined | null; surely: boolean }> {
    const [sLo, sHi] = part.skew ?? [0, 0];
    const [tLo, tHi] = this.storeSkew;
    const tolerance = slidingTolerance(window);
    const lo = sLo - tHi;
    const hi = sHi - tLo;
    const nearest = Math.round((lo + hi) / 2 / window) * window;
    const surely = lo >= nearest - tolerance && hi <= nearest + tolerance;
    const maybe = Math.ceil((lo - tolerance) / window) * window <= hi + tolerance;
    if (!maybe) return { check: null, surely };
    const check = await mirrored(window);
    if (check !== undefined) {
      // The server's window may start up to `ahead` ms before the store's, and end `behind`
      // ms after it (tollgate's memory store counts on a monotonic clock a few ms behind).
      const behind = Math.max(0, nearest - lo) + RESET_SLACK_MS;
      check.sliding = {
        window,
        ahead: Math.max(0, hi - nearest),
        behind,
        guard: Math.min(Math.floor(window / 20), tolerance, Math.max(20, behind)),
      };
    }
    return { check, surely };
  }

  /**
   * Where the server states no window (`X-RateLimit-*`), the kind of each quota as the fleet told
   * it: each process sees a share of the answers, and most never see what tells a bucket or a
   * sliding window from the fixed window every such quota reads as first (see `Quota.toldKind`).
   * A process that told one votes for it; one that may take one reads the votes (a sliding window
   * over a bucket: it is told from a bucket). Votes are tokens taken from buckets in the store (see
   * KIND_VOTES), read with `peek`. The store down: nothing is heard, and what was taken stays.
   */
  private async kinds(
    base: string,
    parts: readonly FleetPart[],
  ): Promise<Array<[string, ToldKind | undefined]>> {
    const told: Array<[string, ToldKind | undefined]> = [];
    const now = this.now();
    for (const part of parts) {
      if (part.told === undefined && part.adoptable !== true) continue;
      const limiter = await this.limiter('kinds', KIND_VOTES);
      if (limiter === undefined) return told;
      const key = `${base} ${part.scope}`;
      if (this.heard.size >= MAX_KIND_KEYS) this.heard.clear();
      try {
        if (part.told !== undefined) await this.vote(limiter, `${key} kind:${part.told}`, now);
        if (part.adoptable !== true) continue;
        let heard = this.heard.get(key);
        if (heard === undefined || now - heard.at >= HEAR_EVERY_MS) {
          const [sliding, bucket] = await Promise.all(
            (['sliding', 'bucket'] as const).map((kind) => limiter.peek(`${key} kind:${kind}`)),
          );
          // The store down: nothing heard (what was taken stays until it answers again).
          if (sliding!.reason === 'store-error' || bucket!.reason === 'store-error') continue;
          const kind =
            sliding!.remaining < KIND_VOTES.limit
              ? 'sliding'
              : bucket!.remaining < KIND_VOTES.limit
                ? 'bucket'
                : undefined;
          heard = { at: now, kind };
          this.heard.set(key, heard);
        }
        if (heard.kind === undefined || heard.kind !== part.told) told.push([part.scope, heard.kind]);
      } catch {
        // The store refused (a limiter error): each process goes on what it told itself.
      }
    }
    return told;
  }

  /**
   * Asks the store once whether the fleet's next call to `base` (origin and credential) may go:
   * takes a permit from every quota's limiters when all allow (all or nothing); otherwise says how
   * long until the one that refused has one back. The budget's pump asks for the call at the head
   * of its queue, one question at a time.
   *
   * A policy of stated window is mirrored by the same policy in the store: the fleet's count
   * follows the server's, a little ahead of it (the fleet counts a call when it leaves, the server
   * when it arrives). Every call spends from a token bucket of that limit and window, which a
   * fixed window's or sliding window's calls fit into: processes that have not told a bucket from
   * a window yet (each learns from its own answers) still spend from the bucket the others pace
   * by. Where a process reads a fixed window, also from a fixed window that lasts a margin longer
   * than the server's (see `fleetMargin`) and counts no call in its last two margins; a sliding
   * window, from a sliding window where the clocks allow it.
   */
  async decide(base: string, question: FleetQuestion): Promise<FleetAnswer> {
    const told = await this.kinds(base, question.parts);
    const { heard: windows, refuted } = await this.windows(base, question.parts);
    let answer = await this.permit(base, question);
    if (told.length > 0) answer = { ...answer, told };
    if (windows.length > 0) answer = { ...answer, windows };
    if (refuted.length > 0) answer = { ...answer, refuted };
    return answer;
  }

  /**
   * Where the server states no window, a sliding window's length as the fleet tells it, the way
   * kinds are told (see `kinds`): a process whose resets tell one votes for it (see
   * `Quota.toldWindow`); one that reads none, or a longer one (one window's resets fit any),
   * asks about the shorter ones its own answers allow (see `Quota.windowsToHear`), once a second
   * at most, and takes the smallest voted. A process refused at the pace a length sets votes that
   * length refuted (see `Quota.refusedStepped`): every process that paces by it drops it at its
   * next question, one that would take it when it asks. The store down: nothing is heard.
   */
  private async windows(
    base: string,
    parts: readonly FleetPart[],
  ): Promise<{ heard: Array<[string, number | undefined]>; refuted: Array<[string, number]> }> {
    const heard: Array<[string, number | undefined]> = [];
    const refuted: Array<[string, number]> = [];
    const now = this.now();
    for (const part of parts) {
      const { toldWindow } = part;
      const asked = part.windowsToHear ?? [];
      const pacedBy =
        part.pace !== undefined && 'sliding' in part.pace ? part.pace.sliding?.window : undefined;
      if (
        toldWindow === undefined &&
        asked.length === 0 &&
        part.refuted === undefined &&
        pacedBy === undefined
      )
        continue;
      const limiter = await this.limiter('kinds', KIND_VOTES);
      if (limiter === undefined) break;
      const key = `${base} ${part.scope}`;
      try {
        if (part.refuted !== undefined) await this.vote(limiter, `${key} refuted:${part.refuted}`, now);
        if (toldWindow !== undefined) await this.vote(limiter, `${key} window:${toldWindow}`, now);
        // The length this process paces by, on every question: unless another process's refusal
        // refuted it (the fleet's calls at its pace, one more refused each, until each knows).
        const isRefuted = async (length: number) => {
          const refutation = await limiter.peek(`${key} refuted:${length}`);
          return refutation.reason !== 'store-error' && refutation.remaining < KIND_VOTES.limit;
        };
        if (pacedBy !== undefined && (await isRefuted(pacedBy))) refuted.push([part.scope, pacedBy]);
        if (asked.length === 0) continue;
        const cached = this.heardWindows.get(key);
        const asking = asked.join();
        if (cached !== undefined && now - cached.at < HEAR_EVERY_MS && cached.asked === asking) {
          heard.push([part.scope, cached.ms]);
          continue;
        }
        // The shortest voted of those it asks about, unless refuted.
        const reads = await Promise.all(asked.map((ms) => limiter.peek(`${key} window:${ms}`)));
        if (reads.some((r) => r.reason === 'store-error')) continue;
        const i = reads.findIndex((r) => r.remaining < KIND_VOTES.limit);
        let ms = i < 0 ? undefined : asked[i];
        if (ms !== undefined && ms !== pacedBy && (await isRefuted(ms))) {
          refuted.push([part.scope, ms]);
          ms = undefined;
        }
        if (this.heardWindows.size >= MAX_KIND_KEYS) this.heardWindows.clear();
        this.heardWindows.set(key, { at: now, asked: asking, ms });
        heard.push([part.scope, ms]);
      } catch {
        // The store refused (a limiter error): each process goes on its own answers.
      }
    }
    return { heard, refuted };
  }

  /**
   * Votes for `at` (see KIND_VOTES) every VOTE_AGAIN_MS while this process tells it: empties its
   * bucket, which reads as voted for twenty seconds after. A vote the store did not take (down: the
   * limiter lets it through) is cast again.
   */
  private async vote(limiter: SharedLimiter, at: string, now: number): Promise<void> {
    if (this.voted.size >= MAX_KIND_KEYS) this.voted.clear();
    if (now - (this.voted.get(at) ?? Number.NEGATIVE_INFINITY) < VOTE_AGAIN_MS) return;
    const decision = await limiter.consume(at, { cost: 1 });
    if (decision.reason === 'store-error') return;
    if (decision.remaining >= 1) await limiter.consume(at, { cost: Math.floor(decision.remaining) });
    this.voted.set(at, now);
  }

  /** The counts of windows of unstated length and `limit`, one key per window (see `FleetPart.window`). */
  private windowCounter(limit: number): Promise<SharedLimiter | undefined> {
    return this.limiter(`window-of:${limit}`, { algorithm: 'fixed-window', limit, window: WINDOW_COUNTER });
  }

  /**
   * Of the windows a process past the end of the one it knew may be in (see `FleetPart.next`), one
   * the fleet counted full: how long until it surely ended (`wait`). By its reset as written, on
   * the server's clock; or, sooner, a window after the fleet's first count in it (the count's own
   * window opened then: `resetMs` tells when), which no process counted before that window opened,
   * as none can name it before an answer from it (waiting for the reset alone, the fleet's next
   * window opened up to a second late: 90-93% of the quota used). Read with `peek`; the store
   * down, none.
   * None full: the call is counted in the first of them the fleet counts calls in and that may
   * still run (`reserved`), the window it most likely reaches. Read and gone uncounted, it reached
   * that window between a process's permit and its next (measured: four processes against a
   * `legacy` fixed window of 10 per second, each call so read left the count one short until its
   * answer counted it, and a call of another process was the window's 11th, one case in two).
   */
  private async nextWindow(
    base: string,
    part: FleetPart,
    next: { ids: number[]; limit: number; length: number | undefined },
  ): Promise<{ wait?: number; reserved?: { check: Check; id: number; countedAt?: number } }> {
    const counter = await this.windowCounter(next.limit);
    if (counter === undefined) return {};
    let running: number | undefined;
    for (const id of next.ids) {
      try {
        const count = await counter.peek(`${base} ${part.scope} @${id}`);
        if (count.reason === 'store-error') continue;
        const [skewLo] = part.skew ?? [0, 0];
        const now = this.now();
        const stated = id + RESET_SLACK_MS - skewLo - now;
        // (No length read: by the reset alone.)
        const counted =
          next.length === undefined
            ? Number.POSITIVE_INFINITY
            : count.resetMs - WINDOW_COUNTER_MS + next.length + RESET_SLACK_MS;
        // Ended by the count's time (its reset, in whole seconds, may lie up to a second later):
        // no longer full. (Returned as a wait of 1 ms, it was asked again every ms till then.)
        if (counted <= 0) continue;
        if (count.remaining >= 1) {
          if (running === undefined && count.remaining < next.limit) running = id;
          continue;
        }
        return { wait: Math.max(1, Math.ceil(Math.min(stated, counted))) };
      } catch {
        return {};
      }
    }
    if (running === undefined) return {};
    const check: Check = {
      limiter: counter,
      key: `${base} ${part.scope} @${running}`,
      cost: 1,
      limit: next.limit,
    };
    const decision = await this.consume(counter, check.key, 1);
    if (decision.reason === 'store-error') return {};
    // Full since it was read: asked again (the read then tells how long).
    if (!decision.allowed) return { wait: 1 };
    const reserved: { check: Check; id: number; countedAt?: number } = { check, id: running };
    if (decision.countedAt !== undefined) reserved.countedAt = decision.countedAt;
    return { reserved };
  }

  private async permit(base: string, question: FleetQuestion): Promise<FleetAnswer> {
    const checks: Check[] = [];
    for (const part of question.parts) {
      const more = await this.checks(base, part);
      // Past MAX_FLEET_NAMES: the process goes on its own pacing.
      if (more === undefined) return { allowed: true, retryAfterMs: 0, giveBack: NOTHING, held: false };
      checks.push(...more);
    }
    // The calls sent before the pace was known count as far as there is room.
    if (question.unregistered > 0) {
      for (const check of checks) {
        if (check.windowed) continue;
        const { limiter, key, cost } = check;
        const want = question.unregistered * cost;
        let decision = await this.consume(limiter, key, want);
        let counted = want;
        if (!decision.allowed && check.owes !== undefined) {
          // All of them: what does not fit now is owed, paid from what comes back (see `payOff`).
          this.owe(check, want);
          continue;
        }
        if (!decision.allowed && decision.remaining > 0) {
          counted = Math.min(want, decision.remaining);
          decision = await this.consume(limiter, key, counted);
        }
        if (decision.allowed && check.sliding !== undefined && question.unregisteredAt !== undefined) {
          this.fade(check, check.sliding, counted, question.unregisteredAt, decision.countedAt);
        }
      }
    }
    // Calls the answers put in a window, sent unasked: as far as there is room (a full count
    // already holds them, or the server refused the others).
    for (const check of checks) {
      if (check.uncounted === undefined) continue;
      const { limiter, key } = check;
      const decision = await this.consume(limiter, key, check.uncounted);
      if (!decision.allowed && decision.remaining >= 1) {
        await this.consume(limiter, key, Math.min(check.uncounted, Math.floor(decision.remaining)));
      }
    }
    if (question.countOnly === true)
      return { allowed: false, retryAfterMs: 0, giveBack: NOTHING, held: true };
    const taken: Array<{ check: Check; at: { countedAt?: number } }> = [];
    const giveBack = () =>
      Promise.all(taken.map(({ check, at }) => check.limiter.refund(check.key, check.cost, at))).then(
        NOTHING,
      );
    let held = true;
    for (const check of checks) {
      // While this process owes calls it sent before the pace was known, its own wait.
      const owed = check.owes === undefined ? undefined : this.owed.get(`${check.owes}\n${check.key}`);
      if (owed !== undefined) {
        await giveBack();
        const wait = Math.max(1, Math.ceil(owed.payAt - this.now()));
        return { allowed: false, retryAfterMs: wait, giveBack: NOTHING, held };
      }
      const decision = await this.consume(check.limiter, check.key, check.cost);
      if (decision.reason === 'store-error') held = false;
      if (!decision.allowed) {
        await giveBack();
        // A process that may take a kind or window from the fleet asks again within HEAR_EVERY_MS:
        // a fixed window's wait, to its latest end, is twice too long for a sliding window.
        const hears = question.parts.some((p) => p.adoptable === true || (p.windowsToHear?.length ?? 0) > 0);
        const wait = Math.min(
          decision.retryAfterMs,
          check.waitMs ?? Number.POSITIVE_INFINITY,
          hears ? HEAR_EVERY_MS : Number.POSITIVE_INFINITY,
        );
        return { allowed: false, retryAfterMs: Math.max(1, wait), giveBack: NOTHING, held };
      }
      taken.push({ check, at: decision.countedAt === undefined ? {} : { countedAt: decision.countedAt } });
      // A limit that has dropped: its window holds no more than the limit now.
      if (check.floor !== undefined && decision.remaining < check.floor) {
        await giveBack();
        return { allowed: false, retryAfterMs: Math.max(1, decision.resetMs), giveBack: NOTHING, held };
      }
      // Late in the fleet's fixed window a call may reach the server after the server's window
      // ended, and count in the next one, which the fleet would then fill again: it waits.
      if (
        check.margin !== undefined &&
        decision.resetMs < 2 * check.margin &&
        decision.remaining < check.limit - 1
      ) {
        await giveBack();
        return { allowed: false, retryAfterMs: Math.max(1, decision.resetMs), giveBack: NOTHING, held };
      }
      // A sliding window's server may keep its windows on a clock a little behind the store's
      // (tollgate's memory store counts on a monotonic clock): a call early in the store's window
      // may still reach the server's last one, full at its end. None goes in a window's first
      // `slidingTolerance`, a twentieth of it at most (measured: the fleet's call at the 6th ms of
      // the store's window was answered 429 one run in five, the server's window having 19 and 9
      // before it). Nor in its last END_GUARD_MS: counted then, a call reaches the server a few ms
      // later, in its next window, or in the last ms of a window the server keeps a little behind
      // (measured: a legacy window's 20th call, counted at its 1999th ms, at 19 a window, the whole
      // `(limit - 1) / window` pace, one run in eight).
      if (check.sliding !== undefined && decision.countedAt !== undefined) {
        const { guard, window } = check.sliding;
        const into = decision.countedAt % window;
        const end = window - Math.min(guard, END_GUARD_MS);
        if (into < guard || into >= end) {
          await giveBack();
          const wait = into < guard ? guard - into : window - into + guard;
          return { allowed: false, retryAfterMs: wait, giveBack: NOTHING, held };
        }
      }
      // More left in the store than the server has (a window opened while the server's was still
      // running, a bucket new in the store, calls unseen by the fleet): drained down to it.
      let to = Number.POSITIVE_INFINITY;
      for (const drain of check.drains ?? [])
        if (decision.remaining > drain.above) to = Math.min(to, drain.to);
      if (Number.isFinite(to)) {
        await this.consume(check.limiter, check.key, Math.ceil(decision.remaining - to));
      }
    }
    // Read last, for a call every count let go: a process is past the end of the window it knew
    // whenever the others' calls kept its own from going for a while (most questions of a fleet's
    // process, each refused by the spacing first: read first, twice the store commands per call).
    const counted: Array<[scope: string, id: number]> = [];
    for (const part of question.parts) {
      if (part.next === undefined) continue;
      const { wait, reserved } = await this.nextWindow(base, part, part.next);
      if (reserved !== undefined) {
        taken.push({
          check: reserved.check,
          at: reserved.countedAt === undefined ? {} : { countedAt: reserved.countedAt },
        });
        counted.push([part.scope, reserved.id]);
      }
      if (wait !== undefined) {
        await giveBack();
        return { allowed: false, retryAfterMs: wait, giveBack: NOTHING, held };
      }
    }
    // (What a spacing left unrounded is carried only from a call that goes: a refusal's rounding
    // would shift the charge onto the calls that do.)
    for (const { carry } of checks) {
      if (carry === undefined) continue;
      if (this.carry.size >= MAX_FLEET_LIMITERS) this.carry.clear();
      this.carry.set(carry.key, carry.left);
    }
    const answer: FleetAnswer = { allowed: true, retryAfterMs: 0, giveBack, held };
    if (counted.length > 0) answer.counted = counted;
    return answer;
  }
}
