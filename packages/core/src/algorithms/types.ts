import type { Outcome, ResolvedPolicy } from '../types.js';

/** The state of one policy for one key: a few integers, so the stores can keep it compactly. */
export type State = readonly number[];

export interface StepResult {
  /** The state to store; `undefined` means nothing to store. Unchanged (same object) when denied. */
  state: State | undefined;
  outcome: Outcome;
}

/**
 * One algorithm, as pure functions of (state, now, policy, cost): no I/O, no clock. The stores run
 * `step`; the Redis store runs a Lua twin of it, tied to this code by a differential test.
 */
export interface AlgorithmStep {
  /** How many numbers the state holds. */
  readonly width: number;
  step(state: State | undefined, now: number, policy: ResolvedPolicy, cost: number): StepResult;
  /** Gives back `cost` units; returns `undefined` when there is nothing to keep. */
  refund(state: State | undefined, now: number, policy: ResolvedPolicy, cost: number): State | undefined;
  /** From this time on the state is the same as no state at all, and may be dropped. */
  expiresAt(state: State, policy: ResolvedPolicy): number;
}

export const denyForever = (remaining: number, resetMs: number): Outcome => ({
  allowed: false,
  remaining,
  resetMs,
  retryAfterMs: Number.POSITIVE_INFINITY,
  delayMs: 0,
});
