import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ConfigError, StoreError } from './errors.js';
import { createLimiter } from './limiter.js';
import { MemoryStore } from './memory-store.js';
import type { Logger, Outcome, Policy, PolicySet, Settlement, Store } from './types.js';
import { WARNINGS } from './warnings.js';

/** A logger that records what it is given. */
function recorder() {
  const warn: string[] = [];
  const error: string[] = [];
  const logger: Logger = { warn: (m) => warn.push(m), error: (m) => error.push(m) };
  return { logger, warn, error };
}

/** A MemoryStore behind a switch: every call fails while `failing`, like a dropped connection. */
class Switchable implements Store {
  failing = false;
  settles = 0;
  constructor(readonly inner: MemoryStore) {}
  private check() {
    if (this.failing) throw new Error('connect ECONNREFUSED 127.0.0.1:6390');
  }
  async consume(key: string, set: PolicySet, cost: number): Promise<Outcome[]> {
    this.check();
    return this.inner.consume(key, set, cost);
  }
  async peek(key: string, set: PolicySet): Promise<Outcome[]> {
    this.check();
    return this.inner.peek(key, set);
  }
  async refund(key: string, set: PolicySet, cost: number): Promise<void> {
    this.check();
    return this.inner.refund(key, set, cost);
  }
  async reset(key: string, set: PolicySet): Promise<void> {
    this.check();
    return this.inner.reset(key, set);
  }
  async settle(key: string, set: PolicySet, delta: number, countedAt?: number): Promise<Settlement> {
    this.settles++;
    this.check();
    return this.inner.settle(key, set, delta, countedAt);
  }
}

/** Tokens per minute and per day, as an LLM proxy limits them. */
const TOKENS: Policy[] = [
  { name: 'tpm', algorithm: 'token-bucket', limit: 1000, window: '1m', maxDebt: 500 },
  { name: 'tpd', algorithm: 'fixed-window', limit: 5000, window: '1d' },
];

function setup(policies: Policy | Policy[] = TOKENS) {
  let t = 1_000_000;
  const store = new MemoryStore({ clock: () => t });
  const log = recorder();
  const limiter = createLimiter({ policies, store, logger: log.logger });
  return {
    limiter,
    store,
    log,
    at: (ms: number) => {
      t = ms;
    },
    /** What each policy has left, as a cost-1 request sees it. */
    left: async (key = 'k') => (await limiter.peek(key)).policies.map((p) => p.remaining),
  };
}

