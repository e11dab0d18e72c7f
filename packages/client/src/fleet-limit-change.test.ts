// Four processes sharing a MemoryStore against a simulated fixed window of 2 s on the clock's grid
// whose limit changes mid-run (a plan changed), draft-7 and draft-8 headers, on a virtual clock.
// draft-7 names a policy by its quota and window, so a new limit is a new policy there; draft-8
// keeps the name. A process sees the change only in its own answers: before the fleet held every
// call to one count across the change, the processes that had seen it paced by a mirror that the
// others' calls did not reach, and 1-4 calls of ~60 were answered 429 after a drop (measured on
// real servers, test/client-fleet-servers.test.ts; here 1-8 at each phase); after a rise, draft-7
// processes kept pacing by the old, lower limit for good (the old policy was never forgotten), and
// draft-8 ones had 3 calls answered 429 at the change.
import { MemoryStore } from '@tollgate/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { pace } from './pace.js';

const W = 2000;

interface Run {
  limited: number;
  /** Calls allowed in each window of the server, from the first. */
  perWindow: number[];
}

interface Options {
  /** The limit in each window of the server, from the run's first (the last one holds on). */
  limits: number[];
  phase: number;
  /** 1: one client alone, no store. */
  processes?: number;
  windows?: number;
  /** The answer to the first call the server decides `at` ms into the run or later comes `ms` late. */
  slow?: { at: number; ms: number };
}

/**
 * The fleet against a fixed window on multiples of W whose limit changes `phase` ms into a window
 * (the run starts then).
 */
async function run(mode: 'draft-7' | 'draft-8', o: Options): Promise<Run> {
  const windows = o.windows ?? 8;
  const processes = o.processes ?? 4;
  const from = 1_700_000_000_000 + o.phase;
  vi.useFakeTimers({
    now: from,
    toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'],
  });
  const store = new MemoryStore({ clock: () => Date.now() });
  const counts = new Map<number, number>();
  let limited = 0;
  let slowed = false;
  const fetchLike = async () => {
    await new Promise((resolve) => setTimeout(resolve, 2));
    const now = Date.now();
    const L = o.limits[Math.min(o.limits.length - 1, Math.floor((now - from) / W))]!;
    const k = Math.floor(now / W);
    const count = counts.get(k) ?? 0;
    const allowed = count < L;
    if (allowed) counts.set(k, count + 1);
    else limited += 1;
    const r = Math.max(0, L - count - (allowed ? 1 : 0));
    const t = Math.ceil(((k + 1) * W - now) / 1000);
    const headers: Record<string, string> =
      mode === 'draft-7'
        ? { RateLimit: `limit=${L}, remaining=${r}, reset=${t}`, 'RateLimit-Policy': `${L};w=${W / 1000}` }
        : { RateLimit: `"plan";r=${r};t=${t}`, 'RateLimit-Policy': `"plan";q=${L};w=${W / 1000}` };
    headers.Date = new Date(now).toUTCString();
    if (!allowed) headers['Retry-After'] = String(t);
    let late = 2;
    if (o.slow !== undefined && !slowed && now - from >= o.slow.at) {
      slowed = true;
      late = o.slow.ms;
    }
    await new Promise((resolve) => setTimeout(resolve, late));
    return new Response('{}', { status: allowed ? 200 : 429, headers });
  };
  const apis = Array.from({ length: processes }, () =>
    pace(fetchLike, {
      retry: false,
      random: () => 0.5,
      ...(processes > 1 ? { store, shareLearned: true } : {}),
    }),
  );
  let stop = false;
  for (const api of apis) {
    for (let i = 0; i < 2; i++) {
      void (async () => {
        while (!stop) await (await api('http://plan.test/')).text();
      })();
    }
  }
  await vi.advanceTimersByTimeAsync(windows * W);
  stop = true;
  await vi.advanceTimersByTimeAsync(2 * W);
  store.close();
  const first = Math.floor(from / W);
  const perWindow = Array.from({ length: windows }, (_, i) => counts.get(first + i) ?? 0);
  return { limited, perWindow };
}

