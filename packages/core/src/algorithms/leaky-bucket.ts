import type { ResolvedPolicy } from '../types.js';
import { type AlgorithmStep, denyForever, type State, type StepResult } from './types.js';

// The shaping bucket of nginx limit_req. State: [level * W, lastLeak]. The queue drains one unit
// every W/L ms, i.e. exactly L scaled units per millisecond. A request that fits waits for what is
// queued ahead of it: level / L ms.

function levelAt(state: State | undefined, now: number, policy: ResolvedPolicy): number {
  if (state === undefined) return 0;
  const level = state[0]!;
  const elapsed = Math.max(0, now - state[1]!);
  if (elapsed >= Math.ceil(level / policy.limit)) return 0;
  return level - elapsed * policy.limit;
}

export const leakyBucket: AlgorithmStep = {
  width: 2,

  step(state, now, policy, cost): StepResult {
    const W = policy.window;
    const L = policy.limit;
    const capacity = policy.burst * W;
    const level = levelAt(state, now, policy);
    const need = cost * W;
    if (cost > policy.burst) {
      return { state, outcome: denyForever(Math.floor((capacity - level) / W), Math.ceil(level / L)) };
    }
    if (level + need > capacity) {
      return {
        state,
        outcome: {
          allowed: false,
          remaining: Math.floor((capacity - level) / W),
          resetMs: Math.ceil(level / L),
          retryAfterMs: Math.ceil((level + need - capacity) / L),
          delayMs: 0,
        },
      };
    }
    const next = level + need;
    return {
      state: [next, now],
      outcome: {
        allowed: true,
        remaining: Math.floor((capacity - next) / W),
        resetMs: Math.ceil(next / L),
        retryAfterMs: 0,
        delayMs: policy.delay ? Math.ceil(level / L) : 0,
      },
    };
  },

  refund(state, now, policy, cost) {
    if (state === undefined) return undefined;
    const level = Math.max(0, levelAt(state, now, policy) - cost * policy.window);
    return level === 0 ? undefined : [level, now];
  },

  expiresAt: (state, policy) => state[1]! + Math.ceil(state[0]! / policy.limit),
};
