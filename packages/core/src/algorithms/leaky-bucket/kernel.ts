import type { ResolvedPolicy } from '../../types.js';
import { type AlgorithmStep, type Kernel, pureStep, setOutcome } from '../types.js';

// The shaping bucket of nginx limit_req. State: [level * W, lastLeak]. The queue drains one unit
// every W/L ms, i.e. exactly L scaled units per millisecond. A request that fits waits for what is
// queued ahead of it: level / L ms.

/** Scaled level at `now`, from a stored (level, at) pair; NaN level means empty. */
function levelAt(level: number, at: number, now: number, policy: ResolvedPolicy): number {
  if (Number.isNaN(level)) return 0;
  const elapsed = Math.max(0, now - at);
  if (elapsed >= Math.ceil(level / policy.limit)) return 0;
  return level - elapsed * policy.limit;
}

const run: Kernel = (data, at, now, policy, cost, out) => {
  const W = policy.window;
  const L = policy.limit;
  const capacity = policy.burst * W;
  const level = levelAt(data[at]!, data[at + 1]!, now, policy);
  const need = cost * W;
  // In debt (a settle filled it past capacity) nothing remains until it has drained below.
  const remaining = Math.max(0, Math.floor((capacity - level) / W));
  if (cost > policy.burst) {
    return setOutcome(out, false, remaining, Math.ceil(level / L), Number.POSITIVE_INFINITY, 0);
  }
  if (level + need > capacity) {
    return setOutcome(
      out,
      false,
      remaining,
      Math.ceil(level / L),
      Math.ceil((level + need - capacity) / L),
      0,
    );
  }
  const next = level + need;
  data[at] = next;
  data[at + 1] = now;
  return setOutcome(
    out,
    true,
    Math.floor((capacity - next) / W),
    Math.ceil(next / L),
    0,
    policy.delay ? Math.ceil(level / L) : 0,
  );
};

export const leakyBucketStep: AlgorithmStep = {
  width: 2,
  run,
  step: pureStep(2, run),

  refund(state, now, policy, cost) {
    if (state === undefined) return undefined;
    const level = Math.max(0, levelAt(state[0]!, state[1]!, now, policy) - cost * policy.window);
    return level === 0 ? undefined : [level, now];
  },

  // Debt: the level above capacity, drained at L per W like the rest.
  charge(state, now, policy, cost) {
    const W = policy.window;
    const level = state === undefined ? 0 : levelAt(state[0]!, state[1]!, now, policy);
    const room = policy.burst * W + policy.maxDebt * W - level;
    const charged = Math.min(cost, Math.max(0, Math.floor(room / W)));
    const next = level + charged * W;
    return { state: next === 0 ? undefined : [next, now], charged };
  },

  expiresAt: (state, policy) => state[1]! + Math.ceil(state[0]! / policy.limit),
};
