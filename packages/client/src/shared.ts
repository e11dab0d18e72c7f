import { CostExceedsLimitError, DeadlineError } from './errors.js';
import type { ResolvedRule } from './limits.js';
import { sleep } from './sleep.js';

/** What the client reads of a tollgate `Decision`. */
interface SharedDecision {
  allowed: boolean;
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

/** The largest fleet bucket of spacings, in tokens (ms): 2^49, under a tollgate limit's 10^15. */
const MAX_FLEET_TOKENS = 2 ** 49;
/** Fleet limiters kept at most; past it they are made again on use. */
const MAX_FLEET_LIMITERS = 64;
/**
 * The longest window a tollgate policy takes (core's MAX_WINDOW_MS, 2^51 ms, some 71 000 years):
 * a fleet bucket's window (spacing times burst) is clamped to it. A quota that slow holds every
 * call but the first for ages either way.
 */
const MAX_FLEET_WINDOW_MS = 2 ** 51;

/**
 * How a fleet sends: `spacing` ms apart, `burst` in a row at most (a bucket, a sliding window); or
 * `limit` calls per `window` ms, all at once if they are waiting (a fixed window whose length the
 * server states).
 */
export type FleetPace =
  | { spacing: number; burst: number }
  | { mirror: 'fixed-window' | 'token-bucket' | 'sliding-window'; window: number; limit: number };

/** What a process knows besides the pace when it asks the fleet for its next call. */
export interface FleetAsk {
  /**
   * At most what the server has left for the call, as this process knows it (its last answer, less
   * what it sent since): a fleet window that shows more is drained down to it.
   */
  known?: number | undefined;
  /** Calls this process sent before it knew the pace (the first, which learns it): counted now. */
  unregistered?: number;
}

/**
 * The margin a fleet's fixed window lasts beyond the server's: the server's window opens when the
 * fleet's first call of it arrives, a little after the fleet counted it, so the fleet's window must
 * end no earlier than the server's. 2% of the window, 20 ms to a second.
 */
export const fleetMargin = (windowMs: number): number =>
  Math.min(1000, Math.max(20, Math.ceil(windowMs * 0.02)));

/**
 * The learned quotas paced across processes (`shareLearned`): the fleet's calls to one origin and
 * credential go through limiters in the store. A policy of stated window is mirrored there (see
 * `decideMirror`); one of unstated window goes through a token bucket of milliseconds, each call
 * costing its spacing. The policy is part of each limiter's name, so processes that learned
 * different policies never read each other's state as their own.
 */
export class SharedPacing {
  private createLimiter: Promise<CreateLimiter> | undefined;
  private readonly limiters = new Map<string, SharedLimiter>();

  constructor(private readonly store: unknown) {}

