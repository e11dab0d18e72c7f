import type { ResolvedPolicy } from '../types.js';
import { type AlgorithmStep, denyForever, type State, type StepResult } from './types.js';

// State: [currentWindowStart, currentCount, previousCount]. Windows are aligned to multiples of W.
// estimate = prev * (W - elapsed) / W + curr; everything below is that equation multiplied by W,
// so it stays in exact integers (and matches the Lua twin bit for bit).

/** [windowStart, curr, prev] as seen at `now`. */
function shift(state: State | undefined, now: number, W: number): [number, number, number] {
  const start = now - (now % W);
  if (state === undefined) return [start, 0, 0];
  const stored = state[0]!;
  if (stored === start) return [start, state[1]!, state[2]!];
  if (stored === start - W) return [start, 0, state[1]!];
  return [start, 0, 0];
}

function resetMs(start: number, curr: number, prev: number, now: number, W: number): number {
  if (curr > 0) return start + 2 * W - now;
  if (prev > 0) return start + W - now;
  return 0;
}

/** Earliest wait after which `cost` fits, given that it does not fit now. */
function retryAfter(
  start: number,
  curr: number,
  prev: number,
  now: number,
  W: number,
  L: number,
  cost: number,
) {
  const elapsed = now - start;
  // Still inside the current window, as the previous window's weight decays.
  const k = (L - curr - cost) * W;
  if (prev > 0 && k >= 0) {
    const q = Math.floor(k / prev);
    if (q >= 1) return W - q - elapsed;
  }
  // In the next window, where this window's count becomes the decaying one.
  const next = start + W;
  if (curr === 0) return next - now;
  const q2 = Math.floor(((L - cost) * W) / curr);
  return next + Math.max(0, W - q2) - now;
}

export const slidingWindow: AlgorithmStep = {
  width: 3,

  step(state, now, policy: ResolvedPolicy, cost): StepResult {
    const W = policy.window;
    const L = policy.limit;
    const [start, curr, prev] = shift(state, now, W);
    const used = prev * (W - (now - start)) + curr * W;
    if (cost > L) {
      return {
        state,
        outcome: denyForever(Math.floor((L * W - used) / W), resetMs(start, curr, prev, now, W)),
      };
    }
    if (used + cost * W > L * W) {
      return {
        state,
        outcome: {
          allowed: false,
          remaining: Math.floor((L * W - used) / W),
          resetMs: resetMs(start, curr, prev, now, W),
          retryAfterMs: retryAfter(start, curr, prev, now, W, L, cost),
          delayMs: 0,
        },
      };
    }
    const next = curr + cost;
    return {
      state: [start, next, prev],
      outcome: {
        allowed: true,
        remaining: Math.floor((L * W - used - cost * W) / W),
        resetMs: resetMs(start, next, prev, now, W),
        retryAfterMs: 0,
        delayMs: 0,
      },
    };
  },

  refund(state, now, policy, cost) {
    if (state === undefined) return undefined;
    const [start, curr, prev] = shift(state, now, policy.window);
    if (curr === 0 && prev === 0) return undefined;
    const fromCurr = Math.min(curr, cost);
    return [start, curr - fromCurr, Math.max(0, prev - (cost - fromCurr))];
  },

  expiresAt: (state, policy) => state[0]! + 2 * policy.window,
};
