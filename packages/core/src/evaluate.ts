import { STEPS } from './algorithms/index.js';
import { type Kernel, newOutcome, type State } from './algorithms/types.js';
import type { Outcome, PolicySet, ResolvedPolicy } from './types.js';

export interface Evaluation {
  allowed: boolean;
  outcomes: Outcome[];
  /** The states to store when allowed; when denied nothing is stored (a denial consumes nothing). */
  states: (State | undefined)[];
}

/**
 * The all-or-nothing combinator, on packed state: the one TypeScript twin of the Lua scripts'
 * several-policy loop (packages/redis/src/lua/scripts.ts). Runs each policy's kernel on `working`
 * (policy i's state at `offsets[i]`), writing its outcome into `outcomes[i]`; if any enforced one
 * denies, the policies that allowed report their state as with cost 0, each run on a fresh copy that `reload`
 * writes into `spare`. Returns whether the request is allowed: then, and only then, `working` holds
 * every policy's next state.
 */
export function applyAll(
  kernels: readonly Kernel[],
  offsets: readonly number[],
  policies: readonly ResolvedPolicy[],
  working: Float64Array,
  reload: (into: Float64Array) => void,
  spare: Float64Array,
  now: number,
  cost: number,
  outcomes: Outcome[],
): boolean {
  let allowed = true;
  for (let i = 0; i < kernels.length; i++) {
    const out = newOutcome();
    const policy = policies[i]!;
    // A shadow policy that denies keeps its state (a kernel writes only when it allows) and never
    // denies the request: enforced policies never see a shadow denial.
    if (!kernels[i]!(working, offsets[i]!, now, policy, cost, out) && policy.mode !== 'shadow') {
      allowed = false;
    }
    outcomes[i] = out;
  }
  if (allowed) return true;
  for (let i = 0; i < kernels.length; i++) {
    const out = outcomes[i]!;
    if (!out.allowed) continue;
    // Allowed here but the request as a whole is denied: report this policy as untouched.
    reload(spare);
    kernels[i]!(spare, offsets[i]!, now, policies[i]!, 0, out);
    out.retryAfterMs = 0;
    out.delayMs = 0;
  }
  return false;
}

/**
 * Applies one request of `cost` to every policy of `set`, all or nothing (see `applyAll`), on
 * states as arrays: the reference the stores are tested against.
 */
export function evaluate(
  states: readonly (State | undefined)[],
  now: number,
  set: PolicySet,
  cost: number,
): Evaluation {
  const { policies } = set;
  const steps = policies.map((p) => STEPS[p.algorithm]);
  const offsets: number[] = [];
  let width = 0;
  for (const step of steps) {
    offsets.push(width);
    width += step.width;
  }
  const original = new Float64Array(width);
  steps.forEach((_, i) => {
    const state = states[i];
    if (state === undefined) original[offsets[i]!] = Number.NaN;
    else original.set(state, offsets[i]!);
  });
  const working = original.slice();
  const outcomes: Outcome[] = new Array(policies.length);
  const allowed = applyAll(
    steps.map((step) => step.run),
    offsets,
    policies,
    working,
    (into) => into.set(original),
    new Float64Array(width),
    now,
    cost,
    outcomes,
  );
  const next = allowed
    ? steps.map((step, i) => Array.from(working.subarray(offsets[i]!, offsets[i]! + step.width)))
    : [...states];
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
      windowMs: idle.windowMs,
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

/**
 * A reservation's settle on states as arrays: `delta` more units on every policy, each as far as its
 * `maxDebt` allows (the rest in `uncharged`), or, when negative, `-delta` given back as
 * `refundStates` gives them.
 */
export function settleStates(
  states: readonly (State | undefined)[],
  now: number,
  set: PolicySet,
  delta: number,
  countedAt?: number,
): { states: (State | undefined)[]; uncharged: number[] } {
  if (delta < 0) {
    return {
      states: refundStates(states, now, set, -delta, countedAt),
      uncharged: set.policies.map(() => 0),
    };
  }
  const uncharged: number[] = [];
  const next = set.policies.map((policy, i) => {
    const { state, charged } = STEPS[policy.algorithm].charge(states[i], now, policy, delta);
    uncharged.push(delta - charged);
    return state;
  });
  return { states: next, uncharged };
}
