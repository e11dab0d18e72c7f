import { describe, expect, test } from 'vitest';
import { resolvePolicy } from '../../policy.js';
import type { Policy } from '../../types.js';
import { INF, no, ok, scenario } from '../scenario.test-helper.js';
import { slidingWindow } from './index.js';

describe('sliding-window (DESIGN: aligned windows, estimate = prev * (W - elapsed) / W + curr)', () => {
  const policy: Policy = { algorithm: 'sliding-window', limit: 10, window: 1000 };

  test('is the default algorithm', async () => {
    const s = scenario({ limit: 10, window: 1000 });
    s.at(5200);
    expect(await s.hit(4)).toEqual(ok(6, 1800));
    expect(s.limiter.policies!.policies[0]!.algorithm).toBe('sliding-window');
  });

  test('a scripted run with exact estimates, remaining = floor(L - estimate) and tight retries', async () => {
    const s = scenario(policy);
    // Window [5000, 6000): the first request does not move the alignment.
    s.at(5200);
    expect(await s.hit(4)).toEqual(ok(6, 1800));
    s.at(5900);
    expect(await s.hit(6)).toEqual(ok(0, 1100));
    // estimate 10; in the next window 10 * (1000 - e) / 1000 + 1 <= 10 first holds at e = 100.
    s.at(5950);
    expect(await s.hit()).toEqual(no(0, 1050, 150));
    s.at(6000);
    expect(await s.hit()).toEqual(no(0, 1000, 100));
    // estimate 10 * 901 / 1000 = 9.01
    s.at(6099);
    expect(await s.hit()).toEqual(no(0, 901, 1));
    s.at(6100);
    expect(await s.hit()).toEqual(ok(0, 1900));
    // estimate 10 * 750 / 1000 + 1 = 8.5: remaining floor(1.5) = 1
    s.at(6250);
    expect(await s.peek()).toEqual(ok(1, 1750));
    expect(await s.hit()).toEqual(ok(0, 1750));
    // estimate 9.5; 10 * (1000 - e) / 1000 + 2 + 1 <= 10 first holds at e = 300.
    expect(await s.hit()).toEqual(no(0, 1750, 50));
    s.at(6299);
    expect(await s.hit()).toEqual(no(0, 1701, 1));
    s.at(6300);
    expect(await s.hit()).toEqual(ok(0, 1700));
    // Window [7000, 8000): prev = 3 (three admitted in [6000, 7000)), curr = 0: estimate 3.
    s.at(7000);
    expect(await s.peek()).toEqual(ok(7, 1000));
    expect(await s.hit(7)).toEqual(ok(0, 2000));
    // estimate 3 * 500 / 1000 + 7 = 8.5
    s.at(7500);
    expect(await s.hit()).toEqual(ok(0, 1500));
    // estimate 9.5: 3 * (1000 - e) / 1000 + 8 + 1 <= 10 first holds at e = 1000 - floor(1000 / 3) = 667.
    expect(await s.hit()).toEqual(no(0, 1500, 167));
    s.at(7666);
    expect(await s.hit()).toEqual(no(0, 1334, 1));
    s.at(7667);
    expect(await s.hit()).toEqual(ok(0, 1333));
    // estimate 9.999: nothing left in this window helps; at 8000 the estimate is 9 (prev = 9).
    expect(await s.hit()).toEqual(no(0, 1333, 333));
    s.at(7999);
    expect(await s.hit()).toEqual(no(0, 1001, 1));
    s.at(8000);
    expect(await s.hit(2)).toEqual(no(1, 1000, 112));
    expect(await s.hit()).toEqual(ok(0, 2000));
    // Two windows on, everything has decayed: nothing left but a clean slate.
    s.at(10_000);
    expect(await s.peek()).toEqual(ok(10, 0));
  });

  test('retry lands inside the next window when this window alone exceeds L - c', async () => {
    const s = scenario(policy);
    s.at(20_000);
    expect(await s.hit(10)).toEqual(ok(0, 2000));
    // Next window: 10 * (1000 - e) / 1000 + 5 <= 10 first holds at e = 500.
    expect(await s.hit(5)).toEqual(no(0, 2000, 1500));
    s.at(21_499);
    expect(await s.hit(5)).toEqual(no(4, 501, 1));
    s.at(21_500);
    expect(await s.hit(5)).toEqual(ok(0, 1500));
  });

  test('costs 0, 1, >1 and larger than the limit', async () => {
    const s = scenario(policy);
    s.at(3000);
    expect(await s.hit(0)).toEqual(ok(10, 0));
    expect(await s.hit(9)).toEqual(ok(1, 2000));
    // Next window: 9 * (1000 - e) / 1000 + 2 <= 10 first holds at e = 112.
    expect(await s.hit(2)).toEqual(no(1, 2000, 1112));
    expect(await s.hit(11)).toEqual(no(1, 2000, INF));
    expect(await s.hit(1)).toEqual(ok(0, 2000));
    expect(await s.hit(0)).toEqual(ok(0, 2000));
  });

  test('a cost larger than the limit on a fresh key is denied and stores nothing', async () => {
    const s = scenario(policy);
    s.at(123);
    expect(await s.hit(11)).toEqual(no(10, 0, INF));
    expect(s.store.size).toBe(0);
  });

  test('non-divisible weights: limit 3 per 7 ms', async () => {
    const s = scenario({ algorithm: 'sliding-window', limit: 3, window: 7 });
    s.at(0);
    expect(await s.hit(3)).toEqual(ok(0, 14));
    // Next window: 3 * (7 - e) / 7 + 1 <= 3 <=> e >= 7 - floor(14 / 3) = 3.
    expect(await s.hit()).toEqual(no(0, 14, 10));
    s.at(9);
    // estimate 3 * 5 / 7 = 2.14...: remaining floor(0.857) = 0, denied.
    expect(await s.hit()).toEqual(no(0, 5, 1));
    s.at(10);
    // estimate 3 * 4 / 7 = 1.714...; after this request 2.714...: remaining floor(0.286) = 0.
    expect(await s.hit()).toEqual(ok(0, 11));
  });

  test('the pure step: a denial returns the state it was given (same object)', () => {
    const p = resolvePolicy(policy);
    const state = [1000, 10, 0] as const;
    const denied = slidingWindow.step(state, 1500, p, 1);
    expect(denied.state).toBe(state);
    // At 2000 + e: 10 * (1000 - e) / 1000 + 1 <= 10 first holds at e = 100.
    expect(denied.outcome).toEqual(no(0, 1500, 600));
    expect(slidingWindow.step(state, 2000, p, 0).state).toEqual([2000, 0, 10]);
    expect(slidingWindow.step(state, 3000, p, 1).state).toEqual([3000, 1, 0]);
    expect(slidingWindow.expiresAt(state, p)).toBe(3000);
  });

  test('a refund goes to the window that counted the units, never a later one (issue 9 item 6)', () => {
    const p = resolvePolicy({ algorithm: 'sliding-window', limit: 10, window: 1000 });
    const state = [2000, 4, 3]; // 4 in [2000, 3000), 3 in the window before
    expect(slidingWindow.refund(state, 2500, p, 1, 2100)).toEqual([2000, 3, 3]);
    expect(slidingWindow.refund(state, 2500, p, 1, 1500)).toEqual([2000, 4, 2]);
    // Counted two windows ago: neither window weighing in now owes it anything.
    expect(slidingWindow.refund(state, 2500, p, 1, 999)).toEqual([2000, 4, 3]);
    expect(slidingWindow.refund(state, 2500, p, 9, 2000)).toEqual([2000, 0, 3]);
    // Unknown: the current window first, then the previous one.
    expect(slidingWindow.refund(state, 2500, p, 6)).toEqual([2000, 0, 1]);
    // A window later, the counting window is the previous one.
    expect(slidingWindow.refund(state, 3200, p, 1, 2100)).toEqual([3000, 0, 3]);
    expect(slidingWindow.refund(state, 3200, p, 1, 3100)).toEqual([3000, 0, 4]);
  });

  test('reserve, then settle: debt is the estimate above L, decaying as the window slides', async () => {
    const s = scenario(policy);
    s.at(0);
    const r = await s.reserve(4);
    expect(r.decision).toEqual(ok(6, 2000));
    expect(await r.settle(9)).toEqual({ ...ok(1, 2000), uncharged: 0 });
    s.at(100);
    const last = await s.reserve(1);
    expect(last.decision).toEqual(ok(0, 1900));
    // 13 more would make this window's count 23: maxDebt (10) stops it at 20, 3 uncharged. Next
    // window, 20 x (1000 - e) / 1000 + 1 <= 10 from e = 550 on: at 1550.
    expect(await last.settle(14)).toEqual({ ...no(0, 1900, 1450), uncharged: 3 });
    s.at(1549);
    expect(await s.hit()).toEqual(no(0, 451, 1));
    s.at(1550);
    expect(await s.hit()).toEqual(ok(0, 1450));
    s.at(4000);
    const small = await s.reserve(5);
    expect(small.decision).toEqual(ok(5, 2000));
    expect(await small.settle(2)).toEqual({ ...ok(8, 2000), uncharged: 0 });
    const gone = await s.reserve(5);
    await gone.release();
    expect(await s.peek()).toEqual(ok(8, 2000));
  });

  test('charge: counts in the current window up to an estimate of L + maxDebt', () => {
    const p = resolvePolicy({ ...policy, maxDebt: 2 });
    expect(slidingWindow.charge(undefined, 1500, p, 3)).toEqual({ state: [1000, 3, 0], charged: 3 });
    // prev 10 weighs 5 at 1500: 5 + 3 + 4 = 12 = L + maxDebt.
    expect(slidingWindow.charge([1000, 3, 10], 1500, p, 9)).toEqual({ state: [1000, 7, 10], charged: 4 });
    expect(slidingWindow.charge([0, 10], 1500, p, 9)).toEqual({ state: [1000, 7, 10], charged: 7 });
    expect(slidingWindow.charge([1000, 3, 10], 9000, p, 0)).toEqual({ state: undefined, charged: 0 });
  });
});