describe('reserve, then settle', () => {
  test('every policy is charged the actual cost exactly, even past its limit, up to maxDebt', async () => {
    const s = setup();
    const r = await s.limiter.reserve('k', { cost: 400 });
    expect(r.decision.allowed).toBe(true);
    expect(await s.left()).toEqual([600, 4600]);
    // 700 actual: 300 more on both policies.
    const settled = await r.settle(700);
    expect(settled.allowed).toBe(true);
    expect(settled.policies.map((p) => p.remaining)).toEqual([300, 4300]);
    expect(settled.policies.map((p) => p.uncharged)).toEqual([undefined, undefined]);
    // A second reservation fits, then costs 1100: 800 over the minute's 300 left, past its limit.
    const second = await s.limiter.reserve('k', { cost: 300 });
    const owed = await second.settle(1100);
    // The minute bucket owes 500 tokens at most (maxDebt): 300 of the 800 are not charged there;
    // the day window counts all 1100.
    expect(owed.policies.map((p) => p.uncharged)).toEqual([300, undefined]);
    expect(owed.allowed).toBe(false);
    expect(owed.policy.name).toBe('tpm');
    // -500 tokens: 501 to refill before a cost-1 request fits, 1000 per minute, 60 ms per token.
    expect(owed.retryAfterMs).toBe(30_060);
    expect(s.log.warn).toEqual([expect.stringContaining(`[${WARNINGS.DEBT_CAPPED}]`)]);
    expect(s.log.warn[0]).toContain("300 units uncharged on policy 'tpm'");
    const denied = await s.limiter.consume('k');
    expect(denied).toMatchObject({ allowed: false, retryAfterMs: 30_060 });
    s.at(1_000_000 + 30_059);
    expect((await s.limiter.consume('k')).allowed).toBe(false);
    s.at(1_000_000 + 30_060);
    expect((await s.limiter.consume('k')).allowed).toBe(true);
    // The day: 700 + 1100 + 1.
    expect((await s.limiter.peek('k')).policies[1]!.remaining).toBe(5000 - 1801);
  });

  test('settled below the estimate: the difference goes back; release gives all of it back', async () => {
    const s = setup();
    const r = await s.limiter.reserve('k', { cost: 400 });
    await r.settle(150);
    expect(await s.left()).toEqual([850, 4850]);
    const gone = await s.limiter.reserve('k', { cost: 600 });
    expect(await s.left()).toEqual([250, 4250]);
    await gone.release();
    expect(await s.left()).toEqual([850, 4850]);
  });

  test('settle and release are idempotent: the first call decides, later ones answer the same', async () => {
    const s = setup();
    const r = await s.limiter.reserve('k', { cost: 100 });
    const first = await r.settle(200);
    expect(await r.settle(900)).toBe(first);
    await r.release();
    expect(await s.left()).toEqual([800, 4800]);
    const released = await s.limiter.reserve('k', { cost: 100 });
    await released.release();
    await released.release();
    // A settle after a release charges nothing and answers the release's state.
    const after = await released.settle(300);
    expect(after.policies.map((p) => p.remaining)).toEqual([800, 4800]);
    expect(await s.left()).toEqual([800, 4800]);
  });

  test('an unsettled reservation counts its estimate', async () => {
    const s = setup();
    await s.limiter.reserve('k', { cost: 250 });
    expect(await s.left()).toEqual([750, 4750]);
  });

  test('a denied reservation counted nothing: settle and release change nothing', async () => {
    const s = setup();
    await s.limiter.consume('k', { cost: 900 });
    const r = await s.limiter.reserve('k', { cost: 200 });
    expect(r.decision.allowed).toBe(false);
    expect(await r.settle(500)).toBe(r.decision);
    await r.release();
    expect(await s.left()).toEqual([100, 4100]);
  });

  test('an estimate above a capacity is denied for ever, with a coded warning naming the fix', async () => {
    const s = setup();
    const r = await s.limiter.reserve('k', { cost: 1001 });
    expect(r.decision).toMatchObject({ allowed: false, retryAfterMs: Number.POSITIVE_INFINITY });
    expect(s.log.warn).toHaveLength(1);
    expect(s.log.warn[0]).toContain(`[${WARNINGS.ESTIMATE_ABOVE_CAPACITY}]`);
    expect(s.log.warn[0]).toContain("policy 'tpm' (1000)");
    expect(s.log.warn[0]).toContain('Reserve at most 1000');
    // A shadow policy never denies: an estimate above its capacity is no mistake.
    const shadow = setup([
      { name: 'tpd', limit: 5000, window: '1d' },
      { name: 'tpm-v2', limit: 500, window: '1m', mode: 'shadow' },
    ]);
    const r2 = await shadow.limiter.reserve('k', { cost: 800 });
    expect(r2.decision.allowed).toBe(true);
    expect(r2.decision.shadowLimited).toEqual(['tpm-v2']);
    expect(shadow.log.warn).toEqual([]);
  });

  test('bad input: a ConfigError, and the reservation stays open', async () => {
    const s = setup();
    await expect(s.limiter.reserve('k', { cost: -1 })).rejects.toThrow(ConfigError);
    const r = await s.limiter.reserve('k', { cost: 10 });
    for (const actual of [-1, 1.5, Number.NaN, '3', undefined]) {
      await expect(r.settle(actual as number)).rejects.toThrow(
        /Expected `actual` to be a non-negative integer/,
      );
    }
    await r.settle(20);
    expect(await s.left()).toEqual([980, 4980]);
  });

  test('a store without settle: reserve is a ConfigError naming the fix', async () => {
    const inner = new MemoryStore();
    const store: Store = {
      consume: (k, set, c) => inner.consume(k, set, c),
      peek: (k, set) => inner.peek(k, set),
      refund: (k, set, c) => inner.refund(k, set, c),
      reset: (k, set) => inner.reset(k, set),
    };
    const limiter = createLimiter({ policies: TOKENS, store });
    await expect(limiter.reserve('k', { cost: 1 })).rejects.toThrow(/has no `settle` method/);
  });

  test('store failures: fail-open counts nothing to settle; a failing settle rejects, once', async () => {
    const store = new Switchable(new MemoryStore());
    const log = recorder();
    const limiter = createLimiter({ policies: TOKENS, store, logger: log.logger });
    store.failing = true;
    const open = await limiter.reserve('k', { cost: 100 });
    expect(open.decision).toMatchObject({ allowed: true, reason: 'store-error' });
    store.failing = false;
    await open.settle(5000);
    expect(store.settles).toBe(0);
    // A limiter that has not seen the store fail (this one probes it once a second).
    const fresh = createLimiter({ policies: TOKENS, store, logger: log.logger });
    const r = await fresh.reserve('k', { cost: 100 });
    expect(r.decision.reason).toBeUndefined();
    store.failing = true;
    const failed = r.settle(300);
    await expect(failed).rejects.toThrow(StoreError);
    store.failing = false;
    // Not sent again: a settle that may have reached the store is never charged twice.
    await expect(r.settle(300)).rejects.toThrow(StoreError);
    expect(store.settles).toBe(1);
  });

  test('a reservation counted by the fallback is settled there', async () => {
    const store = new Switchable(new MemoryStore());
    const fallback = new MemoryStore();
    const limiter = createLimiter({ policies: TOKENS, store, fallback, logger: recorder().logger });
    store.failing = true;
    const r = await limiter.reserve('k', { cost: 100 });
    expect(r.decision.reason).toBe('fallback');
    store.failing = false;
    const settled = await r.settle(40);
    expect(settled.reason).toBe('fallback');
    const set = limiter.resolve();
    expect((await fallback.peek('k', set)).map((o) => o.remaining)).toEqual([960, 4960]);
    expect((await store.inner.peek('k', set)).map((o) => o.remaining)).toEqual([1000, 5000]);
  });
});

