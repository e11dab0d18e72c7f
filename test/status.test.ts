/**
 * Issue 14 acceptance for `rateLimitStatus()`, on Express and Koa, with the MemoryStore and a real
 * Redis (virtual clocks, so numbers are exact): calling the status endpoint 1 000 times changes no
 * counter (no decision is made, every policy's state reads the same, Redis holds the same bytes),
 * and its numbers equal the headers of the requests around it: the next request's limit, window and
 * reset, with `remaining` less that request's unit; after it, every number equals its headers.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import {
  DECISION_CHANNEL,
  MemoryStore,
  type Policy,
  type RateLimitStatusBody,
  type Store,
} from '@tollgate/core';
import * as forExpress from '@tollgate/express';
import * as forKoa from '@tollgate/koa';
import { RedisStore } from '@tollgate/redis';
import express from 'express';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { parseList } from 'structured-headers';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type RedisServer, startRedis } from './support/redis-servers.ts';

const quiet = { warn: () => undefined, error: () => undefined };
const API: Policy[] = [
  { name: 'per-second', limit: 5, window: '1s', algorithm: 'fixed-window' },
  { name: 'per-hour', limit: 100, window: '1h' },
];
const TIERS: Record<string, readonly Policy[]> = {
  free: [{ name: 'free-daily', limit: 10, window: '1d', algorithm: 'fixed-window' }],
  pro: [{ name: 'pro-minute', limit: 50, window: '1m' }],
};
const planOf = (value: string | undefined) => (value === 'pro' ? 'pro' : 'free');

interface Setup {
  store: Store;
  /** The Redis client holding the store's keys, to read them raw. */
  client?: Redis;
  prefix?: string;
}

/** `/api` (two policies), `/plans` (tiers by `x-plan`), `/rate_limit`: every limiter keyed by `x-user`. */
function expressApp({ store }: Setup): { server: Server; limiters: forExpress.RateLimitMiddleware[] } {
  const app = express();
  const key = forExpress.byHeader('x-user');
  const common = { store, key, headers: 'draft-8', logger: quiet } as const;
  const api = forExpress.rateLimit({ ...common, name: 'api', policies: API });
  const plans = forExpress.rateLimit({
    ...common,
    name: 'plans',
    policies: (req) => TIERS[planOf(req.get('x-plan'))]!,
  });
  app.get('/api', api, (_req, res) => void res.send('ok'));
  app.get('/plans', plans, (_req, res) => void res.send('ok'));
  app.get(
    '/rate_limit',
    forExpress.rateLimitStatus({ limiters: [api, plans], tier: (req) => planOf(req.get('x-plan')) }),
  );
  return { server: app.listen(0, '127.0.0.1'), limiters: [api, plans] };
}

function koaApp({ store }: Setup): { server: Server; limiters: forKoa.RateLimitMiddleware[] } {
  const app = new Koa();
  const router = new Router();
  const key = forKoa.byHeader('x-user');
  const common = { store, key, headers: 'draft-8', logger: quiet } as const;
  const api = forKoa.rateLimit({ ...common, name: 'api', policies: API });
  const plans = forKoa.rateLimit({
    ...common,
    name: 'plans',
    policies: (ctx) => TIERS[planOf(ctx.get('x-plan'))]!,
  });
  const ok = (ctx: Koa.Context) => {
    ctx.body = 'ok';
  };
  router.get('/api', api, ok);
  router.get('/plans', plans, ok);
  router.get(
    '/rate_limit',
    forKoa.rateLimitStatus({ limiters: [api, plans], tier: (ctx) => planOf(ctx.get('x-plan')) }),
  );
  app.use(router.routes());
  return { server: app.listen(0, '127.0.0.1'), limiters: [api, plans] };
}

/** draft-8's fields as `{ name: { q, w, r, t } }`. */
function fieldsOf(response: Response): Record<string, Record<string, number>> {
  const fields: Record<string, Record<string, number>> = {};
  for (const header of ['ratelimit-policy', 'ratelimit']) {
    for (const [name, params] of parseList(response.headers.get(header)!)) {
      fields[String(name)] = {
        ...fields[String(name)],
        ...Object.fromEntries(params as Map<string, number>),
      };
    }
  }
  return fields;
}

/** The status body's numbers in the same shape. */
function statusFields(body: RateLimitStatusBody, limiter: string): Record<string, Record<string, number>> {
  return Object.fromEntries(
    body.limiters[limiter]!.policies.map((p) => [
      p.name,
      { q: p.limit, w: p.window, r: p.remaining, t: p.reset },
    ]),
  );
}

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis?.stop());

