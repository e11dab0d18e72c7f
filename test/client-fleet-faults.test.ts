// The fleet (`shareLearned`) and the grid-counted sliding window under faults and odd servers,
// from a cold review: a server stating a window of 10^13 s, a killed Redis, thousands of calls
// sent before the pace was known, an abort while the fleet's question is out, two credentials on
// one store, a server clock an hour ahead. Real servers on 127.0.0.1, real child processes.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pace } from '@tollgate/client';
import { MemoryStore } from '@tollgate/core';
import { RedisStore } from '@tollgate/redis';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import {
  denied,
  gridFixedWindow,
  gridSlidingWindow,
  scriptedServer,
  tollgateServer,
} from './support/client-servers.js';
import { startRedis } from './support/redis-servers.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Runs `code` (an ES module importing @tollgate/*) in a child node; resolves with its exit and output, killed after `ms`. */
function child(
  code: string,
  ms: number,
): Promise<{ code: number | null; signal: string | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: root,
      env: { ...process.env, TSX_TSCONFIG_PATH: join(root, 'tsconfig.json') },
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), ms);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out });
    });
  });
}

describe("a draft sliding window counted on the grid, window far beyond a double's integers", () => {
  it('w=10^13 s (reset > w: sliding), limit 2: the third call is held, not an event loop spinning forever', async () => {
    // A server that states a sliding window of 10^13 s (10^16 ms: above 2^53, doubles 2 apart).
    const server = await scriptedServer((_req, res, i) => {
      res.writeHead(200, {
        RateLimit: `limit=2, remaining=${Math.max(0, 1 - i)}, reset=15000000000000`,
        'RateLimit-Policy': '2;w=10000000000000',
      });
      res.end('{}');
    });
    try {
      const result = await child(
        `import { pace } from '@tollgate/client';
         const api = pace(fetch, { retry: false });
         await (await api(${JSON.stringify(server.url)})).arrayBuffer();
         // The one call left is spread over the 10^13 s until the reset: held too.
         const held = new AbortController();
         setTimeout(() => held.abort(), 300);
         console.log('second:', await api(${JSON.stringify(server.url)}, { signal: held.signal }).then(() => 'sent', (e) => e.name));
         const ac = new AbortController();
         setTimeout(() => ac.abort(), 300);
         const third = await api(${JSON.stringify(server.url)}, { signal: ac.signal }).then(() => 'sent', (e) => e.name);
         console.log('third:', third);
         process.exit(0);`,
        8000,
      );
      // Observed: killed after 8 s (gridReadyAt's bisection never ends: hi - lo stays 2 > 1).
      expect({ signal: result.signal, out: result.out.trim() }).toEqual({
        signal: null,
        out: 'second: AbortError\nthird: AbortError',
      });
      expect(server.statuses).toEqual([200]);
    } finally {
      await server.close();
    }
  }, 20_000);
});

describe('fleet whose store fails', () => {
  it('RedisStore on a killed Redis (onStoreError allow): calls still go, each process on its own pacing', async () => {
    const redis = await startRedis();
    const client = new Redis({
      host: '127.0.0.1',
      port: redis.port,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
    });
    client.on('error', () => undefined);
    await new Promise((resolve) => client.once('ready', resolve));
    const server = await tollgateServer(
      'express',
      { limit: 20, window: 2000, algorithm: 'fixed-window' },
      'draft-7',
    );
    try {
      await redis.kill();
      const store = new RedisStore({ client, prefix: 'review-dead:' });
      const errors: string[] = [];
      const clients = [0, 1].map(() => pace(fetch, { store, shareLearned: true, retry: false }));
      const end = Date.now() + 4000;
      await Promise.all(
        [...clients, ...clients].map(async (api) => {
          while (Date.now() < end) {
            const r = await api(server.url, { pace: { deadline: end } }).catch((e: Error) => {
              if (e.name !== 'DeadlineError') errors.push(`${e.name}: ${e.message}`);
            });
            await r?.arrayBuffer();
          }
        }),
      );
      console.log(
        'dead redis',
        { total: server.statuses.length, denied: denied(server), errors: errors.slice(0, 3) },
        server.allowedAt.map((t) => t - end + 4000).join(','),
      );
      expect(errors).toEqual([]);
      expect(server.statuses.length).toBeGreaterThanOrEqual(20);
    } finally {
      client.disconnect();
      await server.close();
      await redis.stop();
    }
  });
});

