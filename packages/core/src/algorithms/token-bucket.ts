import type { ResolvedPolicy } from '../types.js';
import { type AlgorithmStep, denyForever, type State, type StepResult } from './types.js';

// State: [tokens * W, lastRefill]. Tokens are counted in units of 1/W so that refilling L per W
// adds exactly L per millisecond: exact integers, no drift, identical in Lua.

function tokensAt(state: State | undefined, now: number, policy: ResolvedPolicy): number {
  const capacity = policy.burst * policy.window;
  if (state === undefined) return capacity;
  const tokens = state[0]!;
  const elapsed = Math.max(0, now - state[1]!);
  // Compare before multiplying: elapsed * L may exceed 2^53 after a long idle time.
  if (elapsed >= Math.ceil((capacity - tokens) / policy.limit)) return capacity;
  return tokens + elapsed * policy.limit;
}

export const tokenBucket: AlgorithmStep = {
  width: 2,

  step(state, now, policy, cost): StepResult {
    const W = policy.window;
    const L = policy.limit;
    const capacity = policy.burst * W;
    const tokens = tokensAt(state, now, policy);
    const need = cost * W;
    if (cost > policy.burst) {
      return { state, outcome: denyForever(Math.floor(tokens / W), Math.ceil((capacity - tokens) / L)) };
    }
    if (tokens < need) {
      return {
        state,
        outcome: {
          allowed: false,
          remaining: Math.floor(tokens / W),
          resetMs: Math.ceil((capacity - tokens) / L),
          retryAfterMs: Math.ceil((need - tokens) / L),
          delayMs: 0,
        },
      };
    }
    const left = tokens - need;
    return {
      state: [left, now],
      outcome: {
        allowed: true,
        remaining: Math.floor(left / W),
        resetMs: Math.ceil((capacity - left) / L),
        retryAfterMs: 0,
        delayMs: 0,
      },
    };
  },

  refund(state, now, policy, cost) {
    if (state === undefined) return undefined;
    const capacity = policy.burst * policy.window;
    const tokens = Math.min(capacity, tokensAt(state, now, policy) + cost * policy.window);
    return tokens === capacity ? undefined : [tokens, now];
  },

  expiresAt: (state, policy) =>
    state[1]! + Math.ceil((policy.burst * policy.window - state[0]!) / policy.limit),
};
