// Issue 15: a budget shared across processes through a tollgate store. In one process, two paced
// fetches on one MemoryStore spend from one budget; across four real child processes, clients whose
// configured budgets live in one (throwaway) Redis share one budget of requests and tokens per
// window against an OpenAI-style server: together they never pass the shared budget (what the
// server charged stays within its capacity plus its refill), use at least 80% of its token rate
// after the first window, at most 1% of calls are answered 429 (the server allows 25% more than
// the budget: the headroom README "Shared budgets" asks for), and what they charged equals the
// server's usage exactly.
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pace, QueueFullError } from '@tollgate/client';
import { MemoryStore } from '@tollgate/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { scriptedServer, tollgateServer } from './support/client-servers.js';
import { fakeLlm } from './support/fake-llm.js';
import { type RedisServer, startRedis } from './support/redis-servers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const WORKER = fileURLToPath(new URL('./support/client-worker.ts', import.meta.url));

it('shareLearned needs a store beside it, and is a boolean', () => {
  expect(() => pace(fetch, { shareLearned: true })).toThrow(
    'Expected `store` to be a tollgate store when `shareLearned` is true (a RedisStore for a fleet), got `undefined`.',
  );
  expect(() => pace(fetch, { store: new MemoryStore(), shareLearned: 'yes' as never })).toThrow(
    'Expected `shareLearned` to be a boolean, got "yes" (string).',
  );
});

it('a store that is no tollgate store ({}, a Map, an array) is a ConfigError at pace(), naming `store`', () => {
  const expected =
    'Expected `store` to be a tollgate store (MemoryStore, RedisStore: an object with consume, peek, refund and reset methods), got';
  for (const store of [{}, new Map(), []]) {
    expect(() => pace(fetch, { store, shareLearned: true })).toThrow(expected);
    expect(() => pace(fetch, { store, limits: [{ name: 'a', match: '*', rpm: 10 }] })).toThrow(expected);
  }
  expect(() => pace(fetch, { store: new MemoryStore(), shareLearned: true })).not.toThrow();
});

it('shareLearned: a policy window beyond what a store takes (2;w=999999999999999) is clamped, not a ConfigError', async () => {
  const server = await scriptedServer((_req, res) => {
    res.writeHead(200, {
      RateLimit: 'limit=2, remaining=2, reset=2',
      'RateLimit-Policy': '2;w=999999999999999',
    });
    res.end('{}');
  });
  const store = new MemoryStore();
  try {
    const api = pace(fetch, { store, shareLearned: true, retry: false });
    expect((await api(server.url)).status).toBe(200);
    // The fleet's bucket (one call per 2^51 ms) lets one go, then holds the next.
    expect((await api(server.url)).status).toBe(200);
    const ac = new AbortController();
    const third = api(server.url, { signal: ac.signal }).catch((error: Error) => error.name);
    await new Promise((resolve) => setTimeout(resolve, 200));
    ac.abort();
    expect(await third).toBe('AbortError');
    expect(server.statuses).toEqual([200, 200]);
  } finally {
    await store.close();
    await server.close();
  }
});

it('shareLearned: calls waiting for the fleet stay queued: maxQueue, queued in snapshot(), priority first', async () => {
  const server = await scriptedServer((req, res) => {
    res.writeHead(200, {
      RateLimit: 'limit=20, remaining=20, reset=2',
      'RateLimit-Policy': '20;w=2',
      'X-Which': req.url ?? '',
    });
    res.end('{}');
  });
  const store = new MemoryStore();
  try {
    const a = pace(fetch, { store, shareLearned: true, maxQueue: 2, retry: false });
    const b = pace(fetch, { store, shareLearned: true, retry: false });
    await (await a(`${server.url}/learn`)).arrayBuffer();
    await (await b(`${server.url}/learn`)).arrayBuffer();
    // A's calls, free to go on A's own pacing, wait in A's queue while A asks the fleet (the
    // store answers later: one question at a time, for the call at the head).
    await (await b(`${server.url}/b`)).arrayBuffer();
    const order: string[] = [];
    const low = a(`${server.url}/low`).then(async (r) => order.push(await r.headers.get('x-which')!));
    const high = a(`${server.url}/high`, { pace: { priority: 10 } }).then(async (r) =>
      order.push(await r.headers.get('x-which')!),
    );
    const budget = a.snapshot().budgets[0]!;
    expect([budget.queued, budget.inFlight]).toEqual([2, 0]);
    await expect(a(`${server.url}/third`)).rejects.toThrow(QueueFullError);
    await Promise.all([low, high]);
    expect(order).toEqual(['/high', '/low']);
  } finally {
    await store.close();
    await server.close();
  }
});

