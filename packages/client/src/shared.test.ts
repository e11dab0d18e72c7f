// The fleet's count of a window of unstated length (`X-RateLimit-*`), kept in a real MemoryStore:
// every process answered in one window names it by the reset the server wrote, and the calls it
// counts there never pass the limit, whatever each process's own last answer says is left.
import { MemoryStore } from '@tollgate/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type LegacyAnswer, legacyFleet, tollgateFixedWindow } from '../../../test/support/legacy-fleet.js';
import { storeFleet as fleetOf } from '../../../test/support/store-fleet.js';
import { type FleetPart, SharedPacing } from './shared.js';

const BASE = 'http://legacy.test credential';
const L = 5;

/** A part of a legacy window named `id` (no pace learned yet), `known` left as this process's last answer says. */
const windowPart = (id: number, known: number, waitMs = 700): FleetPart => ({
  scope: 'legacy:',
  pace: undefined,
  window: { id, limit: L, waitMs, known },
});

async function ask(fleet: SharedPacing, part: FleetPart, unregistered = 0) {
  return fleet.decide(BASE, { parts: [part], unregistered });
}

describe('SharedPacing, a window of unstated length counted under its reset', () => {
  it('two processes answered in one window share its limit; the refusal waits for the end the asker knows, not the counter’s hour', async () => {
    const store = new MemoryStore();
    const a = new SharedPacing(store, Date.now);
    const b = new SharedPacing(store, Date.now);
    const answers = [];
    for (let i = 0; i < 4; i++)
      answers.push((await ask(i % 2 === 0 ? a : b, windowPart(2_000_000, L))).allowed);
    // Each process's last answer says all 5 are left; the fleet counts 4, then 1 more.
    expect(answers).toEqual([true, true, true, true]);
    expect((await ask(b, windowPart(2_000_000, L))).allowed).toBe(true);
    const refused = await ask(a, windowPart(2_000_000, L, 650));
    expect({ allowed: refused.allowed, retryAfterMs: refused.retryAfterMs }).toEqual({
      allowed: false,
      retryAfterMs: 650,
    });
    // The next window (another reset) is counted afresh.
    expect((await ask(a, windowPart(2_002_000, L))).allowed).toBe(true);
  });

  it('a process whose answer says fewer are left drains the count to that, for every process', async () => {
    const store = new MemoryStore();
    const a = new SharedPacing(store, Date.now);
    const b = new SharedPacing(store, Date.now);
    // a's answer says 2 are left (calls the fleet did not count: sent before the window was known).
    expect((await ask(a, windowPart(3_000_000, 2))).allowed).toBe(true);
    // b still reads 5 left from its own answer: the fleet's count has one more at most.
    expect((await ask(b, windowPart(3_000_000, L))).allowed).toBe(true);
    expect((await ask(b, windowPart(3_000_000, L))).allowed).toBe(false);
  });

  it('calls sent before the pace was known are not counted in a window (they may have gone in an earlier one)', async () => {
    const store = new MemoryStore();
    const a = new SharedPacing(store, Date.now);
    expect((await ask(a, windowPart(4_000_000, L), 3)).allowed).toBe(true);
    const allowed = [];
    for (let i = 0; i < 5; i++) allowed.push((await ask(a, windowPart(4_000_000, L))).allowed);
    expect(allowed).toEqual([true, true, true, true, false]);
  });

  it('a permit not used is given back to the window’s count', async () => {
    const store = new MemoryStore();
    const a = new SharedPacing(store, Date.now);
    for (let i = 0; i < 4; i++) expect((await ask(a, windowPart(5_000_000, L))).allowed).toBe(true);
    const last = await ask(a, windowPart(5_000_000, L));
    expect(last.allowed).toBe(true);
    await last.giveBack();
    expect((await ask(a, windowPart(5_000_000, L))).allowed).toBe(true);
    expect((await ask(a, windowPart(5_000_000, L))).allowed).toBe(false);
  });
});

