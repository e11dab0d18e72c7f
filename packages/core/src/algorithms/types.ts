import type { Outcome, ResolvedPolicy } from '../types.js';

/** The state of one policy for one key: a few integers, so the stores can keep it compactly. */
export type State = readonly number[];

export interface StepResult {
  /** The state to store; `undefined` means nothing to store. Unchanged (same object) when denied. */
  state: State | undefined;
  outcome: Outcome;
}

/**
 * The kernel of an algorithm: reads the state at `data[at .. at + width)` (NaN in the first slot
 * means no state), writes the request's outcome into `out`, and writes the new state back in place
 * if and only if the request is allowed. No I/O, no clock. Returns `out.allowed`.
 */
export type Kernel = (
  data: Float64Array,
  at: number,
  now: number,
  policy: ResolvedPolicy,
  cost: number,
  out: Outcome,
) => boolean;

/**
 * One algorithm. `step` is the pure form `(state, now, policy, cost) -> { state, outcome }`; `run`
 * is the same computation on packed state, which the MemoryStore uses to avoid allocations. The
 * Redis store runs a Lua twin, tied to this code by a differential test.
 */
export interface AlgorithmStep {
  /** How many numbers the state holds. */
  readonly width: number;
  readonly run: Kernel;
  step(state: State | undefined, now: number, policy: ResolvedPolicy, cost: number): StepResult;
  /** Gives back `cost` units; returns `undefined` when there is nothing to keep. */
  refund(state: State | undefined, now: number, policy: ResolvedPolicy, cost: number): State | undefined;
  /** From this time on the state is the same as no state at all, and may be dropped. */
  expiresAt(state: State, policy: ResolvedPolicy): number;
}

export const newOutcome = (): Outcome => ({
  allowed: false,
  remaining: 0,
  resetMs: 0,
  retryAfterMs: 0,
  delayMs: 0,
});

/** Fills `out` and returns it. */
export function setOutcome(
  out: Outcome,
  allowed: boolean,
  remaining: number,
  resetMs: number,
  retryAfterMs: number,
  delayMs: number,
): boolean {
  out.allowed = allowed;
  out.remaining = remaining;
  out.resetMs = resetMs;
  out.retryAfterMs = retryAfterMs;
  out.delayMs = delayMs;
  return allowed;
}

/** The pure `step` of a kernel: runs it on a copy of `state`. */
export function pureStep(width: number, run: Kernel): AlgorithmStep['step'] {
  return (state, now, policy, cost) => {
    const data = new Float64Array(width);
    if (state === undefined) data[0] = Number.NaN;
    else data.set(state);
    const outcome = newOutcome();
    const allowed = run(data, 0, now, policy, cost, outcome);
    return { state: allowed ? Array.from(data) : state, outcome };
  };
}
