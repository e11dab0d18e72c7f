/**
 * Calendar windows (issue 12), end to end: the acceptance numbers on every store with a virtual
 * clock (a MemoryStore, a RedisStore on Redis and on a Cluster given the `clock` option), on a
 * Redis whose clock the test cannot set (Redis `TIME`), and over HTTP with Express and Koa.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type CalendarWindow,
  type Clock,
  createLimiter,
  type Decision,
  MemoryStore,
  type Policy,
  type Store,
} from '@tollgate/core';
import { rateLimit as expressRateLimit } from '@tollgate/express';
import { rateLimit as koaRateLimit } from '@tollgate/koa';
import { RedisStore } from '@tollgate/redis';
import express from 'express';
import { Cluster, Redis } from 'ioredis';
import Koa from 'koa';
import { parseList } from 'structured-headers';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { Calendar } from '../packages/core/src/algorithms/fixed-window/calendar.ts';
import { startRedis } from './support/redis-servers.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NY = 'America/New_York';
const quiet = { warn: () => undefined, error: () => undefined };

let redis: Redis;
let cluster: Cluster;
beforeAll(async () => {
  redis = new Redis({ host: '127.0.0.1', port: inject('redisPort'), lazyConnect: true });
  cluster = new Cluster(inject('clusterNodes'), { lazyConnect: true });
  await Promise.all([redis.connect(), cluster.connect()]);
});
afterAll(async () => {
  await Promise.all([redis.quit(), cluster.quit()]);
});

const prefix = () => `cal:${randomUUID()}:`;

/** Redis TIME in ms, as the scripts read it. */
async function redisTime(client: Redis | Cluster = redis): Promise<number> {
  const [seconds, micros] = await (client as Redis).time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/** What a test reads of a decision: its numbers and the binding policy's window. */
const view = (d: Decision) => ({
  allowed: d.allowed,
  remaining: d.remaining,
  resetMs: d.resetMs,
  retryAfterMs: d.retryAfterMs,
  windowMs: d.policies[0]!.windowMs,
});

const STORES: [string, (clock: Clock) => Store][] = [
  ['MemoryStore', (clock) => new MemoryStore({ clock })],
  ['RedisStore (clock option)', (clock) => new RedisStore({ client: redis, clock, prefix: prefix() })],
  [
    'RedisStore on a Cluster (clock option)',
    (clock) => new RedisStore({ client: cluster, clock, prefix: prefix() }),
  ],
];

describe.each(STORES)('%s, virtual clock: the acceptance numbers', (_name, makeStore) => {
  /** One key under `window`, at the time `at` sets. */
  function quota(limit: number, window: CalendarWindow) {
    let t = 0;
    const limiter = createLimiter({
      policies: { limit, window },
      store: makeStore(() => t),
      blockedCache: false,
      logger: quiet,
    });
    return {
      at(ms: number) {
        t = ms;
        return this;
      },
      hit: async () => view(await limiter.consume('k')),
      async admitted(max: number) {
        let n = 0;
        while (n < max && (await limiter.consume('k')).allowed) n++;
        return n;
      },
    };
  }

  it('a monthly quota of N admits exactly N from the first to the last ms of a month, then N again', async () => {
    const q = quota(50, { calendar: 'month' });
    const start = Date.UTC(2026, 1, 1);
    const end = Date.UTC(2026, 2, 1);
    expect(await q.at(start).hit()).toEqual({
      allowed: true,
      remaining: 49,
      resetMs: 28 * DAY,
      retryAfterMs: 0,
      windowMs: 28 * DAY,
    });
    expect(await q.at(start + 10 * DAY).admitted(48)).toBe(48);
    expect(await q.at(end - 1).hit()).toEqual({
      allowed: true,
      remaining: 0,
      resetMs: 1,
      retryAfterMs: 0,
      windowMs: 28 * DAY,
    });
    expect(await q.hit()).toEqual({
      allowed: false,
      remaining: 0,
      resetMs: 1,
      retryAfterMs: 1,
      windowMs: 28 * DAY,
    });
    expect(await q.at(end).admitted(100)).toBe(50);
    expect(await q.hit()).toEqual({
      allowed: false,
      remaining: 0,
      resetMs: 31 * DAY,
      retryAfterMs: 31 * DAY,
      windowMs: 31 * DAY,
    });
  });

  it('startDay: 15 resets on the 15th, not on the 1st', async () => {
    const q = quota(5, { calendar: 'month', startDay: 15 });
    expect(await q.at(Date.UTC(2026, 0, 20)).admitted(10)).toBe(5);
    expect((await q.at(Date.UTC(2026, 1, 1)).hit()).retryAfterMs).toBe(14 * DAY);
    expect(await q.at(Date.UTC(2026, 1, 15) - 1).hit()).toEqual({
      allowed: false,
      remaining: 0,
      resetMs: 1,
      retryAfterMs: 1,
      windowMs: 31 * DAY,
    });
    expect(await q.at(Date.UTC(2026, 1, 15)).admitted(10)).toBe(5);
  });

  it.each([
    ['day, 8 March (23 h)', 'day', Date.UTC(2026, 2, 8, 5), Date.UTC(2026, 2, 9, 4)],
    ['day, 1 November (25 h)', 'day', Date.UTC(2026, 10, 1, 4), Date.UTC(2026, 10, 2, 5)],
    ['month, March (743 h)', 'month', Date.UTC(2026, 2, 1, 5), Date.UTC(2026, 3, 1, 4)],
    ['month, November (721 h)', 'month', Date.UTC(2026, 10, 1, 4), Date.UTC(2026, 11, 1, 5)],
  ] as const)(
    "timeZone 'America/New_York' resets at local midnight: %s",
    async (_what, calendar, opens, closes) => {
      const q = quota(3, { calendar, timeZone: NY });
      expect(await q.at(opens - 1).admitted(5)).toBe(3);
      expect(await q.at(opens).hit()).toEqual({
        allowed: true,
        remaining: 2,
        resetMs: closes - opens,
        retryAfterMs: 0,
        windowMs: closes - opens,
      });
      expect(await q.at(opens + 2 * HOUR + 30 * 60_000).admitted(5)).toBe(2);
      expect(await q.at(closes - 1).hit()).toEqual({
        allowed: false,
        remaining: 0,
        resetMs: 1,
        retryAfterMs: 1,
        windowMs: closes - opens,
      });
      expect(await q.at(closes).admitted(5)).toBe(3);
    },
  );
});

describe('RedisStore on Redis TIME (a clock the test cannot set)', () => {
  const MONTH = new Calendar('month', 'UTC', 1);
  const HOURS = new Calendar('hour', 'UTC', 1);

  it.each([
    ['Redis', () => redis],
    ['a Cluster', () => cluster],
  ] as const)(
    'on %s: a monthly quota of N admits N in the current month, each decision timed by Redis',
    async (_name, client) => {
      const limiter = createLimiter({
        policies: { limit: 5, window: { calendar: 'month' } },
        store: new RedisStore({ client: client(), prefix: prefix() }),
        logger: quiet,
      });
      for (let i = 0; i < 5; i++) {
        const d = await limiter.consume('k');
        // countedAt is Redis's time of the decision: the period is the month that holds it.
        const { start, end } = MONTH.periodAt(d.countedAt!);
        expect(view(d)).toEqual({
          allowed: true,
          remaining: 4 - i,
          resetMs: end - d.countedAt!,
          retryAfterMs: 0,
          windowMs: end - start,
        });
      }
      const before = await redisTime(client());
      const denied = await limiter.consume('k');
      const after = await redisTime(client());
      expect(denied.allowed).toBe(false);
      const { end } = MONTH.periodAt(before);
      expect(MONTH.periodAt(after).end, 'the test ran across a month boundary').toBe(end);
      expect(denied.retryAfterMs).toBeGreaterThanOrEqual(end - after);
      expect(denied.retryAfterMs).toBeLessThanOrEqual(end - before);
      expect(denied.resetMs).toBe(denied.retryAfterMs);
    },
  );

  it.each([
    ['hour', HOURS],
    ['month', MONTH],
  ] as const)(
    'N at the last ms of the previous %s, then N again in the current one on Redis TIME',
    async (unit, calendar) => {
      const p = prefix();
      const now = await redisTime();
      const { start } = calendar.periodAt(now);
      // The same Redis key, filled at the last millisecond of the previous period (a store told that
      // time): exactly N admitted...
      const before = createLimiter({
        policies: { limit: 4, window: { calendar: unit } },
        store: new RedisStore({ client: redis, prefix: p, clock: () => start - 1 }),
        blockedCache: false,
        logger: quiet,
      });
      const last = [];
      for (let i = 0; i < 5; i++) last.push(view(await before.consume('k')));
      expect(last.map((d) => [d.allowed, d.resetMs])).toEqual([
        [true, 1],
        [true, 1],
        [true, 1],
        [true, 1],
        [false, 1],
      ]);
      // ... then asked on Redis TIME: Redis's clock is past the boundary, so the count starts over.
      const current = createLimiter({
        policies: { limit: 4, window: { calendar: unit } },
        store: new RedisStore({ client: redis, prefix: p }),
        blockedCache: false,
        logger: quiet,
      });
      const decisions = [];
      for (let i = 0; i < 5; i++) decisions.push(await current.consume('k'));
      expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, true, false]);
      const first = decisions[0]!;
      const period = calendar.periodAt(first.countedAt!);
      expect(period.start).toBe(start);
      expect(view(first)).toEqual({
        allowed: true,
        remaining: 3,
        resetMs: period.end - first.countedAt!,
        retryAfterMs: 0,
        windowMs: period.end - period.start,
      });
    },
  );

  it("keys live until their period's end on Redis's clock (a month, a day in New York)", async () => {
    const p = prefix();
    const store = new RedisStore({ client: redis, prefix: p });
    for (const window of [{ calendar: 'month' }, { calendar: 'day', timeZone: NY }] as const) {
      const limiter = createLimiter({ policies: { limit: 3, window }, store, logger: quiet });
      const d = await limiter.consume('ttl');
      const key = store.keyFor('ttl', limiter.policies!);
      const ttl = await redis.pttl(key);
      const after = await redisTime();
      const end = d.countedAt! + d.resetMs;
      expect(ttl).toBeLessThanOrEqual(end - d.countedAt!);
      expect(ttl).toBeGreaterThanOrEqual(end - after - 5);
    }
  });

  it('a Redis killed and restarted (AOF on): the scripts load again, the month keeps its count', async ({
    onTestFinished,
  }) => {
    const server = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    onTestFinished(() => server.stop());
    const client = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true });
    client.on('error', () => undefined);
    onTestFinished(() => client.disconnect());
    await client.connect();
    const limiter = createLimiter({
      policies: { limit: 5, window: { calendar: 'month', timeZone: NY } },
      store: new RedisStore({ client, prefix: prefix() }),
      blockedCache: false,
      logger: quiet,
    });
    for (let i = 0; i < 3; i++) expect((await limiter.consume('k')).remaining).toBe(4 - i);
    await server.kill();
    await server.restart();
    // Calls fail open (counting nothing) until the client is back; then Redis decides again.
    let d = await limiter.consume('k');
    for (
      const deadline = performance.now() + 5_000;
      d.reason !== undefined && performance.now() < deadline;
    ) {
      await delay(50);
      d = await limiter.consume('k');
    }
    expect([d.reason, d.allowed, d.remaining]).toEqual([undefined, true, 1]);
    expect((await limiter.consume('k')).remaining).toBe(0);
    expect((await limiter.consume('k')).allowed).toBe(false);
  });

  /**
   * Runs `first` as the first call of a new RedisStore (own client, prefix `p`) that takes Redis's
   * clock to be `skewMs` on (before its first TIME reading it estimates with Date.now: moved), and
   * returns what it answered and how many scripts the client sent for it.
   */
  async function skewed<T>(p: string, skewMs: number, first: (store: RedisStore) => Promise<T>) {
    const realNow = Date.now;
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + skewMs);
    const client = new Redis({ host: '127.0.0.1', port: inject('redisPort'), lazyConnect: true });
    const sent = vi.spyOn(
      client as unknown as { evalshaBuffer(...args: unknown[]): unknown },
      'evalshaBuffer',
    );
    try {
      await client.connect();
      const store = new RedisStore({ client, prefix: p });
      const answer = await first(store);
      return { answer, scripts: sent.mock.calls.length, store };
    } finally {
      spy.mockRestore();
      await client.quit();
    }
  }

  it("a store that takes Redis's clock to be 2 hours off: the script refuses the period sent, the store resends Redis's own", async () => {
    const p = prefix();
    const policies = { limit: 2, window: { calendar: 'hour' } } as const;
    const { answer: first, scripts } = await skewed(p, 2 * HOUR, (store) =>
      createLimiter({ policies, store, logger: quiet }).consume('k'),
    );
    // Two commands: the hour two hours on, refused (nothing written), then Redis's hour.
    expect(scripts).toBe(2);
    const { start, end } = HOURS.periodAt(first.countedAt!);
    expect(view(first)).toEqual({
      allowed: true,
      remaining: 1,
      resetMs: end - first.countedAt!,
      retryAfterMs: 0,
      windowMs: end - start,
    });
    const limiter = createLimiter({
      policies,
      store: new RedisStore({ client: redis, prefix: p }),
      logger: quiet,
    });
    expect((await limiter.consume('k')).allowed).toBe(true);
    expect((await limiter.consume('k')).allowed).toBe(false);
  });

  it('the same for a peek, a refund and a set of several policies (a store 40 days off)', async () => {
    const p = prefix();
    const month = { name: 'month', limit: 5, window: { calendar: 'month' } } as const;
    const set = [month, { name: 'hourly', limit: 100, window: '1h' }] as const;
    const steady = new RedisStore({ client: redis, prefix: p });
    const one = createLimiter({ policies: month, store: steady, logger: quiet });
    const many = createLimiter({ policies: [...set], store: steady, logger: quiet });
    for (let i = 0; i < 3; i++) await one.consume('k');
    const peeked = await skewed(p, 40 * DAY, (store) =>
      createLimiter({ policies: month, store, logger: quiet }).peek('k'),
    );
    expect([peeked.scripts, peeked.answer.remaining, peeked.answer.allowed]).toEqual([2, 2, true]);
    const refunded = await skewed(p, 40 * DAY, (store) =>
      createLimiter({ policies: month, store, logger: quiet }).refund('k', 2),
    );
    expect(refunded.scripts).toBe(2);
    expect((await one.peek('k')).remaining).toBe(4);
    const both = await skewed(p, 40 * DAY, (store) =>
      createLimiter({ policies: [...set], store, logger: quiet }).consume('k', { cost: 2 }),
    );
    expect(both.scripts).toBe(2);
    expect(both.answer.policies.map((s) => [s.name, s.allowed, s.remaining, s.windowMs])).toEqual([
      [
        'month',
        true,
        3,
        MONTH.periodAt(both.answer.countedAt!).end - MONTH.periodAt(both.answer.countedAt!).start,
      ],
      ['hourly', true, 98, undefined],
    ]);
    expect((await many.peek('k')).policies.map((s) => s.remaining)).toEqual([3, 98]);
  });
});