describe('debt keeps retryAfterMs tight (property)', () => {
  const policy: fc.Arbitrary<Policy> = fc.oneof(
    fc.record({
      algorithm: fc.constantFrom('fixed-window' as const, 'sliding-window' as const),
      limit: fc.integer({ min: 1, max: 20 }),
      window: fc.integer({ min: 1, max: 5000 }),
      maxDebt: fc.integer({ min: 0, max: 40 }),
    }),
    fc.record({
      algorithm: fc.constant('token-bucket' as const),
      limit: fc.integer({ min: 1, max: 20 }),
      window: fc.integer({ min: 1, max: 5000 }),
      burst: fc.integer({ min: 1, max: 30 }),
      maxDebt: fc.integer({ min: 0, max: 40 }),
    }),
    fc.record({
      algorithm: fc.constant('leaky-bucket' as const),
      limit: fc.integer({ min: 1, max: 20 }),
      window: fc.integer({ min: 1, max: 5000 }),
      burst: fc.integer({ min: 1, max: 30 }),
      maxDebt: fc.integer({ min: 0, max: 40 }),
      delay: fc.boolean(),
    }),
  );
  const step = fc.record({
    advance: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 10_000 })),
    estimate: fc.integer({ min: 0, max: 10 }),
    actual: fc.integer({ min: 0, max: 60 }),
    cost: fc.integer({ min: 0, max: 4 }),
  });

  test('with no other traffic, a key in debt is denied 1 ms before the wait it is told, and allowed on it', async () => {
    let probed = 0;
    await fc.assert(
      fc.asyncProperty(policy, fc.array(step, { minLength: 1, maxLength: 25 }), async (p, steps) => {
        let t = 0;
        const store = new MemoryStore({ clock: () => t });
        const limiter = createLimiter({ policies: p, store, logger: recorder().logger });
        for (const { advance, estimate, actual, cost } of steps) {
          t += advance;
          const r = await limiter.reserve('k', { cost: estimate });
          const settled = await r.settle(actual);
          const d = await limiter.consume('k', { cost });
          // Never a negative or fractional remaining, in debt or not.
          for (const o of [settled, d]) {
            expect(Number.isInteger(o.remaining) && o.remaining >= 0).toBe(true);
          }
          if (d.allowed || !Number.isFinite(d.retryAfterMs)) continue;
          probed++;
          const now = t;
          t = now + d.retryAfterMs - 1;
          expect((await limiter.consume('k', { cost })).allowed).toBe(false);
          t = now + d.retryAfterMs;
          expect((await limiter.consume('k', { cost })).allowed).toBe(true);
        }
      }),
      { numRuns: 150 },
    );
    // The generator reaches denials (debt among them) often enough to mean something.
    expect(probed).toBeGreaterThan(50);
  });
});