const PHASES = [100, 700, 1300];

describe('a fleet against a fixed window whose limit changes', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  for (const mode of ['draft-7', 'draft-8'] as const) {
    it(`${mode}: 20 per 2 s, then 10: no call answered 429, and each window after the change holds 10`, async () => {
      const results: Array<{ phase: number; limited: number; full: boolean }> = [];
      for (const phase of PHASES) {
        const { limited, perWindow } = await run(mode, { limits: [20, 20, 10], phase });
        vi.useRealTimers();
        // (The change falls `phase` ms into the third window; the last is cut by the stop.)
        results.push({ phase, limited, full: perWindow.slice(3, 7).every((n) => n === 10) });
      }
      expect(results).toEqual(PHASES.map((phase) => ({ phase, limited: 0, full: true })));
    });

    // The higher limit is used two windows after the change: until then every process counts
    // against the old one, which those that have not seen the change pace by. draft-7: the old
    // policy is forgotten then, and the window where that happens has 3 calls answered 429 at
    // each phase: the new policy's mirror, asked since the change alongside the old one, opened
    // its windows at the first call that saw it, mid-window, and the drains to what each process
    // knows is left lag the others' calls (draft-8 keeps one policy: none).
    const most = mode === 'draft-7' ? 3 : 0;
    it(`${mode}: 10 per 2 s, then 20: at most ${most} calls answered 429, and the higher limit is used two windows after the change`, async () => {
      const results: Array<{ phase: number; limited: boolean; full: boolean }> = [];
      for (const phase of PHASES) {
        const { limited, perWindow } = await run(mode, { limits: [10, 10, 20], phase });
        vi.useRealTimers();
        results.push({ phase, limited: limited <= most, full: perWindow.slice(5, 7).every((n) => n === 20) });
      }
      expect(results).toEqual(PHASES.map((phase) => ({ phase, limited: true, full: true })));
    });
  }

  it('one client, draft-7, 10 per 2 s, then 20: the higher limit is used two windows after the change', async () => {
    // (Before, the old policy bound it for good: 10 a window.)
    const results: Array<{ phase: number; limited: number; full: boolean }> = [];
    for (const phase of PHASES) {
      const { limited, perWindow } = await run('draft-7', { limits: [10, 10, 20], phase, processes: 1 });
      vi.useRealTimers();
      results.push({ phase, limited, full: perWindow.slice(5, 7).every((n) => n === 20) });
    }
    expect(results).toEqual(PHASES.map((phase) => ({ phase, limited: 0, full: true })));
  });

  // From a cold review: a draft-7 policy back within two windows kept neither forgotten (the old
  // one's clock ran from its first answer), and the lower bound both for good; a slow answer naming
  // a forgotten policy brought it back, stale, and a client went on at 2 calls a window for good.
  it('draft-7, 20 per 2 s, 10 for one window, 20 again: four processes use 20 a window two windows after', async () => {
    const results: Array<{ phase: number; full: boolean }> = [];
    for (const phase of PHASES) {
      const { perWindow } = await run('draft-7', { limits: [20, 20, 10, 20], phase, windows: 10 });
      vi.useRealTimers();
      results.push({ phase, full: perWindow.slice(6, 9).every((n) => n === 20) });
    }
    expect(results).toEqual(PHASES.map((phase) => ({ phase, full: true })));
  });

  for (const [before, after] of [
    [20, 10],
    [10, 20],
  ] as const) {
    it(`one client, draft-7, ${before} then ${after} per 2 s, an answer from before the change 4.5 s late: ${after} a window after`, async () => {
      const results: Array<{ phase: number; full: boolean }> = [];
      for (const phase of PHASES) {
        const { perWindow } = await run('draft-7', {
          limits: [before, before, after],
          phase,
          processes: 1,
          windows: 10,
          slow: { at: 3700, ms: 4500 },
        });
        vi.useRealTimers();
        results.push({ phase, full: perWindow.slice(6, 9).every((n) => n === after) });
      }
      expect(results).toEqual(PHASES.map((phase) => ({ phase, full: true })));
    });
  }
});