describe('SharedPacing, calls a window’s count did not hold', () => {
  it('a call a process sent unasked, told in the window its answer named, is counted there: the fleet is refused once the window holds the limit with it', async () => {
    const store = new MemoryStore();
    const a = new SharedPacing(store, Date.now);
    const b = new SharedPacing(store, Date.now);
    for (let i = 0; i < 3; i++) expect((await ask(a, windowPart(6_000_000, L))).allowed).toBe(true);
    // b's call went before b could name the window (past the end of the one it knew); its answer
    // named this one. The question takes no permit.
    const part = windowPart(6_000_000, L);
    const told = await b.decide(BASE, {
      parts: [{ ...part, window: { ...part.window!, uncounted: 1 } }],
      unregistered: 0,
      countOnly: true,
    });
    expect(told.allowed).toBe(false);
    // 3 + 1 counted: one more, not two (each process's last answer says all 5 are left).
    expect((await ask(a, windowPart(6_000_000, L))).allowed).toBe(true);
    expect((await ask(a, windowPart(6_000_000, L))).allowed).toBe(false);
  });

  it('past the end of the window it knew, a process waits while the fleet counted a window it may be in full: a window after the count began, or to its reset', async () => {
    let t = 1_700_000_000_000;
    const store = new MemoryStore({ clock: () => t });
    const a = new SharedPacing(store, () => t);
    const b = new SharedPacing(store, () => t);
    // The window a filled states its end at X (whole seconds); b's last answer was the one before.
    const X = t + 2500;
    for (let i = 0; i < L; i++) expect((await ask(a, windowPart(X, L))).allowed).toBe(true);
    t += 300;
    const next = (ids: number[], length: number): FleetPart => ({
      scope: 'legacy:',
      pace: undefined,
      next: { ids, limit: L, length },
    });
    // Counted full from 300 ms ago: over 2 s after that (and 5 ms), sooner than X.
    const refused = await ask(b, next([X, X + 1000], 2000));
    expect({ allowed: refused.allowed, retryAfterMs: refused.retryAfterMs }).toEqual({
      allowed: false,
      retryAfterMs: 1705,
    });
    // A length read longer than that: to X (and 5 ms).
    expect((await ask(b, next([X], 3000))).retryAfterMs).toBe(2205);
    // Once the count's time is over, X no longer holds it back (no wait of 1 ms asked again and
    // again until X).
    t += 1705;
    expect((await ask(b, next([X, X + 1000], 2000))).allowed).toBe(true);
    // Neither full (nothing counted in X + 1000 yet): it goes.
    expect((await ask(b, next([X + 1000, X + 2000], 2000))).allowed).toBe(true);
  });
});

describe('pace() with shareLearned against tollgate’s legacy fixed window', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  // Four processes, two callers each, 20 per 2 s (a window opens at the first call after the last
  // ended), from 20 phases against the second, 28 s each. A process the others' calls held back for
  // a window knew no name for the fleet's new one, and its next call went by the spacing alone: in
  // 11 of the 20 runs one call, a window's 21st, was answered 429. It now waits while a window it
  // may be in is counted full (see `FleetPart.next`).
  it('no call answered 429 after the first window, and 20 calls in nearly every window', async () => {
    const runs: Array<{ limited: number; ok: number }> = [];
    for (let p = 0; p < 20; p++) {
      const from = 1_700_000_000_000 + p * 97;
      const run = await legacyFleet(tollgateFixedWindow(20, 2000), {
        limit: 20,
        n: 4,
        from,
        ms: 30_000,
        countFrom: 2000,
        tailMs: 0,
      });
      runs.push({ limited: run.limited, ok: run.ok });
      vi.useRealTimers();
    }
    expect(runs.filter((r) => r.limited > 0)).toEqual([]);
    // 14 windows of 20 at most open in 28 s: measured 277-280.
    expect(runs.filter((r) => r.ok < 270)).toEqual([]);
  });
});

describe('SharedPacing, what one process told of a legacy quota’s kind', () => {
  const part = (extra: Partial<FleetPart>): FleetPart => ({
    scope: 'legacy:',
    pace: { spacing: 100, burst: 2 },
    ...extra,
  });

  it('a process that told a bucket tells the others that still read a window, while it votes; then no longer', async () => {
    const { clock, store, processes } = fleetOf(2);
    const [a, b] = processes as [SharedPacing, SharedPacing];
    // Nobody told anything yet.
    expect((await ask(b, part({ adoptable: true }))).told).toEqual([['legacy:', undefined]]);
    expect((await ask(a, part({ told: 'bucket' }))).told).toBeUndefined();
    // b read the votes within the last second: what it read then, until it reads them again.
    expect((await ask(b, part({ adoptable: true }))).told).toEqual([['legacy:', undefined]]);
    clock.now += 1000;
    expect((await ask(b, part({ adoptable: true }))).told).toEqual([['legacy:', 'bucket']]);
    // A process that takes no kind is told nothing; another credential has its own votes.
    expect((await ask(b, part({}))).told).toBeUndefined();
    const other = await b.decide('http://legacy.test other', {
      parts: [part({ adoptable: true })],
      unregistered: 0,
    });
    expect(other.told).toEqual([['legacy:', undefined]]);
    // a votes every five seconds while it tells it: heard all along.
    for (let i = 0; i < 12; i++) {
      clock.now += 5000;
      await ask(a, part({ told: 'bucket' }));
      expect((await ask(b, part({ adoptable: true }))).told).toEqual([['legacy:', 'bucket']]);
    }
    // a no longer tells it (gone, or it no longer sees the quota come back): within 20 s, nobody
    // does.
    clock.now += 20_000;
    expect((await ask(b, part({ adoptable: true }))).told).toEqual([['legacy:', undefined]]);
    store.close();
  });

  it('a sliding window told by one process outweighs a bucket told by another (it is told from one)', async () => {
    const { store, processes } = fleetOf(3);
    const [a, b, c] = processes as [SharedPacing, SharedPacing, SharedPacing];
    await ask(a, part({ told: 'bucket' }));
    await ask(b, part({ told: 'sliding' }));
    expect((await ask(c, part({ adoptable: true }))).told).toEqual([['legacy:', 'sliding']]);
    // b itself is told nothing new: it told the sliding window.
    expect((await ask(b, part({ told: 'sliding', adoptable: true }))).told).toBeUndefined();
    store.close();
  });
});