  private async limiter(name: string, policy: Record<string, unknown>): Promise<SharedLimiter> {
    this.createLimiter ??= import('@tollgate/core').then(
      (core) => core.createLimiter as unknown as CreateLimiter,
    );
    const createLimiter = await this.createLimiter;
    let limiter = this.limiters.get(name);
    if (limiter === undefined) {
      if (this.limiters.size >= MAX_FLEET_LIMITERS) this.limiters.clear();
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

  /**
   * Asks the store once whether the fleet's next call to `key` may go at `pace`: takes the fleet's
   * permit when it may; otherwise says how long until one is back. The budget's pump asks for the
   * call at the head of its queue, one question at a time.
   */
  async decide(
    key: string,
    pace: FleetPace,
    ask: FleetAsk = {},
  ): Promise<{ allowed: boolean; retryAfterMs: number }> {
    if ('mirror' in pace) return this.decideMirror(key, pace, ask);
    const { spacing: spacingMs, burst } = pace;
    // A token bucket of one token a millisecond, a call costing its spacing: processes whose
    // estimates of the spacing differ (each learns from its own answers) still share one bucket,
    // each call taking the time its process thinks it needs. Its capacity, `burst` spacings
    // rounded up to a power of two (so that they mostly agree on it too), bounds a burst.
    const cost = Math.max(1, Math.ceil(spacingMs));
    const capacity = Math.min(MAX_FLEET_TOKENS, 2 ** Math.ceil(Math.log2(cost * burst)));
    // (A string: a number under a second would draw TOLLGATE_NUMERIC_WINDOW.)
    const limiter = await this.limiter(`ms:${capacity}`, {
      algorithm: 'token-bucket',
      limit: capacity,
      window: `${capacity}ms`,
    });
    const charge = Math.min(cost, capacity);
    const decision = await limiter.consume(key, { cost: charge });
    // More calls' worth left in the bucket than the server has (a bucket new in the store, one
    // whose capacity is above the server's): drained down to it.
    const excess = ask.known === undefined ? 0 : Math.ceil(decision.remaining - (ask.known - 1) * charge);
    if (decision.allowed && excess > 0)
      await limiter.consume(key, { cost: Math.min(excess, decision.remaining) });
    return { allowed: decision.allowed, retryAfterMs: Math.max(1, decision.retryAfterMs) };
  }

  /**
   * A policy of stated limit and window, mirrored by the same policy in the store: the fleet's
   * count follows the server's, a little ahead of it (the fleet counts a call when it leaves, the
   * server when it arrives). Every call also spends from a token bucket of the same limit and
   * window, which a fixed window's or sliding window's calls fit into: processes that have not
   * told a bucket from a window yet (each learns from its own answers) still spend from the
   * bucket the others pace by. A fixed window lasts a margin longer than the server's (see
   * `fleetMargin`) and counts no call in its last two margins.
   */
  private async decideMirror(
    key: string,
    { mirror, window, limit }: { mirror: string; window: number; limit: number },
    { known, unregistered = 0 }: FleetAsk,
  ): Promise<{ allowed: boolean; retryAfterMs: number }> {
    const fixed = mirror === 'fixed-window';
    const margin = fixed ? fleetMargin(window) : 0;
    const policy = async (algorithm: string, span: number) => ({
      algorithm,
      limiter: await this.limiter(`${algorithm}:${span}x${limit}`, { algorithm, limit, window: `${span}ms` }),
    });
    const stated = Math.min(MAX_FLEET_WINDOW_MS, Math.ceil(window));
    const mirrors = [await policy('token-bucket', stated)];
    if (mirror !== 'token-bucket')
      mirrors.push(await policy(mirror, Math.min(MAX_FLEET_WINDOW_MS, stated + margin)));
    const taken: Array<{ limiter: SharedLimiter; at: { countedAt?: number } }> = [];
    const giveBack = () => Promise.all(taken.map(({ limiter, at }) => limiter.refund(key, 1, at)));
    let fixedDecision: SharedDecision | undefined;
    for (const { algorithm, limiter } of mirrors) {
      // The calls sent before the pace was known count as far as there is room.
      for (let i = 0; i < Math.min(unregistered, limit); i++) {
        if (!(await limiter.consume(key, { cost: 1 })).allowed) break;
      }
      const decision = await limiter.consume(key, { cost: 1 });
      if (!decision.allowed) {
        await giveBack();
        return { allowed: false, retryAfterMs: Math.max(1, decision.retryAfterMs) };
      }
      taken.push({ limiter, at: decision.countedAt === undefined ? {} : { countedAt: decision.countedAt } });
      if (algorithm === 'fixed-window') fixedDecision = decision;
      // More left in the fleet's policy than the server has (a window opened while the server's
      // was still running, a bucket new in the store, calls unseen by the fleet): drained down to
      // it. (Where the server's `remaining` cannot be bounded from above, `known` is undefined.)
      if (known !== undefined && decision.remaining > known - 1) {
        const excess = Math.min(decision.remaining, Math.ceil(decision.remaining - (known - 1)));
        if (excess > 0) await limiter.consume(key, { cost: excess });
      }
    }
    // Late in the fleet's window a call may reach the server after the server's window ended, and
    // count in the next one, which the fleet would then fill again: it waits for the next.
    if (
      fixedDecision !== undefined &&
      fixedDecision.resetMs < 2 * margin &&
      fixedDecision.remaining < limit - 1
    ) {
      await giveBack();
      return { allowed: false, retryAfterMs: Math.max(1, fixedDecision.resetMs) };
    }
    return { allowed: true, retryAfterMs: 0 };
  }
}