/** `inner` (a MemoryStore or a RedisStore) with its consumes (sync or not) counted. */
function countingStore<S extends MemoryStore | RedisStore>(inner: S) {
  const calls = { consume: 0 };
  const store = inner as unknown as Record<string, (...args: unknown[]) => unknown>;
  const consume = store.consume!.bind(inner);
  const consumeSync = store.consumeSync?.bind(inner);
  let nested = false;
  if (consumeSync !== undefined) {
    store.consumeSync = (...args: unknown[]) => {
      if (!nested) calls.consume++;
      return consumeSync(...args);
    };
  }
  store.consume = (...args: unknown[]) => {
    calls.consume++;
    nested = true;
    try {
      return consume(...args);
    } finally {
      nested = false;
    }
  };
  return { store: inner, calls };
}

/**
 * A server that states its quota only from its 3001st answer on (many gateways state it only past
 * a share of it, or only on some answers), called 3001 times through a fleet on `store`: the store
 * consumes of the one fleet question that follows (it counts the 3001 calls sent before the pace
 * was known).
 */
async function consumesOfFirstQuestion(store: MemoryStore | RedisStore): Promise<number> {
  const N = 3000;
  const server = await scriptedServer((_req, res, i) => {
    if (i >= N) {
      res.writeHead(200, {
        RateLimit: `limit=1000000, remaining=${1_000_000 - i - 1}, reset=60`,
        'RateLimit-Policy': '1000000;w=60',
      });
    }
    res.end('{}');
  });
  try {
    const counted = countingStore(store);
    const api = pace(fetch, { store: counted.store, shareLearned: true, retry: false });
    for (let i = 0; i < N + 1; i += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, N + 1 - i) }, () => api(server.url).then((r) => r.arrayBuffer())),
      );
    }
    const before = counted.calls.consume;
    await (await api(server.url)).arrayBuffer();
    return counted.calls.consume - before;
  } finally {
    await server.close();
  }
}

describe('calls sent before the pace was known (unregistered)', () => {
  // A cold review found 2 x 3000 consumes of cost 1 in that question (one per call, in the bucket
  // and in the fixed window), serial: against Redis, a round trip each (seconds on 127.0.0.1).
  // Now one per limiter (two), plus the permit (two) and a drain or a retry of what fits (two).
  it('on a MemoryStore: the first fleet question is a few store calls, not thousands', async () => {
    const store = new MemoryStore();
    try {
      expect(await consumesOfFirstQuestion(store)).toBeLessThanOrEqual(6);
    } finally {
      await store.close();
    }
  }, 60_000);

  it('on a RedisStore: the same few store calls (each a round trip)', async () => {
    const redis = await startRedis();
    const client = new Redis({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: 0 });
    try {
      expect(
        await consumesOfFirstQuestion(new RedisStore({ client, prefix: 'review-unreg:' })),
      ).toBeLessThanOrEqual(6);
    } finally {
      client.disconnect();
      await redis.stop();
    }
  }, 60_000);
});

