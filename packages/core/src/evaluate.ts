import { STEPS } from './algorithms/index.js';
import { type Kernel, type LeaseSet, newOutcome, type State } from './algorithms/types.js';
import { BAN_WIDTH, banLeft, bannedOutcomes, countDenial, setBan } from './ban/kernel.js';
import type { ConsumeInfo, Outcome, PolicySet, ResolvedBan, ResolvedPolicy } from './types.js';

export interface Evaluation {
  allowed: boolean;
  outcomes: Outcome[];
  /**
   * The states to store: every policy's, then with bans (`set.ban`) the ban slot. A denial consumes
   * nothing, so on a denial the policies' states are the ones given; only the ban slot may change
   * (the denial is counted).
   */
  states: (State | undefined)[];
  /** Ms of ban left when the request was refused for a ban (one it met or started); else 0. */
  banLeftMs: number;
  /** When this request started a ban: its offence number; else 0. */
  banOffence: number;
}

/**
 * The all-or-nothing combinator, on packed state: the one TypeScript twin of the Lua scripts'
 * several-policy loop (packages/redis/src/lua/scripts.ts). Runs each policy's kernel on `working`
 * (policy i's state at `offsets[i]`), writing its outcome into `outcomes[i]`; if any enforced one
 * denies, the policies that allowed report their state as with cost 0, each run on a fresh copy that `reload`
 * writes into `spare`. Returns whether the request is allowed: then, and only then, `working` holds
 * every policy's next state (and the caller holds the request's lease: `takeSlot`). `leases`: the
 * requests in flight of the set's concurrency policy, if it has one (the other kernels ignore it).
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
  leases?: LeaseSet,
): boolean {
  let allowed = true;
  for (let i = 0; i < kernels.length; i++) {
    const out = newOutcome();
    const policy = policies[i]!;
    // A shadow policy that denies keeps its state (a kernel writes only when it allows) and never
    // denies the request: enforced policies never see a shadow denial.
    if (!kernels[i]!(working, offsets[i]!, now, policy, cost, out, leases) && policy.mode !== 'shadow') {
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
    kernels[i]!(spare, offsets[i]!, now, policies[i]!, 0, out, leases);
    out.retryAfterMs = 0;
    out.delayMs = 0;
  }
  return false;
}

/** What a request did to a key with bans (`applyBanned`). */
export const DENIED = 0;
/** Every policy allowed: the working copy holds the next state, to store whole. */
export const ALLOWED = 1;
/** Denied, and the denial was counted: store the working copy's ban slot, and nothing else. */
export const COUNTED = 2;

/**
 * `applyAll` for a set with bans, its ban slot at `banAt` of `working`: a banned key is refused for
 * the ban's time left without running any policy; a denial is counted, and the `after`-th within
 * `within` starts a ban, which this request already gets (`retryAfterMs` = the ban). `info` hears
 * of the ban (see ConsumeInfo). The Lua twin is the ban part of packages/redis/src/lua/scripts.ts.
 */
export function applyBanned(
  kernels: readonly Kernel[],
  offsets: readonly number[],
  policies: readonly ResolvedPolicy[],
  working: Float64Array,
  reload: (into: Float64Array) => void,
  spare: Float64Array,
  now: number,
  cost: number,
  outcomes: Outcome[],
  ban: ResolvedBan,
  banAt: number,
  info: ConsumeInfo | undefined,
  leases?: LeaseSet,
): typeof DENIED | typeof ALLOWED | typeof COUNTED {
  const left = banLeft(working, banAt, now);
  if (left > 0) {
    bannedOutcomes(outcomes, kernels.length, left);
    if (info !== undefined) info.banLeftMs = left;
    return DENIED;
  }
  if (applyAll(kernels, offsets, policies, working, reload, spare, now, cost, outcomes, leases)) {
    return ALLOWED;
  }
  if (ban.after === 0) return DENIED;
  const length = countDenial(working, banAt, now, ban);
  if (length > 0) {
    bannedOutcomes(outcomes, kernels.length, length);
    if (info !== undefined) {
      info.banLeftMs = length;
      info.banOffence = working[banAt + 1]!;
    }
  }
  return COUNTED;
}

/** The policies' states and, with bans, the ban slot (`states[policies.length]`), packed. */
function pack(states: readonly (State | undefined)[], set: PolicySet) {
  const steps = set.policies.map((p) => STEPS[p.algorithm]);
  const offsets: number[] = [];
  let width = 0;
  for (const step of steps) {
    offsets.push(width);
    width += step.width;
  }
  const banAt = width;
  if (set.ban !== undefined) width += BAN_WIDTH;
  const data = new Float64Array(width);
  const put = (state: State | undefined, at: number) => {
    if (state === undefined) data[at] = Number.NaN;
    else data.set(state, at);
  };
  for (let i = 0; i < steps.length; i++) put(states[i], offsets[i]!);
  if (set.ban !== undefined) put(states[steps.length], banAt);
  return { steps, offsets, banAt, data };
}