describe('SharedPacing, processes whose spacings differ', () => {
  const spaced = (spacing: number, burst = 1): FleetPart => ({ scope: 'legacy:', pace: { spacing, burst } });
  /** A clock that stands still (the store's and the processes'). */
  const T = 1_700_000_000_000;

  it.each([
    [108, 159],
    [70, 200],
    [100, 100_000],
  ])(
    'spacings of %i and %i ms pace through one bucket: the second waits for the time the first took',
    async (first, second) => {
      const store = new MemoryStore({ clock: () => T });
      const a = new SharedPacing(store, () => T);
      const b = new SharedPacing(store, () => T);
      // Before: a bucket per power of two (128 and 256 ms for the first pair), each process at its
      // own spacing in its own: both went.
      expect((await ask(a, spaced(first))).allowed).toBe(true);
      const refused = await ask(b, spaced(second));
      expect(refused.allowed).toBe(false);
      // What the first left (a fresh bucket drained to a quarter of its spacing) short of the
      // second's spacing.
      expect(refused.retryAfterMs).toBe(second - Math.floor(first / 4));
    },
  );

  it.each([600, 800])(
    'a bucket paced %i ms apart goes two in a row from a fresh store, then waits three quarters of a spacing (a lag of up to a quarter is kept)',
    async (spacing) => {
      const store = new MemoryStore({ clock: () => T });
      const a = new SharedPacing(store, () => T);
      expect((await ask(a, spaced(spacing, 2))).allowed).toBe(true);
      expect((await ask(a, spaced(spacing, 2))).allowed).toBe(true);
      const third = await ask(a, spaced(spacing, 2));
      expect(third.allowed).toBe(false);
      expect(third.retryAfterMs).toBe(spacing - spacing / 4);
    },
  );

  it.each([14, 15.5, 30 * 24])(
    'a spacing of %s hours: a bucket tollgate takes, one call, then a wait',
    async (hours) => {
      const store = new MemoryStore({ clock: () => T });
      const a = new SharedPacing(store, () => T);
      const spacing = hours * 3_600_000;
      expect((await ask(a, spaced(spacing))).allowed).toBe(true);
      const next = await ask(a, spaced(spacing));
      expect(next.allowed).toBe(false);
      // A fresh bucket holds up to twice a spacing (2^26 ms, or the power of two above) and is
      // drained only past that: the second call waits what the first left short of a spacing
      // (a third at 14 h, a fifth at 15.5 h, two thirds at 720 h). Tokens of more than a ms past
      // 2^26 ms spans: 2^12 ms at 720 h.
      expect(next.retryAfterMs).toBeGreaterThan(spacing * 0.19);
      expect(next.retryAfterMs).toBeLessThanOrEqual(spacing);
    },
  );
});

describe('pace() with shareLearned: a legacy token bucket’s kind, told by one process, taken by all', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A token bucket of 20 per 2 s, full at first: legacy headers, the reset when it is full. */
  function bucket() {
    let tokens = 20;
    let at = Number.NaN;
    return (now: number): LegacyAnswer => {
      if (!Number.isNaN(at)) tokens = Math.min(20, tokens + (now - at) / 100);
      at = now;
      const allowed = tokens >= 1;
      if (allowed) tokens -= 1;
      return {
        status: allowed ? 200 : 429,
        remaining: Math.floor(tokens),
        reset: now + (20 - tokens) * 100,
        retryMs: (1 - tokens) * 100,
      };
    };
  }

  it('four processes, 5 s in: alone, three still read a window; sharing, every one reads the bucket', async () => {
    const from = 1_700_000_030_000;
    const run = { limit: 20, n: 4, from, ms: 5000, tailMs: 0 };
    const alone = await legacyFleet(bucket(), { ...run, share: false });
    vi.useRealTimers();
    // (The one process whose own answers told it first votes; the others take it. Without taking
    // it, measured: bucket, window, window, window at 5 s, all four only at 10 s.)
    const shared = await legacyFleet(bucket(), run);
    expect(alone.kinds.filter((kind) => kind !== 'bucket').length).toBeGreaterThan(0);
    expect(shared.kinds).toEqual(['bucket', 'bucket', 'bucket', 'bucket']);
    expect(shared.limited).toBe(0);
  });
});
