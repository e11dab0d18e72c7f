import { type AlgorithmStep, type Kernel, pureStep, setOutcome } from '../types.js';

// State: [windowStart, count]. A window opens at the key's first request and lasts `window` ms.

const run: Kernel = (data, at, now, policy, cost, out) => {
  const L = policy.limit;
  const W = policy.window;
  let start = data[at]!;
  // NaN (no state) fails the comparison, like an expired window.
  const live = now < start + W;
  const count = live ? data[at + 1]! : 0;
  const resetMs = live ? start + W - now : 0;
  if (cost > L) return setOutcome(out, false, L - count, resetMs, Number.POSITIVE_INFINITY, 0);
  if (count + cost > L) return setOutcome(out, false, L - count, resetMs, resetMs, 0);
  if (!live) start = now;
  data[at] = start;
  data[at + 1] = count + cost;
  return setOutcome(out, true, L - count - cost, start + W - now, 0, 0);
};

export const fixedWindowStep: AlgorithmStep = {
  width: 2,
  run,
  step: pureStep(2, run),

  refund(state, now, policy, cost, countedAt) {
    if (state === undefined || now >= state[0]! + policy.window) return undefined;
    // Counted in an earlier window: this one owes it nothing.
    if (countedAt !== undefined && countedAt < state[0]!) return state;
    return [state[0]!, Math.max(0, state[1]! - cost)];
  },

  expiresAt: (state, policy) => state[0]! + policy.window,
};
