import { type AlgorithmStep, type Holding, type Kernel, pureStep, setOutcome } from '../types.js';
import { Leases } from './leases.js';

// State: [lastEnd], when the last lease taken ends (NaN: none taken): it bounds how long the key
// lives. The leases themselves (the requests in flight) are in the LeaseSet beside it.

/** A request takes one slot whatever its cost (a cost counts units, e.g. tokens); cost 0 takes none. */
const takes = (cost: number): boolean => cost > 0;

const run: Kernel = (data, at, now, policy, cost, out, leases) => {
  const L = policy.limit;
  const live = leases === undefined ? 0 : leases.live(now);
  const last = live > 0 ? leases!.lastEnd() : now;
  if (takes(cost) && live + 1 > L) {
    // The first lease to end frees a slot, whatever else happens: the honest wait with no release.
    return setOutcome(out, false, Math.max(0, L - live), last - now, leases!.firstEnd(now) - now, 0);
  }
  const ends = takes(cost) ? now + policy.window : now;
  const stored = data[at]!;
  data[at] = Number.isNaN(stored) ? ends : Math.max(stored, ends);
  return setOutcome(out, true, L - live - (takes(cost) ? 1 : 0), Math.max(last, ends) - now, 0, 0);
};

const holds: Holding = {
  create: () => new Leases(),
  takes,
  endOf: (now, policy) => now + policy.window,
};

export const concurrencyStep: AlgorithmStep = {
  width: 1,
  run,
  step: pureStep(1, run),

  // Slots are given back by a release, never by a refund (which gives back units).
  refund: (state, now) => (state === undefined || state[0]! <= now ? undefined : state),

  // A settle counts units, never slots: nothing to count here, and nothing left uncharged.
  charge: (state, now, _policy, cost) => ({
    state: state === undefined || state[0]! <= now ? undefined : state,
    charged: cost,
  }),

  expiresAt: (state) => state[0]!,

  holds,
};