it('shareLearned: two paced fetches on one MemoryStore share a bucket server at its rate, no 429, no warning', async () => {
  const warn = vi.spyOn(console, 'warn');
  const server = await tollgateServer(
    'express',
    { limit: 20, window: 2000, algorithm: 'token-bucket' },
    'draft-6',
  );
  try {
    const store = new MemoryStore();
    const clients = [pace(fetch, { store, shareLearned: true }), pace(fetch, { store, shareLearned: true })];
    const end = Date.now() + 3000;
    const caller = async (api: (typeof clients)[number]) => {
      while (Date.now() < end) {
        const response = await api(server.url, { pace: { deadline: end } }).catch(() => undefined);
        await response?.arrayBuffer();
      }
    };
    await Promise.all([...clients, ...clients].map(caller));
    // The fleet mirrors the server's bucket in the store (its burst of 20, then 10 a second):
    // at most the 50 calls the server admits in 3 s, none answered 429, where two clients pacing
    // alone overshoot. At least 35: until a process has told the bucket from a window it also
    // keeps to 20 per window.
    expect(server.statuses.filter((s) => s !== 200)).toEqual([]);
    expect(server.statuses.length).toBeGreaterThanOrEqual(35);
    expect(server.statuses.length).toBeLessThanOrEqual(50);
    // The fleet's bucket is named in ms: no TOLLGATE_NUMERIC_WINDOW for a spacing under a second.
    expect(warn.mock.calls.flat().join('\n')).not.toContain('TOLLGATE_');
    await store.close();
  } finally {
    warn.mockRestore();
    await server.close();
  }
});

it('two paced fetches on one MemoryStore spend from one budget', async () => {
  const at: number[] = [];
  const server = await scriptedServer((_req, res) => {
    at.push(Date.now());
    res.end('{}');
  });
  try {
    const store = new MemoryStore();
    const limits = [{ match: server.url, requests: { limit: 4, window: '1s' } }];
    const a = pace(fetch, { store, limits });
    const b = pace(fetch, { store, limits });
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? a : b)(server.url).then((r) => r.arrayBuffer())),
    );
    // Four between them, then one per 250 ms: the fifth and sixth wait for the bucket, which
    // started after \`started\`. Apart, each would have had four of its own: no wait at all.
    expect(at.length).toBe(6);
    // (A millisecond of slack: the store reads a monotonic clock, the server Date.now().)
    expect(at[4]! - started).toBeGreaterThanOrEqual(249);
    expect(at[5]! - started).toBeGreaterThanOrEqual(499);
    await store.close();
  } finally {
    await server.close();
  }
});

describe('four processes sharing a Redis budget against an OpenAI-style server', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('the fleet stays within the shared budget, uses >= 80% of it, <= 1% 429s, exact usage', async () => {
    const WINDOW = 2000;
    const TPM = 40_000;
    const RPM = 200;
    let seed = 7;
    // The server allows 25% more than the shared budget (see the header comment).
    const server = await fakeLlm({
      rpm: RPM * 1.25,
      tpm: TPM * 1.25,
      windowMs: WINDOW,
      completion: (max) => {
        seed = (seed * 48271) % 2147483647;
        return 1 + (seed % max);
      },
    });
    try {
      const children = Array.from({ length: 4 }, (_, i) =>
        fork(
          WORKER,
          [
            JSON.stringify({
              url: server.url,
              redisPort: redis.port,
              prefix: 'shared-test:',
              calls: 25,
              seed: 100 + i,
              requests: { limit: RPM, window: WINDOW },
              tokens: { limit: TPM, window: WINDOW },
            }),
          ],
          {
            cwd: root,
            execArgv: ['--import', 'tsx'],
            env: { ...process.env, TSX_TSCONFIG_PATH: join(root, 'tsconfig.json') },
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          },
        ),
      );
      const next = (child: (typeof children)[number], type: string) =>
        new Promise<Record<string, unknown>>((resolve, reject) => {
          child.on('message', (m: Record<string, unknown>) => m.type === type && resolve(m));
          child.once('exit', (code) =>
            reject(new Error(`a client process exited (${code}) before '${type}'`)),
          );
        });
      await Promise.all(children.map((c) => next(c, 'ready')));
      const done = children.map((c) => next(c, 'done'));
      const start = Date.now();
      for (const child of children) child.send({ type: 'go' });
      const results = await Promise.all(done);
      const end = Date.now();
      const ok = server.served.filter((s) => s.status === 200);
      const limited = server.served.filter((s) => s.status === 429).length;
      const used = ok.reduce((sum, s) => sum + s.tokens, 0);
      // POST calls are not retried by default: a 429 is an answer.
      expect(ok.length + limited).toBe(100);
      expect(results.reduce((sum, r) => sum + (r.charged as number), 0)).toBe(used);
      expect(limited / server.served.length).toBeLessThanOrEqual(0.01);
      // Never past the shared budget: its capacity plus what it refilled while the fleet ran.
      expect(used).toBeLessThanOrEqual(TPM + (TPM * (end - start)) / WINDOW);
      const after = ok.filter((s) => s.at >= start + WINDOW).reduce((sum, s) => sum + s.tokens, 0);
      expect(after / (end - (start + WINDOW)) / (TPM / WINDOW)).toBeGreaterThanOrEqual(0.8);
    } finally {
      await server.close();
    }
  });
});
