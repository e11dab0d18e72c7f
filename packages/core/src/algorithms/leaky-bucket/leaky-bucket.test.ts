import { describe, expect, test } from 'vitest';
import { resolvePolicy } from '../../policy.js';
import type { Policy } from '../../types.js';
import { INF, no, ok, scenario } from '../scenario.test-helper.js';
import { leakyBucket } from './index.js';

describe('leaky-bucket (DESIGN: nginx limit_req shaping; drains L per W; queue capacity burst)', () => {
  const policy: Policy = { algorithm: 'leaky-bucket', limit: 10, window: 1000 };

  test('10 requests at once with 10 per second are held 0, 100, ..., 900 ms; the 11th is denied', async () => {
    const s = scenario(policy);
    s.at(0);
    for (let i = 0; i < 10; i++) {
      expect(await s.hit()).toEqual(ok(9 - i, 100 * (i + 1), 100 * i));
    }
    expect(await s.hit()).toEqual(no(0, 1000, 100));
    s.at(99);
    expect(await s.hit()).toEqual(no(0, 901, 1));
    // One unit drained: the newcomer waits behind the 9 still queued.
    s.at(100);
    expect(await s.hit()).toEqual(ok(0, 1000, 900));
    expect(await s.hit()).toEqual(no(0, 1000, 100));
    s.at(150);
    expect(await s.hit()).toEqual(no(0, 950, 50));
    // Fully drained.
    s.at(1100);
    expect(await s.peek()).toEqual(ok(10, 0));
  });

  test('delay: false admits exactly the same requests without holding them', async () => {
    const s = scenario({ ...policy, delay: false });
    s.at(0);
    for (let i = 0; i < 10; i++) expect(await s.hit()).toEqual(ok(9 - i, 100 * (i + 1), 0));
    expect(await s.hit()).toEqual(no(0, 1000, 100));
    s.at(100);
    expect(await s.hit()).toEqual(ok(0, 1000, 0));
    expect(await s.hit()).toEqual(no(0, 1000, 100));
  });

  test('costs 0, >1 and larger than the capacity', async () => {
    const s = scenario(policy);
    s.at(0);
    expect(await s.hit(0)).toEqual(ok(10, 0, 0));
    expect(await s.hit(2)).toEqual(ok(8, 200, 0));
    // Waits behind the two units queued ahead of it.
    expect(await s.hit()).toEqual(ok(7, 300, 200));
    expect(await s.hit(11)).toEqual(no(7, 300, INF));
    expect(await s.hit(8)).toEqual(no(7, 300, 100));
    expect(await s.hit(7)).toEqual(ok(0, 1000, 300));
    // A zero-cost request adds nothing to the queue (DESIGN does not fix how long it is held).
    expect(await s.hit(0)).toMatchObject({ allowed: true, remaining: 0, resetMs: 1000, retryAfterMs: 0 });
  });

  test('a cost larger than the capacity on a fresh key is denied and stores nothing', async () => {
    const s = scenario(policy);
    expect(await s.hit(11)).toEqual(no(10, 0, INF));
    expect(s.store.size).toBe(0);
  });

  test('burst sets the queue capacity', async () => {
    const s = scenario({ ...policy, burst: 5 });
    s.at(0);
    const first = await s.limiter.consume('k');
    expect(first.limit).toBe(5);
    expect(first.delayMs).toBe(0);
    for (let i = 1; i < 5; i++) expect(await s.hit()).toEqual(ok(4 - i, 100 * (i + 1), 100 * i));
    expect(await s.hit()).toEqual(no(0, 500, 100));
    expect(await s.hit(6)).toEqual(no(0, 500, INF));
  });

  test('a rate that does not divide the window: 3 per 1000 ms rounds waits up', async () => {
    const s = scenario({ algorithm: 'leaky-bucket', limit: 3, window: 1000 });
    s.at(0);
    expect(await s.hit()).toEqual(ok(2, 334, 0));
    expect(await s.hit()).toEqual(ok(1, 667, 334));
    expect(await s.hit()).toEqual(ok(0, 1000, 667));
    expect(await s.hit()).toEqual(no(0, 1000, 334));
    s.at(333);
    expect(await s.hit()).toEqual(no(0, 667, 1));
    s.at(334);
    expect(await s.hit()).toEqual(ok(0, 1000, 666));
  });

  test('the pure step: a denial returns the state it was given (same object)', () => {
    const p = resolvePolicy(policy);
    const state = [10_000, 0] as const;
    const denied = leakyBucket.step(state, 0, p, 1);
    expect(denied.state).toBe(state);
    expect(denied.outcome).toEqual(no(0, 1000, 100));
    expect(leakyBucket.expiresAt(state, p)).toBe(1000);
  });

  test('a refund leaves the queue whenever the units were counted, never below empty', () => {
    const p = resolvePolicy({ algorithm: 'leaky-bucket', limit: 5, window: 1000 });
    const full = [5000, 1000]; // five queued at 1000 (units of 1/W)
    expect(leakyBucket.refund(full, 1000, p, 2, 0)).toEqual([3000, 1000]);
    expect(leakyBucket.refund(full, 1000, p, 2)).toEqual([3000, 1000]);
    // Drained meanwhile: nothing left to keep.
    expect(leakyBucket.refund(full, 1600, p, 2, 1000)).toBeUndefined();
  });

  test('reserve, then settle: debt is the level above capacity, drained like the rest', async () => {
    const s = scenario({ ...policy, delay: false });
    s.at(0);
    const r = await s.reserve(4);
    expect(r.decision).toEqual(ok(6, 400));
    expect(await r.settle(9)).toEqual({ ...ok(1, 900), uncharged: 0 });
    const last = await s.reserve(1);
    expect(last.decision).toEqual(ok(0, 1000));
    // 11 more would fill it to 21: maxDebt (10) stops it at 20, 1 uncharged.
    expect(await last.settle(12)).toEqual({ ...no(0, 2000, 1100), uncharged: 1 });
    s.at(1099);
    expect(await s.hit()).toEqual(no(0, 901, 1));
    s.at(1100);
    expect(await s.hit()).toEqual(ok(0, 1000));
    s.at(5000);
    const small = await s.reserve(6);
    expect(small.decision).toEqual(ok(4, 600));
    expect(await small.settle(2)).toEqual({ ...ok(8, 200), uncharged: 0 });
    const gone = await s.reserve(5);
    await gone.release();
    expect(await s.peek()).toEqual(ok(8, 200));
  });

  test('charge: fills past capacity up to burst + maxDebt, the rest uncharged', () => {
    const p = resolvePolicy({ ...policy, maxDebt: 3 });
    expect(leakyBucket.charge(undefined, 0, p, 4)).toEqual({ state: [4000, 0], charged: 4 });
    expect(leakyBucket.charge([9000, 0], 0, p, 9)).toEqual({ state: [13_000, 0], charged: 4 });
    // Drained 150 ms: 1.5 units, so one whole unit fits again.
    expect(leakyBucket.charge([13_000, 0], 150, p, 9)).toEqual({ state: [12_500, 150], charged: 1 });
    expect(leakyBucket.charge(undefined, 0, p, 0)).toEqual({ state: undefined, charged: 0 });
  });
});
