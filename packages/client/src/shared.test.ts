// The fleet's count of a window of unstated length (`X-RateLimit-*`), kept in a real MemoryStore:
// every process answered in one window names it by the reset the server wrote, and the calls it
// counts there never pass the limit, whatever each process's own last answer says is left.
import { MemoryStore } from '@tollgate/core';
import { describe, expect, it } from 'vitest';
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

describe('SharedPacing, what one process told of a legacy quota’s kind', () => {
  const part = (extra: Partial<FleetPart>): FleetPart => ({
    scope: 'legacy:',
    pace: { spacing: 100, burst: 2 },
    ...extra,
  });

  it('a process that told a bucket from its answers tells the others that still read a window', async () => {
    const store = new MemoryStore();
    const a = new SharedPacing(store, Date.now);
    const b = new SharedPacing(store, Date.now);
    // Nobody told anything yet.
    expect((await ask(b, part({ adoptable: true }))).told).toBeUndefined();
    const told = await ask(a, part({ told: 'bucket' }));
    expect(told.told).toBeUndefined();
    // b read the votes a quarter second ago: it reads them again then.
    await new Promise((resolve) => setTimeout(resolve, 260));
    expect((await ask(b, part({ adoptable: true }))).told).toEqual([['legacy:', 'bucket']]);
    // A process that does not take a kind is told nothing; another credential has its own votes.
    expect((await ask(b, part({}))).told).toBeUndefined();
    expect(
      (await b.decide('http://legacy.test other', { parts: [part({ adoptable: true })], unregistered: 0 }))
        .told,
    ).toBeUndefined();
  });

  it('a sliding window told by one process outweighs a bucket told by another (it is told from one)', async () => {
    const store = new MemoryStore();
    const [a, b, c] = [0, 1, 2].map(() => new SharedPacing(store, Date.now)) as [
      SharedPacing,
      SharedPacing,
      SharedPacing,
    ];
    await ask(a, part({ told: 'bucket' }));
    await ask(b, part({ told: 'sliding' }));
    expect((await ask(c, part({ adoptable: true }))).told).toEqual([['legacy:', 'sliding']]);
    // b itself is told nothing new: it told the sliding window.
    expect((await ask(b, part({ told: 'sliding', adoptable: true }))).told).toBeUndefined();
  });
});

describe('SharedPacing, processes whose spacings differ', () => {
  const spaced = (spacing: number): FleetPart => ({ scope: 'legacy:', pace: { spacing, burst: 1 } });

  it('spacings on either side of a power of two still pace through one bucket', async () => {
    const store = new MemoryStore();
    const a = new SharedPacing(store, Date.now);
    const b = new SharedPacing(store, Date.now);
    // 108 ms rounds up to a 128 ms bucket, 159 ms to a 256 ms one: each also spends from the
    // other's, so b waits for the time a's call took (before: each had its own, and both went).
    expect((await ask(a, spaced(108))).allowed).toBe(true);
    const refused = await ask(b, spaced(159));
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(159);
  });

  it('spacings a factor of two apart or more do not share (each far from the other’s power of two)', async () => {
    const store = new MemoryStore();
    const a = new SharedPacing(store, Date.now);
    const b = new SharedPacing(store, Date.now);
    expect((await ask(a, spaced(70))).allowed).toBe(true);
    expect((await ask(b, spaced(200))).allowed).toBe(true);
  });
});
