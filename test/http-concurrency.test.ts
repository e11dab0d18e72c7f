/**
 * Concurrency policies over real HTTP, Express and Koa alike, on a MemoryStore and a RedisStore:
 * the slot is released when the response closes (finished, an error status, a client that left
 * mid-response), `RateLimit-Policy` shows the policy with w = its lease, and a denial carries
 * `Retry-After` = the time until the oldest lease ends (seconds, rounded up).
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Limiter, MemoryStore, type Policy, type Store } from '@tollgate/core';
import * as forExpress from '@tollgate/express';
import * as forKoa from '@tollgate/koa';
import { RedisStore } from '@tollgate/redis';
import express from 'express';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { testPrefix } from './support/multi-process/redis-keys.ts';

const quiet = { warn: () => undefined, error: () => undefined };
const POLICIES: Policy[] = [
  { name: 'in-flight', algorithm: 'concurrency', limit: 2, lease: '30s' },
  { name: 'per-minute', limit: 100, window: '1m' },
];

/** What the app's handlers do: `/hold` waits for `open()`, `/fail` answers 500, others 200. */
class Gates {
  private waiting: (() => void)[] = [];
  entered = 0;
  hold(): Promise<void> {
    this.entered++;
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  open(): void {
    for (const go of this.waiting.splice(0)) go();
  }
}

interface App {
  server: Server;
  limiter: Limiter;
  gates: Gates;
}

function expressApp(store: Store): App {
  const gates = new Gates();
  const app = express();
  const limit = forExpress.rateLimit({ policies: POLICIES, store, key: () => 'k', logger: quiet });
  app.use(limit);
  app.get('/hold', async (_req, res) => {
    await gates.hold();
    res.send('held');
  });
  app.get('/fail', () => {
    throw new Error('handler failed');
  });
  app.get('/ok', (_req, res) => void res.send('ok'));
  app.use((_error: unknown, _req: unknown, res: express.Response, _next: unknown) => {
    res.status(500).send('failed');
  });
  return { server: createServer(app), limiter: limit.limiter, gates };
}

function koaApp(store: Store): App {
  const gates = new Gates();
  const app = new Koa();
  app.silent = true;
  const limit = forKoa.rateLimit({ policies: POLICIES, store, key: () => 'k', logger: quiet });
  app.use(limit);
  app.use(async (ctx) => {
    if (ctx.path === '/hold') {
      await gates.hold();
      ctx.body = 'held';
    } else if (ctx.path === '/fail') {
      throw new Error('handler failed');
    } else {
      ctx.body = 'ok';
    }
  });
  return { server: createServer(app.callback()), limiter: limit.limiter, gates };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A GET on its own connection; `abort` destroys it once the handler has it. */
function get(server: Server, path: string): { answer: Promise<Answer>; abort(): void } {
  const { port } = server.address() as AddressInfo;
  const req = request({ host: '127.0.0.1', port, path, agent: false });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
  req.end();
  return { answer, abort: () => req.destroy() };
}

/** Slots free now (the limiter's view), polled until `want` or 2 s. */
async function freeSlots(limiter: Limiter, want: number): Promise<number> {
  const until = performance.now() + 2000;
  for (;;) {
    const free = (await limiter.peek('k')).policies[0]!.remaining;
    if (free === want || performance.now() > until) return free;
    await sleep(10);
  }
}

const redis = new Redis({ port: inject('redisPort'), lazyConnect: true });
beforeAll(() => redis.connect());
afterAll(() => redis.quit());

const frameworks = [
  ['Express', expressApp],
  ['Koa', koaApp],
] as const;
const stores = [
  ['MemoryStore', () => new MemoryStore()],
  ['RedisStore', () => new RedisStore({ client: redis, prefix: testPrefix() })],
] as const;

describe.each(frameworks)('%s', (_framework, makeApp) => {
  describe.each(stores)('on a %s', (_store, makeStore) => {
    it('holds a slot per request until its response closes, whatever the ending', async () => {
      const { server, limiter, gates } = makeApp(makeStore());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const first = get(server, '/hold');
        const second = get(server, '/hold');
        while (gates.entered < 2) await sleep(5);
        expect(await freeSlots(limiter, 0)).toBe(0);

        // Full: 429, the policy in RateLimit-Policy with w = the lease, Retry-After = until the
        // oldest lease ends (30 s, rounded up).
        const denied = await get(server, '/ok').answer;
        expect(denied.status).toBe(429);
        expect(denied.headers['ratelimit-policy']).toBe('2;w=30, 100;w=60');
        expect(denied.headers['retry-after']).toBe('30');
        expect(JSON.parse(denied.body)['violated-policies']).toEqual(['in-flight']);

        // A finished response frees its slot.
        gates.open();
        expect((await first.answer).status).toBe(200);
        expect((await second.answer).status).toBe(200);
        expect(await freeSlots(limiter, 2)).toBe(2);

        // A handler that fails (500) frees its slot.
        expect((await get(server, '/fail').answer).status).toBe(500);
        expect(await freeSlots(limiter, 2)).toBe(2);

        // A client that leaves while its handler runs frees its slot.
        const entered = gates.entered;
        const left = get(server, '/hold');
        left.answer.catch(() => undefined);
        const stays = get(server, '/hold');
        while (gates.entered < entered + 2) await sleep(5);
        expect(await freeSlots(limiter, 0)).toBe(0);
        left.abort();
        expect(await freeSlots(limiter, 1)).toBe(1);
        const ok = await get(server, '/ok').answer;
        expect(ok.status).toBe(200);
        expect(ok.headers['ratelimit-policy']).toBe('2;w=30, 100;w=60');
        gates.open();
        expect((await stays.answer).status).toBe(200);
        expect(await freeSlots(limiter, 2)).toBe(2);
      } finally {
        gates.open();
        server.closeAllConnections();
        server.close();
      }
    });
  });
});
