import type { Outcome, ResolvedPolicy } from '../types.js';

/** The state of one policy for one key: a few integers, so the stores can keep it compactly. */
export type State = readonly number[];

export interface StepResult {
  /** The state to store; `undefined` means nothing to store. Unchanged (same object) when denied. */
  state: State | undefined;
  outcome: Outcome;
}

/**
 * The requests in flight one (policy, key) holds, for an algorithm that holds them (see
 * `AlgorithmStep.holds`): each a lease id and the time its lease ends. It lives beside the packed
 * state, whose width is fixed, and holds at most `limit` leases: ended ones go as new ones come.
 */
export interface LeaseSet {
  /** Leases kept, ended ones not yet dropped included. */
  readonly size: number;
  /** Leases held at `now`: those that end after it. */
  live(now: number): number;
  /** When the first lease held at `now` ends; Infinity when none is. */
  firstEnd(now: number): number;
  /** When the last lease kept ends; -Infinity when none is kept. */
  lastEnd(): number;
  /** Drops the leases ended by `now`, then holds `id` until `end`. */
  add(id: string, now: number, end: number): void;
  /** Lets `id` go; false when it held no lease (released already, ended and dropped, or reset). */
  remove(id: string): boolean;
}

/**
 * The kernel of an algorithm: reads the state at `data[at .. at + width)` (NaN in the first slot
 * means no state), writes the request's outcome into `out`, and writes the new state back in place
 * if and only if the request is allowed. No I/O, no clock. Returns `out.allowed`. An algorithm that
 * holds requests (`holds`) also reads `leases`, the requests in flight (none when undefined), and
 * never changes them: the store adds the request's lease once the whole set allowed it.
 */
export type Kernel = (
  data: Float64Array,
  at: number,
  now: number,
  policy: ResolvedPolicy,
  cost: number,
  out: Outcome,
  leases?: LeaseSet,
) => boolean;

/**
 * How an algorithm holds admitted requests until they are released (concurrency). A store keeps a
 * `LeaseSet` per (policy, key) beside the packed state, passes it to the kernel, and when the whole
 * request is allowed adds a lease for it (`takes`, `endOf`). A set holds at most one such policy.
 */
export interface Holding {
  /** A new, empty lease set. */
  create(): LeaseSet;
  /** Whether a request of `cost` takes a slot. */
  takes(cost: number): boolean;
  /** When a lease taken at `now` ends. */
  endOf(now: number, policy: ResolvedPolicy): number;
}

/**
 * One algorithm in TypeScript. `step` is the pure form `(state, now, policy, cost) -> { state,
 * outcome }`; `run` is the same computation on packed state, which the MemoryStore uses to avoid
 * allocations.
 */
export interface AlgorithmStep {
  /** How many numbers the state holds. */
  readonly width: number;
  readonly run: Kernel;
  step(
    state: State | undefined,
    now: number,
    policy: ResolvedPolicy,
    cost: number,
    leases?: LeaseSet,
  ): StepResult;
  /**
   * Gives back `cost` units to the state that counted them: `countedAt` is the time the units were
   * counted (a Decision's `countedAt`), so that a window opened since is left alone; without it, to
   * the state as it is now. Returns `undefined` when there is nothing to keep.
   */
  refund(
    state: State | undefined,
    now: number,
    policy: ResolvedPolicy,
    cost: number,
    countedAt?: number,
  ): State | undefined;
  /**
   * Counts `cost` more units even past the limit (a reservation settled above its estimate), as far
   * as `policy.maxDebt` units over the capacity: debt is what the state holds over it (a window's
   * count above the limit, a token bucket's tokens below zero, a leaky bucket's level above its
   * capacity), and a key in debt is denied, with a tight `retryAfterMs`, until it has drained.
   * Returns the state after (`undefined`: nothing to keep) and the units counted, `cost` or fewer.
   */
  charge(state: State | undefined, now: number, policy: ResolvedPolicy, cost: number): Charge;
  /** From this time on the state is the same as no state at all, and may be dropped. */
  expiresAt(state: State, policy: ResolvedPolicy): number;
  /** Present when the algorithm holds each admitted request until it is released (concurrency). */
  readonly holds?: Holding;
}

/** What `charge` did: the state after it and the units it counted. */
export interface Charge {
  state: State | undefined;
  charged: number;
}

/**
 * The policy parameters a Lua body reads, as it names them: L (limit), W (window ms), B (burst, the
 * buckets' capacity), D (delay: 1 to hold admitted requests, else 0) and S, the start (ms) of the
 * calendar period the caller expects `now` in, 0 for a rolling window: with S > 0, W is that
 * period's length. The scripts check `S <= now < S + W` before any body runs (see scripts.ts in
 * the Redis store): a body reading S may take the period as given. `S` among an algorithm's params
 * makes a calendar period (`window: { calendar }`) one of its policies' windows.
 */
