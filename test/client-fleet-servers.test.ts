import { pace } from '@tollgate/client';
import { MemoryStore } from '@tollgate/core';
import { describe, expect, it } from 'vitest';
import { denied, gridFixedWindow, gridSlidingWindow, scriptedServer } from './support/client-servers.js';

/** `n` paced fetches on one store, `callers` loops each, calling `url` until `ms` from now. */
async function fleet(url: string, n: number, ms: number, store: object = new MemoryStore(), callers = 2) {
  const clients = Array.from({ length: n }, () => pace(fetch, { store, shareLearned: true, retry: false }));
  const end = Date.now() + ms;
  const caller = async (api: (typeof clients)[number]) => {
    while (Date.now() < end) {
      const response = await api(url, { pace: { deadline: end } }).catch(() => undefined);
      await response?.arrayBuffer();
    }
  };
  await Promise.all(clients.flatMap((c) => Array.from({ length: callers }, () => caller(c))));
  return clients;
}

describe('fleet against a fixed window on the clock grid', () => {
  it('four processes, 20 per 2 s on the grid: at most 1% 429 and >= 90% used', async () => {
    const L = 20;
    const W = 2000;
    // Start mid-window on the grid.
    await new Promise((r) => setTimeout(r, W - (Date.now() % W) + W / 2));
    const server = await gridFixedWindow(L, W);
    try {
      const started = Date.now();
      await fleet(server.url, 4, 5 * W);
      const first = Math.ceil(started / W) * W;
      const windows = Math.floor((Date.now() - first) / W);
      const perWindow = Array.from(
        { length: windows },
        (_, i) => server.allowedAt.filter((t) => t >= first + i * W && t < first + (i + 1) * W).length,
      );
      const ok = perWindow.reduce((a, b) => a + b, 0);
      console.log('grid fixed', { total: server.statuses.length, denied: denied(server), perWindow });
      expect(denied(server)).toBeLessThanOrEqual(Math.ceil(server.statuses.length * 0.01));
      expect(ok / (windows * L)).toBeGreaterThanOrEqual(0.9);
    } finally {
      await server.close();
    }
  });
});

/** Fixed windows on the server clock's grid, one per policy, draft-8 headers naming both. */
function twoPolicyServer(policies: Array<{ name: string; q: number; w: number }>) {
  const counts = policies.map(() => new Map<number, number>());
  return scriptedServer((_req, res) => {
    const now = Date.now();
    const ks = policies.map((p) => Math.floor(now / (p.w * 1000)));
    const allowed = policies.every((p, i) => (counts[i]!.get(ks[i]!) ?? 0) < p.q);
    if (allowed) {
      for (const [i] of policies.entries()) counts[i]!.set(ks[i]!, (counts[i]!.get(ks[i]!) ?? 0) + 1);
    }
    const items = policies.map((p, i) => {
      const r = p.q - (counts[i]!.get(ks[i]!) ?? 0);
      const t = Math.ceil(((ks[i]! + 1) * p.w * 1000 - now) / 1000);
      return `"${p.name}";r=${r};t=${t}`;
    });
    res.writeHead(allowed ? 200 : 429, {
      RateLimit: items.join(', '),
      'RateLimit-Policy': policies.map((p) => `"${p.name}";q=${p.q};w=${p.w}`).join(', '),
      ...(allowed ? {} : { 'Retry-After': '1' }),
    });
    res.end('{}');
  });
}

describe('fleet against a draft-8 server with two policies', () => {
  it('5 per 1 s and 90 per 20 s: four processes keep to both (at most 1% 429)', async () => {
    const server = await twoPolicyServer([
      { name: 'sec', q: 5, w: 1 },
      { name: 'min', q: 90, w: 20 },
    ]);
    try {
      await fleet(server.url, 4, 6000);
      console.log('two policies', { total: server.statuses.length, denied: denied(server) });
      // Observed: 16-18 of 48 answered 429 (at 57024e8: 2 of 30). The fleet mirrors only the slower policy (90 per 20 s, its bucket full): the
      // per-second one is paced by each process alone, and four of them overshoot it.
      expect(denied(server)).toBeLessThanOrEqual(Math.ceil(server.statuses.length * 0.01));
    } finally {
      await server.close();
    }
  });
});