/** The ban slot of a packed state as a State (undefined: none). */
const banState = (data: Float64Array, banAt: number): State | undefined =>
  Number.isNaN(data[banAt]!) ? undefined : Array.from(data.subarray(banAt, banAt + BAN_WIDTH));

/**
 * After `set` allowed a request of `cost` as a whole: holds its lease `id` in `leases` (those of the
 * set's concurrency policy) if it takes a slot. Returns whether it did.
 */
export function takeSlot(set: PolicySet, leases: LeaseSet, id: string, now: number, cost: number): boolean {
  const policy = set.policies[set.holder]!;
  const holding = STEPS[policy.algorithm].holds!;
  if (!holding.takes(cost)) return false;
  leases.add(id, now, holding.endOf(now, policy));
  return true;
}

/**
 * Applies one request of `cost` to every policy of `set`, all or nothing (see `applyAll`), and to
 * its ban when it has one (`applyBanned`), on states as arrays: the reference the stores are
 * tested against. `leases`: the requests in flight of the set's concurrency policy, if any; read
 * only (`takeSlot` holds the request's lease).
 */
export function evaluate(
  states: readonly (State | undefined)[],
  now: number,
  set: PolicySet,
  cost: number,
  leases?: LeaseSet,
): Evaluation {
  const { policies, ban } = set;
  const { steps, offsets, banAt, data: original } = pack(states, set);
  const working = original.slice();
  const outcomes: Outcome[] = new Array(policies.length);
  const kernels = steps.map((step) => step.run);
  const reload = (into: Float64Array) => into.set(original);
  const spare = new Float64Array(original.length);
  const info: ConsumeInfo = {};
  const verdict =
    ban === undefined
      ? Number(applyAll(kernels, offsets, policies, working, reload, spare, now, cost, outcomes, leases))
      : applyBanned(
          kernels,
          offsets,
          policies,
          working,
          reload,
          spare,
          now,
          cost,
          outcomes,
          ban,
          banAt,
          info,
          leases,
        );
  const next: (State | undefined)[] =
    verdict === ALLOWED
      ? steps.map((step, i) => Array.from(working.subarray(offsets[i]!, offsets[i]! + step.width)))
      : states.slice(0, policies.length);
  while (next.length < policies.length) next.push(undefined);
  if (ban !== undefined) next.push(banState(verdict === COUNTED ? working : original, banAt));
  return {
    allowed: verdict === ALLOWED,
    outcomes,
    states: next,
    banLeftMs: info.banLeftMs ?? 0,
    banOffence: info.banOffence ?? 0,
  };
}

/** The states after `limiter.ban(key, durationMs)` (offences kept while remembered: `setBan`). */
export function banStates(
  states: readonly (State | undefined)[],
  now: number,
  set: PolicySet,
  durationMs: number,
): (State | undefined)[] {
  const { banAt, data } = pack(states, set);
  setBan(data, banAt, now, durationMs, set.ban!);
  const next = withBanSlot(states, set);
  next[set.policies.length] = banState(data, banAt);
  return next;
}

/** The states after `limiter.unban(key)`: the ban slot emptied, the policies' states kept. */
export function unbanStates(states: readonly (State | undefined)[], set: PolicySet): (State | undefined)[] {
  const next = withBanSlot(states, set);
  next[set.policies.length] = undefined;
  return next;
}

/** A copy of `states` with one entry per policy and, with bans, the ban slot. */
function withBanSlot(states: readonly (State | undefined)[], set: PolicySet): (State | undefined)[] {
  const size = set.policies.length + (set.ban === undefined ? 0 : 1);
  return Array.from({ length: size }, (_, i) => states[i]);
}

/**
 * What a cost-1 request would get, consuming nothing: with bans, a banned key is refused for the
 * ban's time left (`info.banLeftMs`). `leases`: as for `evaluate`.
 */
export function peekOutcomes(
  states: readonly (State | undefined)[],
  now: number,
  set: PolicySet,
  info?: ConsumeInfo,
  leases?: LeaseSet,
): Outcome[] {
  const slot = set.ban === undefined ? undefined : states[set.policies.length];
  if (slot !== undefined) {
    const left = banLeft(Float64Array.from(slot), 0, now);
    if (left > 0) {
      if (info !== undefined) info.banLeftMs = left;
      return bannedOutcomes(new Array(set.policies.length), set.policies.length, left);
    }
  }
  return set.policies.map((policy, i) => {
    const step = STEPS[policy.algorithm];
    const idle = step.step(states[i], now, policy, 0, leases).outcome;
    const one = step.step(states[i], now, policy, 1, leases).outcome;
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
  const next = set.policies.map((policy, i) =>
    STEPS[policy.algorithm].refund(states[i], now, policy, cost, countedAt),
  );
  // A refund gives units back to the policies; the ban slot stays as it is.
  if (set.ban !== undefined) next.push(states[set.policies.length]);
  return next;
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
  // A settle charges the policies; the ban slot stays as it is.
  if (set.ban !== undefined) next.push(states[set.policies.length]);
  return { states: next, uncharged };
}
