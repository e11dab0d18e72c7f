// A fleet sharing a sliding window of stated length (`RateLimit-Policy: 20;w=2`) through a real
// MemoryStore on a virtual clock: its pace where the server's windows may not lie on the store's,
// the calls sent before the pace was known, a window's first milliseconds, and a process that no
// longer holds its calls for its own count while the store holds the fleet's.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { storeFleet as fleetOf } from '../../../test/support/store-fleet.js';
import { Quota } from './quota.js';
import { ServerClock } from './server-clock.js';
import type { FleetPart } from './shared.js';

const BASE = 'http://sliding.test credential';
const L = 20;
const W = 2000;
/** A multiple of the window: the store's windows start here. */
const T0 = 1_700_000_000_000;

/** A part of the quota; `skew`: the server's clock minus ours as the process knows it. */
const part = (skew: [number, number]): FleetPart => ({
  scope: '20;w=2',
  pace: { mirror: 'sliding-window', window: W, limit: L },
  skew,
});
/** The server's clock surely a window's multiple from the store's: the sliding window mirrored alone. */
const ALIGNED: [number, number] = [0, 0];
/** Not known well enough to tell: mirrored, and paced at the rate a sliding window sustains. */
const UNSURE: [number, number] = [-300, 300];
/** Surely not on the store's windows: paced only. */
const ASIDE: [number, number] = [900, 1000];

afterEach(() => {
  vi.useRealTimers();
});

describe('a fleet’s sliding window where the server’s windows may not lie on the store’s', () => {
  it('calls a few ms late each are made up: 19 a window, none sooner than the lateness made up', async () => {
    for (const skew of [UNSURE, ASIDE]) {
      const { clock, processes } = fleetOf(2);
      const granted: number[] = [];
      let turn = 0;
      while (clock.now < T0 + 10 * W) {
        const answer = await processes[turn++ % 2]!.decide(BASE, { parts: [part(skew)], unregistered: 0 });
        if (answer.allowed) {
          granted.push(clock.now);
          // The next caller is at it at once.
          continue;
        }
        // Each asks again 2 or 9 ms after the refusal's wait (a timer, store commands).
        clock.now += answer.retryAfterMs + (turn % 3 === 0 ? 9 : 2);
      }
      const perWindow = [2, 3, 4, 5, 6, 7, 8].map(
        (n) => granted.filter((t) => t >= T0 + n * W && t < T0 + (n + 1) * W).length,
      );
      const closest = Math.min(...granted.slice(2).map((t, i) => t - granted[i + 1]!));
      // 2000 / 19 = 105.3 ms apart; after a call 9 ms late the next goes 7 ms sooner (the rest of
      // the lateness is the next one's own 2 ms).
      expect({ skew, perWindow, closest }).toEqual({
        skew,
        perWindow: [19, 19, 19, 19, 19, 19, 19],
        closest: 98,
      });
    }
  });
});

describe('calls sent before the pace was known, where the server’s windows lie elsewhere', () => {
  it('are all counted in the pace: what does not fit is owed, and paid as it comes back, before the others’ calls', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const { clock, processes } = fleetOf(4);
    /** The clock and the timers (the debts' payers) on by `ms`, one ms at a time. */
    const advance = async (ms: number) => {
      for (let i = 0; i < ms; i++) {
        clock.now += 1;
        await vi.advanceTimersByTimeAsync(1);
      }
    };
    // Each process's first call went alone at T0, before it knew the pace.
    const first = [];
    for (const p of processes) {
      const answer = await p.decide(BASE, { parts: [part(ASIDE)], unregistered: 1, unregisteredAt: T0 });
      first.push(answer.allowed);
    }
    // The pace holds a call and a tenth: the first process's call is counted, the second owes all
    // of its own but the tenth left, the others theirs whole; none has a permit yet.
    expect(first).toEqual([false, false, false, false]);
    const granted: number[] = [];
    let turn = 0;
    while (granted.length < 4) {
      const answer = await processes[turn % 4]!.decide(BASE, { parts: [part(ASIDE)], unregistered: 0 });
      if (!answer.allowed) {
        await advance(answer.retryAfterMs);
        continue;
      }
      granted.push(clock.now - T0);
      turn++;
    }
    // 3.9 calls owed, at 105.3 ms a call: paid by 411 ms; the next call goes then, and one a
    // spacing after (the owing processes ask again when their payer is through).
    expect(granted).toEqual([411, 516, 622, 727]);
  });
});