/** An Express or a Koa app limited by `policies` on `store`, one key for every request. */
async function serve(framework: 'express' | 'koa', policies: Policy, store: Store) {
  const options = { policies, store, key: () => 'client', headers: 'draft-6' as const };
  let server: import('node:http').Server;
  if (framework === 'express') {
    const app = express();
    app.use(expressRateLimit(options));
    app.get('/', (_req, res) => void res.send('ok'));
    server = app.listen(0, '127.0.0.1');
  } else {
    const app = new Koa();
    app.use(koaRateLimit(options));
    app.use((ctx) => {
      ctx.body = 'ok';
    });
    server = app.listen(0, '127.0.0.1');
  }
  await new Promise((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    get: () => fetch(url),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The headers a client reads (draft-6), `RateLimit-Policy` parsed as RFC 9651 says. */
async function read(response: Response) {
  await response.text();
  const h = response.headers;
  const [policy] = parseList(h.get('ratelimit-policy')!);
  return {
    status: response.status,
    limit: h.get('ratelimit-limit'),
    remaining: h.get('ratelimit-remaining'),
    reset: Number(h.get('ratelimit-reset')),
    policyHeader: h.get('ratelimit-policy'),
    w: policy![1].get('w'),
    retryAfter: h.get('retry-after'),
  };
}

describe.each(['express', 'koa'] as const)('over HTTP with %s', (framework) => {
  it('on the last day of the month, RateLimit-Reset and Retry-After count to the boundary; w is the month', async () => {
    // 31 March 2026, 20:00 in New York (EDT): the month ends at midnight, 4 hours on.
    let t = Date.UTC(2026, 3, 1, 0);
    const app = await serve(
      framework,
      { limit: 2, window: { calendar: 'month', timeZone: NY } },
      new MemoryStore({ clock: () => t }),
    );
    try {
      const march = 743 * 3600;
      expect(await read(await app.get())).toEqual({
        status: 200,
        limit: '2',
        remaining: '1',
        reset: 4 * 3600,
        policyHeader: `2;w=${march}`,
        w: march,
        retryAfter: null,
      });
      t += 3 * HOUR + 59 * 60_000 + 59_001; // 23:59:59.001 local, 999 ms before the boundary
      expect((await read(await app.get())).reset).toBe(1);
      const denied = await app.get();
      const body = await denied.clone().json();
      expect(await read(denied)).toMatchObject({
        status: 429,
        remaining: '0',
        reset: 1,
        w: march,
        retryAfter: '1',
      });
      expect(body).toMatchObject({ retryAfter: 1, reset: 1, 'violated-policies': ['2-per-month'] });
      t += 999; // midnight, 1 April: a 720-hour April begins
      expect(await read(await app.get())).toMatchObject({
        status: 200,
        remaining: '1',
        reset: 720 * 3600,
        policyHeader: `2;w=${720 * 3600}`,
      });
    } finally {
      await app.close();
    }
  });

  it('on Redis TIME: RateLimit-Reset counts to the end of the current month as Redis tells it', async () => {
    const app = await serve(
      framework,
      { limit: 3, window: { calendar: 'month' } },
      new RedisStore({ client: redis, prefix: prefix() }),
    );
    const MONTH = new Calendar('month', 'UTC', 1);
    try {
      const before = await redisTime();
      const seen = await read(await app.get());
      const after = await redisTime();
      const { start, end } = MONTH.periodAt(before);
      expect(MONTH.periodAt(after).end, 'the test ran across a month boundary').toBe(end);
      expect(seen.reset).toBeGreaterThanOrEqual(Math.ceil((end - after) / 1000));
      expect(seen.reset).toBeLessThanOrEqual(Math.ceil((end - before) / 1000));
      expect(seen.w).toBe((end - start) / 1000);
      expect(seen.remaining).toBe('2');
    } finally {
      await app.close();
    }
  });
});
