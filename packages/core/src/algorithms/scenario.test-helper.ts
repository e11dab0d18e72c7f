// Shared by the algorithm tests: one key behind a limiter on a MemoryStore with a virtual clock,
// and the expected outcome shapes.
import { createLimiter } from '../limiter.js';
import { MemoryStore } from '../memory-store.js';
import type { Decision, Policy } from '../types.js';

export const INF = Number.POSITIVE_INFINITY;

/** One key behind a limiter on a MemoryStore with a virtual clock. */
export function scenario(policy: Policy) {
  let t = 0;
  const store = new MemoryStore({ clock: () => t });
  // Windows here are milliseconds on purpose (a virtual clock): no TOLLGATE_NUMERIC_WINDOW notes.
  const limiter = createLimiter({ policies: policy, store, logger: { warn() {}, error() {} } });
  const view = (d: Decision) => ({
    allowed: d.allowed,
    remaining: d.remaining,
    resetMs: d.resetMs,
    retryAfterMs: d.retryAfterMs,
    delayMs: d.delayMs,
  });
  return {
    store,
    limiter,
    at(ms: number) {
      t = ms;
    },
    hit: async (cost = 1, key = 'k') => view(await limiter.consume(key, { cost })),
    /** A reservation of `cost`, its decision and its settle as outcome views. */
    reserve: async (cost: number, key = 'k') => {
      const r = await limiter.reserve(key, { cost });
      return {
        decision: view(r.decision),
        settle: async (actual: number) => {
          const d = await r.settle(actual);
          return { ...view(d), uncharged: d.policies[0]!.uncharged ?? 0 };
        },
        release: () => r.release(),
      };
    },
    peek: async (key = 'k') => view(await limiter.peek(key)),
  };
}

export const ok = (remaining: number, resetMs: number, delayMs = 0) => ({
  allowed: true,
  remaining,
  resetMs,
  retryAfterMs: 0,
  delayMs,
});

export const no = (remaining: number, resetMs: number, retryAfterMs: number) => ({
  allowed: false,
  remaining,
  resetMs,
  retryAfterMs,
  delayMs: 0,
});
