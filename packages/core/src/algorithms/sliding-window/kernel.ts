import { type AlgorithmStep, type Kernel, pureStep, type State, setOutcome } from '../types.js';

// State: [currentWindowStart, currentCount, previousCount]. Windows are aligned to multiples of W.
// estimate = prev * (W - elapsed) / W + curr; everything below is that equation multiplied by W,
// so it stays in exact integers (and matches the Lua twin bit for bit).

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
  // Still inside the current window, as the previous window's weight decays.
  const k = (L - curr - cost) * W;
  if (prev > 0 && k >= 0) {
    const q = Math.floor(k / prev);
    if (q >= 1) return start + W - q - now;
  }
  // In the next window, where this window's count becomes the decaying one.
  const next = start + W;
  if (curr === 0) return next - now;
  const q2 = Math.floor(((L - cost) * W) / curr);
  return next + Math.max(0, W - q2) - now;
}

const run: Kernel = (data, at, now, policy, cost, out) => {
  const W = policy.window;
  const L = policy.limit;
  const start = now - (now % W);
  const stored = data[at]!;
  let curr = 0;
  let prev = 0;
  if (stored === start) {
    curr = data[at + 1]!;
    prev = data[at + 2]!;
  } else if (stored === start - W) {
    prev = data[at + 1]!;
  }
  const free = L * W - prev * (W - (now - start)) - curr * W;
  // In debt (a settle counted past L) `free` is negative: nothing remains until it has decayed.
  const remaining = Math.max(0, Math.floor(free / W));
  if (cost > L) {
    return setOutcome(out, false, remaining, resetMs(start, curr, prev, now, W), Number.POSITIVE_INFINITY, 0);
  }
  if (cost * W > free) {
    const retry = retryAfter(start, curr, prev, now, W, L, cost);
    return setOutcome(out, false, remaining, resetMs(start, curr, prev, now, W), retry, 0);
  }
  data[at] = start;
  data[at + 1] = curr + cost;
  data[at + 2] = prev;
  return setOutcome(
    out,
    true,
    Math.floor((free - cost * W) / W),
    resetMs(start, curr + cost, prev, now, W),
    0,
    0,
  );
};

/** [windowStart, curr, prev] as seen at `now`. */
function shift(state: State, now: number, W: number): [number, number, number] {
  const start = now - (now % W);
  if (state[0] === start) return [start, state[1]!, state[2]!];
  if (state[0] === start - W) return [start, 0, state[1]!];
  return [start, 0, 0];
}

export const slidingWindowStep: AlgorithmStep = {
  width: 3,
  run,
  step: pureStep(3, run),

  refund(state, now, policy, cost, countedAt) {
    if (state === undefined) return undefined;
    const W = policy.window;
    const [start, curr, prev] = shift(state, now, W);
    if (curr === 0 && prev === 0) return undefined;
    if (countedAt === undefined) {
      const fromCurr = Math.min(curr, cost);
      return [start, curr - fromCurr, Math.max(0, prev - (cost - fromCurr))];
    }
    // To the window that counted the units, if it still weighs in: this one or the previous one.
    const counted = countedAt - (countedAt % W);
    if (counted === start) return [start, Math.max(0, curr - cost), prev];
    if (counted === start - W) return [start, curr, Math.max(0, prev - cost)];
    return [start, curr, prev];
  },

  // Debt: the estimate above L, counted in this window; it decays as the window slides past it.
  charge(state, now, policy, cost) {
    const W = policy.window;
    const [start, curr, prev] = state === undefined ? [now - (now % W), 0, 0] : shift(state, now, W);
    const free = policy.limit * W - prev * (W - (now - start)) - curr * W;
    const charged = Math.min(cost, Math.max(0, Math.floor((free + policy.maxDebt * W) / W)));
    if (curr + charged === 0 && prev === 0) return { state: undefined, charged };
    return { state: [start, curr + charged, prev], charged };
  },

  expiresAt: (state, policy) => state[0]! + 2 * policy.window,
};