describe("fleet against a sliding window on the server clock's grid", () => {
  for (const skew of [0, 1000, -700]) {
    it(`20 per 2 s, server clock ${skew} ms off: four processes, at most 1% 429`, async () => {
      const server = await gridSlidingWindow(20, 2000, skew);
      try {
        await fleet(server.url, 4, 8000);
        console.log('sliding', skew, { total: server.statuses.length, denied: denied(server) });
        // A cold review found 5-7 of ~78 answered 429 at 1000 and -700 (the store's sliding window
        // is on the store's clock grid, the server's on its own); since the mirror waits for the
        // clocks to be known aligned: 0 at each, alone (three runs). Beside the acceptance files
        // the 1000 ms case saw 3 of 75 in every run to 2026-12-05 (and 1 in one run of three
        // alone): the fleet is paced at the sliding window's rate there, and the four processes'
        // first calls, sent before they knew it, were not all counted in that pace, so the
        // server's first window held 20 where it opened just before them and its next window's
        // first call was refused. Since they are (see `SharedPacing.slidingPace`): 0 in six runs
        // started 20-145 ms into a window, and in the whole acceptance run.
        expect(denied(server)).toBeLessThanOrEqual(Math.ceil(server.statuses.length * 0.01));
      } finally {
        await server.close();
      }
    });
  }
});

describe('a quota whose limit changes mid-run', () => {
  // Until 2026-12-06 the bound was 2%, and draft-7 had 2 of ~62 answered 429 in every run (3 once
  // under load), draft-8 1-3: the processes that had seen the drop paced by a new mirror that the
  // others' calls did not reach. Since one count holds every call across the change (see
  // `FleetPart.floor`): draft-7 1 of ~61 in 5 runs of 16, none in the others (the one: the window's
  // 11th call, sent with its 10th by a process with no answer since the drop yet, which no count
  // can stop); draft-8 none in 14.
  for (const mode of ['draft-7', 'draft-8'] as const) {
    it(`${mode}: fixed window 20 per 2 s, then 10 per 2 s from the third window on: four processes, at most 1% 429`, async () => {
      const W = 2000;
      await new Promise((r) => setTimeout(r, W - (Date.now() % W) + 100));
      const t0 = Date.now();
      const counts = new Map<number, number>();
      const server = await scriptedServer((_req, res) => {
        const now = Date.now();
        const L = now - t0 < 2 * W ? 20 : 10;
        const k = Math.floor(now / W);
        const count = counts.get(k) ?? 0;
        const allowed = count < L;
        if (allowed) counts.set(k, count + 1);
        const r = Math.max(0, L - count - (allowed ? 1 : 0));
        const t = Math.ceil(((k + 1) * W - now) / 1000);
        res.writeHead(allowed ? 200 : 429, {
          ...(mode === 'draft-7'
            ? {
                RateLimit: `limit=${L}, remaining=${r}, reset=${t}`,
                'RateLimit-Policy': `${L};w=${W / 1000}`,
              }
            : { RateLimit: `"plan";r=${r};t=${t}`, 'RateLimit-Policy': `"plan";q=${L};w=${W / 1000}` }),
          ...(allowed ? {} : { 'Retry-After': '1' }),
        });
        res.end('{}');
      });
      try {
        await fleet(server.url, 4, 4 * W);
        console.log('limit change', mode, { total: server.statuses.length, denied: denied(server) });
        expect(denied(server)).toBeLessThanOrEqual(Math.ceil(server.statuses.length * 0.01));
      } finally {
        await server.close();
      }
    });
  }
});

describe('tiny windows', () => {
  it('fixed window 5 per 20 ms (w=0.02), two processes for 2 s: at least half the quota (250 calls)', async () => {
    const server = await gridFixedWindow(5, 20);
    try {
      await fleet(server.url, 2, 2000, new MemoryStore(), 4);
      const ok = server.allowedAt.length;
      console.log('tiny', { total: server.statuses.length, denied: denied(server), ok });
      // Holds: reset=1 (whole seconds) > w, so the client reads a sliding window and mirrors that.
      expect(ok).toBeGreaterThanOrEqual(250);
    } finally {
      await server.close();
    }
  });
});