describe('a process that sent many calls before it knew the pace', () => {
  it('owes a window’s calls at most: the server’s sliding window holds no more', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const { clock, processes } = fleetOf(1);
    const [a] = processes;
    expect(
      (await a!.decide(BASE, { parts: [part(ASIDE)], unregistered: 100, unregisteredAt: T0 })).allowed,
    ).toBe(false);
    let went: number | undefined;
    while (went === undefined) {
      const answer = await a!.decide(BASE, { parts: [part(ASIDE)], unregistered: 0 });
      if (answer.allowed) went = clock.now - T0;
      else
        for (let ms = 0; ms < answer.retryAfterMs; ms++) {
          clock.now += 1;
          await vi.advanceTimersByTimeAsync(1);
        }
    }
    // 19 calls owed (a window's), the call and a tenth the pace held paid at once, the rest at
    // 105.3 ms a call, then this one: (19 + 1 - 1.1) x 105.3 ms; not the 99 calls of ten seconds.
    expect(went).toBe(1990);
  });
});

describe('calls sent before the pace was known, counted in the mirror', () => {
  it('sent in the store’s last window: given back as the server’s window slides past them', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const { clock, processes } = fleetOf(1);
    const [a] = processes;
    // Four calls went 20 ms before the window turned; the first question comes 163 ms into it.
    clock.now = T0 + 163;
    const first = await a!.decide(BASE, {
      parts: [part(ALIGNED)],
      unregistered: 4,
      unregisteredAt: T0 - 20,
    });
    expect(first.allowed).toBe(true);
    // 15 more fit now: the four weigh ceil(4 x 1837 / 2000) = 4 calls, and this one.
    const now: boolean[] = [];
    for (let i = 0; i < 16; i++)
      now.push((await a!.decide(BASE, { parts: [part(ALIGNED)], unregistered: 0 })).allowed);
    expect(now.filter(Boolean).length).toBe(15);
    // At 1000 ms they weigh two calls: two of them were given back by 1005 ms (at 505 and 1005 ms:
    // the server's windows may lie up to 5 ms behind the store's).
    clock.now = T0 + 1005;
    await vi.advanceTimersByTimeAsync(842);
    const later: boolean[] = [];
    for (let i = 0; i < 3; i++)
      later.push((await a!.decide(BASE, { parts: [part(ALIGNED)], unregistered: 0 })).allowed);
    expect(later).toEqual([true, true, false]);
    // In the next window none of them weighs: its first 20 ms aside, the room is that of the
    // window's own 18 calls (18 x 1980 / 2000 = 17.8 at 20 ms: 2 calls).
    clock.now = T0 + W + 20;
    await vi.advanceTimersByTimeAsync(1015);
    const next: boolean[] = [];
    for (let i = 0; i < 3; i++)
      next.push((await a!.decide(BASE, { parts: [part(ALIGNED)], unregistered: 0 })).allowed);
    expect(next).toEqual([true, true, false]);
  });

  it('many of them: given back by 16 timers at most, all of them by the window’s end', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const { clock, processes } = fleetOf(1);
    const [a] = processes;
    const wide: FleetPart = {
      scope: '100;w=2',
      pace: { mirror: 'sliding-window', window: W, limit: 100 },
      skew: ALIGNED,
    };
    clock.now = T0 + 163;
    const first = await a!.decide(BASE, { parts: [wide], unregistered: 64, unregisteredAt: T0 - 20 });
    expect(first.allowed).toBe(true);
    // They weigh ceil(64 x 1837 / 2000) = 59 calls: five given back at once, 59 by 15 timers of 4.
    expect(vi.getTimerCount()).toBe(15);
    clock.now = T0 + W + 20;
    await vi.advanceTimersByTimeAsync(W);
    // Next window, 20 ms in: only this question's own call weighs (1 x 1980 / 2000): 99 fit.
    let fit = 0;
    while ((await a!.decide(BASE, { parts: [wide], unregistered: 0 })).allowed) fit++;
    expect(fit).toBe(99);
  });

  it('sent in the store’s current window: counted whole, nothing given back', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const { clock, processes } = fleetOf(1);
    const [a] = processes;
    clock.now = T0 + 163;
    const first = await a!.decide(BASE, { parts: [part(ALIGNED)], unregistered: 4, unregisteredAt: T0 + 10 });
    expect(first.allowed).toBe(true);
    clock.now = T0 + 1000;
    await vi.advanceTimersByTimeAsync(837);
    const later: boolean[] = [];
    for (let i = 0; i < 16; i++)
      later.push((await a!.decide(BASE, { parts: [part(ALIGNED)], unregistered: 0 })).allowed);
    expect(later.filter(Boolean).length).toBe(15);
  });
});