export type LuaParam = 'L' | 'W' | 'B' | 'D' | 'S';

/**
 * One algorithm, every form of it: its TypeScript kernel and its Lua body, from one folder
 * (`./<name>/`). The Redis store generates every script it sends from `lua` (see the body contract
 * in ./lua-contract.ts); test/store-conformance.test.ts requires both forms to answer identically.
 */
export interface AlgorithmDefinition<Name extends string = string> extends AlgorithmStep {
  /** The `algorithm` of a policy. */
  readonly name: Name;
  /** Its tag in policy ids, and so in Redis keys: changing it starts fresh counters. */
  readonly tag: string;
  /**
   * The parameters it reads, L and W first: `B` makes `burst` an option of its policies, `D`
   * makes `delay` one. The one-policy Redis scripts receive only these.
   */
  readonly params: readonly LuaParam[];
  /**
   * True when the algorithm counts whole units and never multiplies by the window (fixed-window),
   * so `limit` times the window needs no bound; the others count in units of 1/window, which must
   * stay exact.
   */
  readonly wholeUnits?: boolean;
  /**
   * The Lua body: the kernel's computation, expression for expression, in four sections, each
   * opening with a comment line that starts with its name (the Redis store generates every script
   * it sends from the sections, inlined flat: Lua would build a `local function` anew on each call).
   *
   * - Before `-- consume:`, the state as seen at `now`: locals shared by the sections below.
   * - `-- consume:` reads `s1, s2, s3` (the stored state; `s1` nil: none), `now` (ms), `L`, `W`,
   *   `B`, `D`, `S` (see LuaParam) and `cost`; writes `ok` (1 allowed, else 0), `remaining`, `reset`,
   *   `retry` (`INF`: never), `delay` and, when `ok == 1`, the next state `n1, n2, n3` with `old`
   *   and `new`, the times at which the stored and the next state expire (`old` 0 without state).
   * - `-- refund:` reads the same (`s1` never nil) and `at`, when the units were counted (nil:
   *   unknown), and writes `n1, n2, n3` (`n1` nil: nothing left to keep) and, when `n1`, `new`.
   * - `-- charge:` reads the same as consume (`s1` may be nil) and `debt` (the policy's `maxDebt`),
   *   counts `cost` even past the limit, up to `debt` units over the capacity, and writes `charged`
   *   (the units counted), `n1, n2, n3` (`n1` nil: nothing to keep) and, when `n1`, `new`.
   *
   * The outputs start as 0 (`n1, n2` nil), so a section assigns only what it sets, and never
   * declares them `local`. In scope: `INF` (-1), `floor`, `ceil`, `max`, `min`, `fmod`, `call`
   * (redis.call).
   *
   * An algorithm that holds requests (`holds`) keeps its leases in a sorted set of their own, `lkey`
   * (KEYS[2], member the lease id, score when it ends), which its sections may read, and has two
   * sections more:
   * - `-- hold:` runs once the whole request is allowed and its state written: reads `lkey`,
   *   `lease` (the request's lease id), `now`, `W`, `cost`, `grace` and `n1`, and holds the lease.
   * - `-- release:` is a script of its own: reads `lkey`, `lease` and `now`, and lets the lease go.
   */
  readonly lua: string;
}

export const newOutcome = (): Outcome => ({
  allowed: false,
  remaining: 0,
  resetMs: 0,
  retryAfterMs: 0,
  delayMs: 0,
  windowMs: undefined,
});

/**
 * Fills `out` and returns `allowed`. Every field is written, `windowMs` too (undefined but for a
 * calendar period), so an outcome object reused across policies never keeps a stale one.
 */
export function setOutcome(
  out: Outcome,
  allowed: boolean,
  remaining: number,
  resetMs: number,
  retryAfterMs: number,
  delayMs: number,
  windowMs?: number,
): boolean {
  out.allowed = allowed;
  out.remaining = remaining;
  out.resetMs = resetMs;
  out.retryAfterMs = retryAfterMs;
  out.delayMs = delayMs;
  out.windowMs = windowMs;
  return allowed;
}

/** The pure `step` of a kernel: runs it on a copy of `state`. */
export function pureStep(width: number, run: Kernel): AlgorithmStep['step'] {
  return (state, now, policy, cost, leases) => {
    const data = new Float64Array(width);
    if (state === undefined) data[0] = Number.NaN;
    else data.set(state);
    const outcome = newOutcome();
    const allowed = run(data, 0, now, policy, cost, outcome, leases);
    return { state: allowed ? Array.from(data) : state, outcome };
  };
}

/** An algorithm's definition, checked and frozen (its name kept as a literal type for the registry). */
export function defineAlgorithm<Name extends string>(
  definition: AlgorithmDefinition<Name>,
): AlgorithmDefinition<Name> {
  return Object.freeze(definition);
}