describe.each([
  ['Express', expressApp],
  ['Koa', koaApp],
] as const)('rateLimitStatus() on %s', (_framework, start) => {
  describe.each(['memory', 'redis'] as const)('with the %s store', (kind) => {
    test('1 000 calls change no counter; its numbers are the headers of the requests around it', async ({
      onTestFinished,
    }) => {
      const time = { now: 1_700_000_000_000 };
      const clock = () => time.now;
      let setup: Setup;
      if (kind === 'memory') {
        setup = { store: new MemoryStore({ clock }) };
      } else {
        const client = new Redis({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: 0 });
        onTestFinished(() => client.disconnect());
        const prefix = `status-${crypto.randomUUID()}:`;
        setup = { store: new RedisStore({ client, prefix, clock }), client, prefix };
      }
      const { server } = start(setup);
      onTestFinished(() => void server.close());
      await new Promise((resolve) => server.once('listening', resolve));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const get = (path: string, headers: Record<string, string> = { 'x-user': 'ann', 'x-plan': 'pro' }) =>
        fetch(`${base}${path}`, { headers });
      const status = async () => {
        const response = await get('/rate_limit');
        expect(response.status).toBe(200);
        return (await response.json()) as RateLimitStatusBody;
      };
      /** Every counter under the test's Redis prefix, raw. */
      const rawRedis = async () => {
        if (setup.client === undefined) return [];
        const keys = (await setup.client.keys(`${setup.prefix}*`)).sort();
        return Promise.all(keys.map(async (k) => [k, (await setup.client!.getBuffer(k))?.toString('hex')]));
      };

      // Two counted requests on each limiter, a millisecond apart.
      for (let i = 0; i < 2; i++) {
        expect((await get('/api')).status).toBe(200);
        expect((await get('/plans')).status).toBe(200);
        time.now += 1;
      }
      const first = await status();
      const rawBefore = await rawRedis();
      const decisions: unknown[] = [];
      const listener = (message: unknown) => decisions.push(message);
      subscribe(DECISION_CHANNEL, listener);
      onTestFinished(() => void unsubscribe(DECISION_CHANNEL, listener));
      const bodies: RateLimitStatusBody[] = [];
      for (let batch = 0; batch < 10; batch++) {
        bodies.push(...(await Promise.all(Array.from({ length: 100 }, () => status()))));
      }
      unsubscribe(DECISION_CHANNEL, listener);
      expect(bodies).toHaveLength(1000);
      expect(decisions, 'decisions made by the status calls').toEqual([]);
      for (const body of bodies) expect(body).toEqual(first);
      expect(await rawRedis()).toEqual(rawBefore);
      if (kind === 'redis') expect(rawBefore.length).toBe(2);

      expect(first).toEqual({
        limiters: {
          api: {
            allowed: true,
            retryAfter: 0,
            policies: [
              {
                name: 'per-second',
                algorithm: 'fixed-window',
                limit: 5,
                remaining: 3,
                used: 2,
                reset: 1,
                window: 1,
              },
              // The sliding window's reset: both requests fade out by the end of the next window (the
              // clock is 800 002 ms into an aligned hour: 7 200 000 - 800 002 ms, rounded up).
              {
                name: 'per-hour',
                algorithm: 'sliding-window',
                limit: 100,
                remaining: 98,
                used: 2,
                reset: 6400,
                window: 3600,
              },
            ],
          },
          plans: {
            tier: 'pro',
            allowed: true,
            retryAfter: 0,
            policies: [
              {
                name: 'pro-minute',
                algorithm: 'sliding-window',
                limit: 50,
                remaining: 48,
                used: 2,
                reset: 100,
                window: 60,
              },
            ],
          },
        },
      });

      // The next request's headers: the same limit, window and reset; remaining less its own unit.
      for (const [path, limiter] of [
        ['/api', 'api'],
        ['/plans', 'plans'],
      ] as const) {
        const before = statusFields(await status(), limiter);
        const response = await get(path);
        expect(response.status).toBe(200);
        const headers = fieldsOf(response);
        const expected = Object.fromEntries(
          Object.entries(before).map(([name, f]) => [name, { ...f, r: f.r! - 1 }]),
        );
        expect(headers).toEqual(expected);
        // And after it, the status shows exactly that request's numbers.
        expect(statusFields(await status(), limiter)).toEqual(headers);
      }

      // Another caller, another tier: its own limits, untouched by ann's.
      const other = (await (await get('/rate_limit', { 'x-user': 'bob' })).json()) as RateLimitStatusBody;
      expect(other.limiters.plans).toEqual({
        tier: 'free',
        allowed: true,
        retryAfter: 0,
        policies: [
          // No window open yet: the one the next request opens, a whole day.
          {
            name: 'free-daily',
            algorithm: 'fixed-window',
            limit: 10,
            remaining: 10,
            used: 0,
            reset: 86400,
            window: 86400,
          },
        ],
      });
      expect(other.limiters.api!.policies.map((p) => p.remaining)).toEqual([5, 100]);
    });
  });
});
