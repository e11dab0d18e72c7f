import type { Outcome, ResolvedPolicy } from '../types.js';
import { type AlgorithmStep, denyForever, type State, type StepResult } from './types.js';

// State: [windowStart, count]. A window opens at the key's first request and lasts `window` ms.

function current(
  state: State | undefined,
  now: number,
  policy: ResolvedPolicy,
): [number, number] | undefined {
  if (state === undefined) return undefined;
  const start = state[0]!;
  return now >= start + policy.window ? undefined : [start, state[1]!];
}

export const fixedWindow: AlgorithmStep = {
  width: 2,

  step(state, now, policy, cost): StepResult {
    const L = policy.limit;
    const live = current(state, now, policy);
    const start = live ? live[0] : now;
    const count = live ? live[1] : 0;
    const resetMs = live ? start + policy.window - now : 0;
    if (cost > L) return { state, outcome: denyForever(L - count, resetMs) };
    if (count + cost > L) {
      const outcome: Outcome = {
        allowed: false,
        remaining: L - count,
        resetMs,
        retryAfterMs: resetMs,
        delayMs: 0,
      };
      return { state, outcome };
    }
    const used = count + cost;
    return {
      state: [start, used],
      outcome: {
        allowed: true,
        remaining: L - used,
        resetMs: start + policy.window - now,
        retryAfterMs: 0,
        delayMs: 0,
      },
    };
  },

  refund(state, now, policy, cost) {
    const live = current(state, now, policy);
    if (!live) return undefined;
    return [live[0], Math.max(0, live[1] - cost)];
  },

  expiresAt: (state, policy) => state[0]! + policy.window,
};
