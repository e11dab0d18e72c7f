import { STEPS } from './algorithms/index.js';
import type { State } from './algorithms/types.js';
import type { Outcome, PolicySet } from './types.js';

export interface Evaluation {
  allowed: boolean;
  outcomes: Outcome[];
  /** The states to store when allowed; when denied nothing is stored (a denial consumes nothing). */
  states: (State | undefined)[];
}

/**
 * Applies one request of `cost` to every policy of `set`, all or nothing: if any policy denies,
 * no policy consumes, and the allowing policies report their state without this request.
 * The Redis store's Lua script is the twin of this function.
 */
export function evaluate(
  states: readonly (State | undefined)[],
  now: number,
  set: PolicySet,
  cost: number,
): Evaluation {
  const { policies } = set;
  const outcomes: Outcome[] = new Array(policies.length);
  const next: (State | undefined)[] = new Array(policies.length);
  let allowed = true;
  for (let i = 0; i < policies.length; i++) {
    const policy = policies[i]!;
    const result = STEPS[policy.algorithm].step(states[i], now, policy, cost);
    outcomes[i] = result.outcome;
    next[i] = result.state;
    if (!result.outcome.allowed) allowed = false;
  }
  if (!allowed && policies.length > 1) {
    for (let i = 0; i < policies.length; i++) {
      if (!outcomes[i]!.allowed) continue;
      // Allowed here but the request as a whole is denied: report this policy as untouched.
      const policy = policies[i]!;
      const untouched = STEPS[policy.algorithm].step(states[i], now, policy, 0).outcome;
      outcomes[i] = { ...untouched, allowed: true, retryAfterMs: 0, delayMs: 0 };
    }
  }
  return { allowed, outcomes, states: next };
}

/** What a cost-1 request would get, consuming nothing. */
export function peekOutcomes(states: readonly (State | undefined)[], now: number, set: PolicySet): Outcome[] {
  return set.policies.map((policy, i) => {
    const step = STEPS[policy.algorithm];
    const idle = step.step(states[i], now, policy, 0).outcome;
    const one = step.step(states[i], now, policy, 1).outcome;
    return {
      allowed: one.allowed,
      remaining: idle.remaining,
      resetMs: idle.resetMs,
      retryAfterMs: one.retryAfterMs,
      delayMs: one.delayMs,
    };
  });
}

/** The states after giving `cost` back to every policy, counted at `countedAt` if known. */
export function refundStates(
  states: readonly (State | undefined)[],
  now: number,
  set: PolicySet,
  cost: number,
  countedAt?: number,
): (State | undefined)[] {
  return set.policies.map((policy, i) =>
    STEPS[policy.algorithm].refund(states[i], now, policy, cost, countedAt),
  );
}
