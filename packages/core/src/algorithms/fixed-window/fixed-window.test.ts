import { describe, expect, test } from 'vitest';
import { resolvePolicy } from '../../policy.js';
import type { Policy } from '../../types.js';
import { INF, no, ok, scenario } from '../scenario.test-helper.js';
import { fixedWindow } from './index.js';

describe('fixed-window (DESIGN: opens at the first request, lasts W, allowed iff count + c <= L)', () => {
  const policy: Policy = { algorithm: 'fixed-window', limit: 3, window: 1000 };

  test('the window opens at the first request, not at a multiple of W; reset = window end - now', async () => {
    const s = scenario(policy);
    s.at(1234);
    expect(await s.hit()).toEqual(ok(2, 1000));
    s.at(1500);
    expect(await s.hit()).toEqual(ok(1, 734));
    s.at(1600);
    expect(await s.hit()).toEqual(ok(0, 634));
    s.at(1700);
    expect(await s.hit()).toEqual(no(0, 534, 534));
    s.at(2233);
    expect(await s.hit()).toEqual(no(0, 1, 1));
    // 1234 + 1000: the old window is over and the next request opens a new one.
    s.at(2234);
    expect(await s.hit()).toEqual(ok(2, 1000));
    s.at(2300);
    expect(await s.peek()).toEqual(ok(2, 934));
  });

  test('after a long idle time the next window opens at that request', async () => {
    const s = scenario(policy);
    s.at(10);
    await s.hit();
    s.at(987_654);
    expect(await s.hit()).toEqual(ok(2, 1000));
    s.at(988_653);
    expect(await s.hit()).toEqual(ok(1, 1));
    s.at(988_654);
    expect(await s.hit()).toEqual(ok(2, 1000));
  });

  test('costs 0, 1, >1, and larger than the limit', async () => {
    const s = scenario(policy);
    s.at(10_000);
    expect(await s.hit(2)).toEqual(ok(1, 1000));
    expect(await s.hit(0)).toEqual(ok(1, 1000));
    // Does not fit: denied, nothing consumed, retry when the window ends.
    expect(await s.hit(2)).toEqual(no(1, 1000, 1000));
    expect(await s.hit(3)).toEqual(no(1, 1000, 1000));
    // Can never fit: no Retry-After.
    expect(await s.hit(4)).toEqual(no(1, 1000, INF));
    expect(await s.hit(1)).toEqual(ok(0, 1000));
    // Cost 0 is allowed even when nothing is left, and changes nothing.
    s.at(10_400);
    expect(await s.hit(0)).toEqual(ok(0, 600));
    expect(await s.hit(1)).toEqual(no(0, 600, 600));
    s.at(11_000);
    expect(await s.hit(3)).toEqual(ok(0, 1000));
  });

  test('a cost larger than the limit on a fresh key is denied and stores nothing', async () => {
    const s = scenario(policy);
    s.at(5);
    expect(await s.hit(4)).toEqual(no(3, 0, INF));
    expect(s.store.size).toBe(0);
    // No window was opened by the denial: the next request opens it.
    s.at(505);
    expect(await s.hit()).toEqual(ok(2, 1000));
  });

  test('keys are independent', async () => {
    const s = scenario(policy);
    await s.hit(3, 'a');
    expect(await s.hit(1, 'a')).toEqual(no(0, 1000, 1000));
    expect(await s.hit(1, 'b')).toEqual(ok(2, 1000));
  });

  test('the pure step: a denial returns the state it was given (same object)', () => {
    const p = resolvePolicy(policy);
    const state = [100, 3] as const;
    const denied = fixedWindow.step(state, 200, p, 1);
    expect(denied.state).toBe(state);
    expect(denied.outcome).toEqual(no(0, 900, 900));
    expect(fixedWindow.step(undefined, 200, p, 4).state).toBeUndefined();
    expect(fixedWindow.step(state, 1100, p, 1)).toEqual({ state: [1100, 1], outcome: ok(2, 1000) });
    expect(fixedWindow.expiresAt(state, p)).toBe(1100);
  });

  test('a refund goes to the window that counted the units, never a later one (issue 9 item 6)', () => {
    const p = resolvePolicy({ algorithm: 'fixed-window', limit: 5, window: 1000 });
    const state = [2000, 3]; // the window [2000, 3000)
    expect(fixedWindow.refund(state, 2500, p, 1, 2100)).toEqual([2000, 2]);
    // Counted in the window before: this one owes it nothing.
    expect(fixedWindow.refund(state, 2500, p, 1, 1999)).toEqual([2000, 3]);
    // Unknown: the window as it is now.
    expect(fixedWindow.refund(state, 2500, p, 1)).toEqual([2000, 2]);
    expect(fixedWindow.refund(state, 2500, p, 9, 2000)).toEqual([2000, 0]);
    expect(fixedWindow.refund(state, 3000, p, 1, 2100)).toBeUndefined();
  });

  const ten: Policy = { algorithm: 'fixed-window', limit: 10, window: 1000 };

  test('reserve, then settle: debt is the count above L, owed until the window ends (maxDebt = L)', async () => {
    const s = scenario(ten);
    s.at(0);
    const r = await s.reserve(4);
    expect(r.decision).toEqual(ok(6, 1000));
    expect(await r.settle(9)).toEqual({ ...ok(1, 1000), uncharged: 0 });
    expect(await r.settle(100)).toEqual({ ...ok(1, 1000), uncharged: 0 });
    s.at(100);
    const last = await s.reserve(1);
    expect(last.decision).toEqual(ok(0, 900));
    // 13 more would make the count 23: maxDebt (10) stops it at 20, 3 uncharged.
    expect(await last.settle(14)).toEqual({ ...no(0, 900, 900), uncharged: 3 });
    s.at(999);
    expect(await s.hit()).toEqual(no(0, 1, 1));
    s.at(1000);
    expect(await s.hit()).toEqual(ok(9, 1000));
    const small = await s.reserve(5);
    expect(small.decision).toEqual(ok(4, 1000));
    expect(await small.settle(2)).toEqual({ ...ok(7, 1000), uncharged: 0 });
    const gone = await s.reserve(5);
    await gone.release();
    expect(await s.peek()).toEqual(ok(7, 1000));
  });

  test('charge: opens a window when none is live, counts up to L + maxDebt', () => {
    const p = resolvePolicy({ ...ten, maxDebt: 2 });
    expect(fixedWindow.charge(undefined, 50, p, 3)).toEqual({ state: [50, 3], charged: 3 });
    expect(fixedWindow.charge([0, 9], 50, p, 5)).toEqual({ state: [0, 12], charged: 3 });
    expect(fixedWindow.charge([0, 12], 50, p, 5)).toEqual({ state: [0, 12], charged: 0 });
    expect(fixedWindow.charge([0, 12], 1000, p, 5)).toEqual({ state: [1000, 5], charged: 5 });
    expect(fixedWindow.charge([0, 12], 1000, p, 0)).toEqual({ state: undefined, charged: 0 });
  });
});
