// Four processes sharing a MemoryStore against a simulated `legacy` (`X-RateLimit-*`) fixed
// window of 10 per second that opens at its first call (tollgate's), its reset written in whole
// seconds: a window lasts one grain of its reset. On a virtual clock, the fleet starting at eight
// phases of a second. Before the fleet read the windows past the one a process knew (and counted
// its call in the one it would most likely reach), 4-19 calls of ~180 were answered 429 at each
// phase: a process that had not read the length yet sent past the end of its window unasked, into
// a window the others had filled.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { legacyFleet, tollgateFixedWindow } from '../../../test/support/legacy-fleet.js';

const PHASES = [0, 100, 250, 400, 550, 700, 850, 930];

describe('a fleet against a legacy fixed window of one second', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('10 per second, four processes, 18 s after the first 2: no 429, and at least 180 calls allowed at every phase', async () => {
    const results: Array<{ phase: number; limited: number; most: boolean }> = [];
    for (const phase of PHASES) {
      const { limited, ok } = await legacyFleet(tollgateFixedWindow(10, 1000), {
        limit: 10,
        from: 1_700_000_020_000 + phase,
        n: 4,
        ms: 20_000,
        countFrom: 2000,
      });
      vi.useRealTimers();
      // (At most 10 a window, each at least a second long: 190 at most in 18 s and the tail.)
      results.push({ phase, limited, most: ok >= 180 });
    }
    expect(results).toEqual(PHASES.map((phase) => ({ phase, limited: 0, most: true })));
  });
});
