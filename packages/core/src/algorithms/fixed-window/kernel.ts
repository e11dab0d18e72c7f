import type { ResolvedPolicy } from '../../types.js';
import { type AlgorithmStep, type Kernel, pureStep, setOutcome } from '../types.js';

// State: [windowStart, count]. A rolling window opens at the key's first request and lasts `window`
// ms. A calendar window is the period that holds `now`, [S, S + W) (S its start, W its length, both
// from `policy.calendar`, as the Lua body receives them): the state counts only while its start is
// the current period's.

/** The calendar period holding `now`, or undefined for a rolling window. */
const periodOf = (policy: ResolvedPolicy, now: number) => policy.calendar?.periodAt(now);

const run: Kernel = (data, at, now, policy, cost, out) => {
  const L = policy.limit;
  const period = periodOf(policy, now);
  const S = period?.start;
  const W = period === undefined ? policy.window : period.end - period.start;
  let start = data[at]!;
  // NaN (no state) fails both comparisons, like an expired window.
  const live = S !== undefined ? start === S : now < start + W;
  const count = live ? data[at + 1]! : 0;
  const resetMs = live ? start + W - now : 0;
  const windowMs = period === undefined ? undefined : W;
  // In debt (a settle counted past L) the count exceeds L: nothing remains until the window ends.
  const remaining = Math.max(0, L - count);
  if (cost > L) {
    return setOutcome(out, false, remaining, resetMs, Number.POSITIVE_INFINITY, 0, windowMs);
  }
  if (count + cost > L) return setOutcome(out, false, remaining, resetMs, resetMs, 0, windowMs);
  if (!live) start = S ?? now;
  data[at] = start;
  data[at + 1] = count + cost;
  return setOutcome(out, true, L - count - cost, start + W - now, 0, 0, windowMs);
};

export const fixedWindowStep: AlgorithmStep = {
  width: 2,
  run,
  step: pureStep(2, run),

  refund(state, now, policy, cost, countedAt) {
    if (state === undefined) return undefined;
    const period = periodOf(policy, now);
    const live = period !== undefined ? state[0] === period.start : now < state[0]! + policy.window;
    if (!live) return undefined;
    // Counted in an earlier window: this one owes it nothing.
    if (countedAt !== undefined && countedAt < state[0]!) return state;
    return [state[0]!, Math.max(0, state[1]! - cost)];
  },

  // Debt: the count above L, owed until the window ends (then the count starts over).
  charge(state, now, policy, cost) {
    const period = periodOf(policy, now);
    const live =
      state !== undefined &&
      (period !== undefined ? state[0] === period.start : now < state[0]! + policy.window);
    const start = live ? state[0]! : (period?.start ?? now);
    const count = live ? state[1]! : 0;
    const charged = Math.min(cost, Math.max(0, policy.limit + policy.maxDebt - count));
    if (charged === 0 && !live) return { state: undefined, charged };
    return { state: [start, count + charged], charged };
  },

  expiresAt: (state, policy) =>
    policy.calendar === undefined ? state[0]! + policy.window : policy.calendar.periodAt(state[0]!).end,
};