describe('a window’s first milliseconds', () => {
  it('no call is counted in the first 20 ms of the store’s window: the refusal waits for their end', async () => {
    const { clock, processes } = fleetOf(1);
    const [a] = processes;
    clock.now = T0 + W + 5;
    const early = await a!.decide(BASE, { parts: [part(ALIGNED)], unregistered: 0 });
    expect({ allowed: early.allowed, retryAfterMs: early.retryAfterMs }).toEqual({
      allowed: false,
      retryAfterMs: 15,
    });
    clock.now = T0 + W + 20;
    const then = await a!.decide(BASE, { parts: [part(ALIGNED)], unregistered: 0 });
    expect(then.allowed).toBe(true);
    // The refused one was given back: 19 more fit (20 in all, in an empty window).
    let more = 0;
    while ((await a!.decide(BASE, { parts: [part(ALIGNED)], unregistered: 0 })).allowed) more++;
    expect(more).toBe(19);
  });
});

describe('a tiny window’s first millisecond', () => {
  it('5 per 20 ms: a twentieth of the window, not 20 ms (which would hold every call)', async () => {
    const { clock, processes } = fleetOf(1);
    const [a] = processes;
    const tiny: FleetPart = {
      scope: '5;w=0.02',
      pace: { mirror: 'sliding-window', window: 20, limit: 5 },
      skew: ALIGNED,
    };
    clock.now = T0 + 40;
    const early = await a!.decide(BASE, { parts: [tiny], unregistered: 0 });
    expect({ allowed: early.allowed, retryAfterMs: early.retryAfterMs }).toEqual({
      allowed: false,
      retryAfterMs: 1,
    });
    clock.now = T0 + 41;
    expect((await a!.decide(BASE, { parts: [tiny], unregistered: 0 })).allowed).toBe(true);
  });
});

describe('a process of a fleet that holds a stated sliding window', () => {
  /** A Quota told `remaining: 0` by a draft sliding window, just after sending at `T0 + 500`. */
  function spentOut() {
    const quota = new Quota('20;w=2', 'requests');
    const clock = new ServerClock();
    const sentAt = T0 + 500;
    clock.observe(T0, sentAt + 3);
    quota.spend(1, sentAt);
    quota.update(
      {
        key: '20;w=2',
        unit: 'requests',
        limit: L,
        remaining: 0,
        reset: { delta: 3000, grain: 1000 },
        windowMs: W,
      },
      0,
      sentAt,
      sentAt + 3,
      clock,
      0,
      true,
    );
    return { quota, sentAt };
  }

  it('is held by its own count alone; with the fleet’s store holding it, only by the quota’s rate', () => {
    const alone = spentOut();
    expect(alone.quota.kind).toBe('sliding');
    const held = alone.quota.readyAt(alone.sentAt + 3, 1, alone.sentAt);
    // Its own refill: one call back when its own call has faded out of the estimate, long after.
    expect(held).toBeGreaterThan(alone.sentAt + 1000);
    const fleet = spentOut();
    fleet.quota.fleetHeld = true;
    // 2000 / 20 ms after its last call.
    expect(fleet.quota.readyAt(fleet.sentAt + 3, 1, fleet.sentAt)).toBe(fleet.sentAt + 100);
  });
});