/** A MemoryStore answering every consume `delayMs` late (like a Redis far away); consumes counted. */
function slowStore(delayMs: number) {
  const inner = new MemoryStore();
  const calls = { consume: 0 };
  const store = new Proxy(inner, {
    get(target, p) {
      if (p === 'consumeSync') return undefined;
      const v = Reflect.get(target, p, target) as unknown;
      if (p === 'consume') {
        return async (...args: unknown[]) => {
          calls.consume++;
          await new Promise((r) => setTimeout(r, delayMs));
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { store, calls, inner };
}

describe('abort while a fleet question is in flight', () => {
  it('the permit the aborted call was given is not kept for a call a window later (which the fleet never counts)', async () => {
    const W = 2000;
    await new Promise((r) => setTimeout(r, W - (Date.now() % W) + 50));
    const server = await gridFixedWindow(5, W);
    const { store, calls, inner } = slowStore(100);
    try {
      const api = pace(fetch, { store, shareLearned: true, retry: false });
      await (await api(server.url)).arrayBuffer();
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 20);
      expect(
        await api(server.url, { signal: ac.signal }).then(
          () => 'sent',
          (e: Error) => e.name,
        ),
      ).toBe('AbortError');
      // The question answers (allowed) after the abort; wait for the next server and fleet windows.
      await new Promise((r) => setTimeout(r, 2 * W + 200));
      const before = calls.consume;
      await (await api(server.url)).arrayBuffer();
      // Observed: 0 store consumes: the call went on the permit taken 4 s earlier for the aborted
      // one, counted in no fleet window of its own (another process can fill this one: a 429).
      expect(calls.consume - before).toBeGreaterThan(0);
      expect(server.statuses).toEqual([200, 200]);
    } finally {
      await inner.close();
      await server.close();
    }
  });
});

describe('key isolation and clocks', () => {
  it('two credentials on one origin, one store: each credential keeps its own fleet quota (10 per 2 s each)', async () => {
    const W = 2000;
    const counts = new Map<string, number>();
    const server = await scriptedServer((req, res) => {
      const now = Date.now();
      const k = `${req.headers.authorization} ${Math.floor(now / W)}`;
      const count = counts.get(k) ?? 0;
      const allowed = count < 10;
      if (allowed) counts.set(k, count + 1);
      res.writeHead(allowed ? 200 : 429, {
        RateLimit: `limit=10, remaining=${Math.max(0, 10 - count - (allowed ? 1 : 0))}, reset=${Math.ceil(((Math.floor(now / W) + 1) * W - now) / 1000)}`,
        'RateLimit-Policy': '10;w=2',
        'X-Who': String(req.headers.authorization),
      });
      res.end('{}');
    });
    try {
      const store = new MemoryStore();
      const clients = [0, 1].map(() => pace(fetch, { store, shareLearned: true, retry: false }));
      const ok = { a: 0, b: 0 };
      const end = Date.now() + 3 * W;
      await Promise.all(
        clients.flatMap((api) =>
          (['a', 'b'] as const).map(async (who) => {
            while (Date.now() < end) {
              const r = await api(server.url, {
                headers: { authorization: `Bearer ${who}` },
                pace: { deadline: end },
              }).catch(() => undefined);
              if (r?.status === 200) ok[who]++;
              await r?.arrayBuffer();
            }
          }),
        ),
      );
      console.log('credentials', ok, denied(server));
      expect(denied(server)).toBeLessThanOrEqual(1);
      // Each credential its own 10 per window over ~3 windows.
      expect(Math.min(ok.a, ok.b)).toBeGreaterThanOrEqual(25);
      await store.close();
    } finally {
      await server.close();
    }
  });

  it('one client, sliding window on a server clock an hour and 337 ms ahead: no 429, >= 85% of the quota', async () => {
    const server = await gridSlidingWindow(20, 2000, 3_600_337);
    try {
      const api = pace(fetch, { retry: false });
      const start = Date.now();
      const end = start + 10_000;
      await Promise.all(
        [0, 1].map(async () => {
          while (Date.now() < end) {
            const r = await api(server.url, { pace: { deadline: end } }).catch(() => undefined);
            await r?.arrayBuffer();
          }
        }),
      );
      const after = server.allowedAt.filter((t) => t >= start + 4000).length;
      console.log('far Date', { total: server.statuses.length, denied: denied(server), after });
      expect(denied(server)).toBe(0);
      expect(after / (((end - start - 4000) / 2000) * 20)).toBeGreaterThanOrEqual(0.85);
    } finally {
      await server.close();
    }
  });
});
