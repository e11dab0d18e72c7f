import { describe, expect, test } from 'vitest';
import { resolvePolicy } from '../../policy.js';
import type { Policy } from '../../types.js';
import { INF, no, ok, scenario } from '../scenario.test-helper.js';
import { tokenBucket } from './index.js';

describe('token-bucket (DESIGN: capacity burst (default L), refills L per W continuously, starts full)', () => {
  const policy: Policy = { algorithm: 'token-bucket', limit: 10, window: 1000 };

  test('starts full, refills continuously, reset = time until full', async () => {
    const s = scenario(policy);
    s.at(0);
    expect(await s.peek()).toEqual(ok(10, 0));
    expect(await s.hit(10)).toEqual(ok(0, 1000));
    // One token every 100 ms.
    expect(await s.hit()).toEqual(no(0, 1000, 100));
    s.at(50);
    expect(await s.hit()).toEqual(no(0, 950, 50));
    s.at(99);
    expect(await s.hit()).toEqual(no(0, 901, 1));
    s.at(100);
    expect(await s.hit()).toEqual(ok(0, 1000));
    // 2.5 tokens: remaining 2; 3 needs 50 ms more.
    s.at(350);
    expect(await s.peek()).toEqual(ok(2, 750));
    expect(await s.hit(3)).toEqual(no(2, 750, 50));
    expect(await s.hit(2)).toEqual(ok(0, 950));
    // Full again 950 ms later; no more than full however long it waits.
    s.at(1299);
    expect(await s.peek()).toEqual(ok(9, 1));
    s.at(1300);
    expect(await s.peek()).toEqual(ok(10, 0));
    s.at(1_000_000);
    expect(await s.peek()).toEqual(ok(10, 0));
    expect(await s.hit(10)).toEqual(ok(0, 1000));
  });

  test('costs 0, >1 and larger than the capacity', async () => {
    const s = scenario(policy);
    s.at(0);
    expect(await s.hit(0)).toEqual(ok(10, 0));
    expect(await s.hit(7)).toEqual(ok(3, 700));
    expect(await s.hit(4)).toEqual(no(3, 700, 100));
    expect(await s.hit(11)).toEqual(no(3, 700, INF));
    expect(await s.hit(3)).toEqual(ok(0, 1000));
    expect(await s.hit(0)).toEqual(ok(0, 1000));
    // Cost 10 (the whole capacity) needs a full bucket.
    expect(await s.hit(10)).toEqual(no(0, 1000, 1000));
    s.at(999);
    expect(await s.hit(10)).toEqual(no(9, 1, 1));
    s.at(1000);
    expect(await s.hit(10)).toEqual(ok(0, 1000));
  });

  test('a cost larger than the capacity on a fresh key is denied and stores nothing', async () => {
    const s = scenario(policy);
    expect(await s.hit(11)).toEqual(no(10, 0, INF));
    expect(s.store.size).toBe(0);
  });

  test('burst sets the capacity; the refill rate stays L per W', async () => {
    const s = scenario({ algorithm: 'token-bucket', limit: 2, window: 1000, burst: 5 });
    s.at(0);
    const d = await s.limiter.consume('k');
    expect(d.limit).toBe(5);
    expect(d.remaining).toBe(4);
    expect(d.resetMs).toBe(500);
    expect(await s.hit()).toEqual(ok(3, 1000));
    expect(await s.hit()).toEqual(ok(2, 1500));
    expect(await s.hit()).toEqual(ok(1, 2000));
    expect(await s.hit()).toEqual(ok(0, 2500));
    expect(await s.hit()).toEqual(no(0, 2500, 500));
    expect(await s.hit(6)).toEqual(no(0, 2500, INF));
    s.at(499);
    expect(await s.hit()).toEqual(no(0, 2001, 1));
    s.at(500);
    expect(await s.hit()).toEqual(ok(0, 2500));
  });

  test('a rate that does not divide the window: 3 per 1000 ms rounds retries up', async () => {
    const s = scenario({ algorithm: 'token-bucket', limit: 3, window: 1000 });
    s.at(0);
    expect(await s.hit(3)).toEqual(ok(0, 1000));
    expect(await s.hit()).toEqual(no(0, 1000, 334));
    s.at(333);
    expect(await s.hit()).toEqual(no(0, 667, 1));
    s.at(334);
    expect(await s.hit()).toEqual(ok(0, 1000));
  });

  test('the pure step: a denial returns the state it was given (same object)', () => {
    const p = resolvePolicy(policy);
    const state = [0, 100] as const;
    const denied = tokenBucket.step(state, 150, p, 1);
    expect(denied.state).toBe(state);
    expect(denied.outcome).toEqual(no(0, 950, 50));
    expect(tokenBucket.step(undefined, 7, p, 11).state).toBeUndefined();
    expect(tokenBucket.expiresAt(state, p)).toBe(1100);
  });

  test('a refund goes back into the bucket whenever the units were counted, never past capacity', () => {
    const p = resolvePolicy({ algorithm: 'token-bucket', limit: 5, window: 1000 });
    const empty = [0, 1000]; // no tokens at 1000 (units of 1/W)
    expect(tokenBucket.refund(empty, 1000, p, 2, 0)).toEqual([2000, 1000]);
    expect(tokenBucket.refund(empty, 1000, p, 2)).toEqual([2000, 1000]);
    // Refilled meanwhile: the refund is capped, and a full bucket is no state.
    expect(tokenBucket.refund(empty, 1600, p, 2, 1000)).toBeUndefined();
  });

  test('reserve, then settle: debt is tokens below zero, refilled like the rest (maxDebt = burst)', async () => {
    const s = scenario(policy);
    s.at(0);
    const r = await s.reserve(4);
    expect(r.decision).toEqual(ok(6, 400));
    // Settled at 9: 5 more tokens, 1 left.
    expect(await r.settle(9)).toEqual({ ...ok(1, 900), uncharged: 0 });
    // The same answer again, nothing charged twice.
    expect(await r.settle(100)).toEqual({ ...ok(1, 900), uncharged: 0 });
    expect(await s.hit(3)).toEqual(no(1, 900, 200));
    const last = await s.reserve(1);
    expect(last.decision).toEqual(ok(0, 1000));
    // 11 more would take the bucket to -11 tokens: maxDebt (10) stops it at -10, 1 uncharged.
    expect(await last.settle(12)).toEqual({ ...no(0, 2000, 1100), uncharged: 1 });
    s.at(1099);
    expect(await s.hit()).toEqual(no(0, 901, 1));
    s.at(1100);
    expect(await s.hit()).toEqual(ok(0, 1000));
    // Settled below the estimate: tokens back; released: all of them.
    s.at(5000);
    const small = await s.reserve(6);
    expect(small.decision).toEqual(ok(4, 600));
    expect(await small.settle(2)).toEqual({ ...ok(8, 200), uncharged: 0 });
    const gone = await s.reserve(5);
    await gone.release();
    await gone.release();
    expect(await s.peek()).toEqual(ok(8, 200));
  });

  test('charge: tokens below zero down to -maxDebt, the rest uncharged', () => {
    const p = resolvePolicy({ ...policy, maxDebt: 3 });
    expect(tokenBucket.charge(undefined, 0, p, 4)).toEqual({ state: [6000, 0], charged: 4 });
    expect(tokenBucket.charge([1000, 0], 0, p, 9)).toEqual({ state: [-3000, 0], charged: 4 });
    expect(tokenBucket.charge([-3000, 0], 0, p, 9)).toEqual({ state: [-3000, 0], charged: 0 });
    // Refilled meanwhile: 50 ms is half a token, so one whole unit fits below -3.
    expect(tokenBucket.charge([-3000, 0], 150, p, 9)).toEqual({ state: [-2500, 150], charged: 1 });
    expect(tokenBucket.charge(undefined, 0, p, 0)).toEqual({ state: undefined, charged: 0 });
  });
});
