import type { ResolvedPolicy } from '../../types.js';
import { type AlgorithmStep, type Kernel, pureStep, setOutcome } from '../types.js';

// State: [tokens * W, lastRefill]. Tokens are counted in units of 1/W so that refilling L per W
// adds exactly L per millisecond: exact integers, no drift, identical in Lua.

/** Scaled tokens at `now`, from a stored (tokens, at) pair; NaN tokens mean a full bucket. */
function tokensAt(tokens: number, at: number, now: number, policy: ResolvedPolicy): number {
  const capacity = policy.burst * policy.window;
  if (Number.isNaN(tokens)) return capacity;
  const elapsed = Math.max(0, now - at);
  // Compare before multiplying: elapsed * L may exceed 2^53 after a long idle time.
  if (elapsed >= Math.ceil((capacity - tokens) / policy.limit)) return capacity;
  return tokens + elapsed * policy.limit;
}

const run: Kernel = (data, at, now, policy, cost, out) => {
  const W = policy.window;
  const L = policy.limit;
  const capacity = policy.burst * W;
  const tokens = tokensAt(data[at]!, data[at + 1]!, now, policy);
  const need = cost * W;
  // In debt (a settle took tokens below zero) nothing remains until the bucket has refilled past it.
  const remaining = Math.max(0, Math.floor(tokens / W));
  if (cost > policy.burst) {
    return setOutcome(out, false, remaining, Math.ceil((capacity - tokens) / L), Number.POSITIVE_INFINITY, 0);
  }
  if (tokens < need) {
    return setOutcome(
      out,
      false,
      remaining,
      Math.ceil((capacity - tokens) / L),
      Math.ceil((need - tokens) / L),
      0,
    );
  }
  const left = tokens - need;
  data[at] = left;
  data[at + 1] = now;
  return setOutcome(out, true, Math.floor(left / W), Math.ceil((capacity - left) / L), 0, 0);
};

export const tokenBucketStep: AlgorithmStep = {
  width: 2,
  run,
  step: pureStep(2, run),

  refund(state, now, policy, cost) {
    if (state === undefined) return undefined;
    const capacity = policy.burst * policy.window;
    const tokens = Math.min(capacity, tokensAt(state[0]!, state[1]!, now, policy) + cost * policy.window);
    return tokens === capacity ? undefined : [tokens, now];
  },

  // Debt: tokens below zero, refilled at L per W like the rest.
  charge(state, now, policy, cost) {
    const W = policy.window;
    const capacity = policy.burst * W;
    const tokens = state === undefined ? capacity : tokensAt(state[0]!, state[1]!, now, policy);
    const charged = Math.min(cost, Math.max(0, Math.floor((tokens + policy.maxDebt * W) / W)));
    const left = tokens - charged * W;
    return { state: left === capacity ? undefined : [left, now], charged };
  },

  expiresAt: (state, policy) =>
    state[1]! + Math.ceil((policy.burst * policy.window - state[0]!) / policy.limit),
};
