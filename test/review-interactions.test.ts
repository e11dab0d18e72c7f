/**
 * Features built in parallel, used together (issues 12, 13, 14): calendar windows, reservations
 * (reserve, then settle, with maxDebt), shadow policies and bans in one policy set, on the
 * MemoryStore and on a real Redis and Redis Cluster, through the limiter and over HTTP (Express and
 * Koa), with the events, the status endpoint and usage watching.
 *
 * - The two stores decide identically on random traffic mixing every one of them, and a concurrency
 *   policy whose slots are released or left to their lease (the Redis
 *   several-policy scripts, 7 values per policy, with and without a ban slot).
 * - SCRIPT FLUSH before every call of a set with bans (a lone shadow policy, a lone calendar policy,
 *   a calendar + shadow + bucket set) fails nothing, on Redis TIME.
 * - Over HTTP: a calendar month beside a shadow policy with bans and `settle`, each answer's
 *   `tollgate:decision` result, a status endpoint that counts nothing while the key is banned, and
 *   usage counting every result.
 * - A ban beside a calendar and a shadow policy outlives a Redis killed and restarted (AOF on).
 */
import { randomUUID } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import {
  type BanOptions,
  createLimiter,
  DECISION_CHANNEL,
  type Decision,
  type DecisionMessage,
  type Limiter,
  MemoryStore,
  type Policy,
  type RatePolicy,
  type Reservation,
  type Store,
} from '@tollgate/core';
import * as forExpress from '@tollgate/express';
import * as forKoa from '@tollgate/koa';
import { RedisStore } from '@tollgate/redis';
import express from 'express';
import fc from 'fast-check';
import { Cluster, Redis } from 'ioredis';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startRedis } from './support/redis-servers.ts';

const quiet = { warn: () => undefined, error: () => undefined };
const NY = 'America/New_York';
/**
 * The stores' timeout in the tests that compare exact answers: on a loaded machine a call may take
 * longer than the default 500 ms, and a fail-open answer would then differ for no fault of the code.
 */
const SLOW = '10s';

let redis: Redis;
let cluster: Cluster;
beforeAll(async () => {
  redis = new Redis({ host: '127.0.0.1', port: inject('redisPort'), lazyConnect: true });
  cluster = new Cluster(inject('clusterNodes'), { lazyConnect: true });
  await Promise.all([redis.connect(), cluster.connect()]);
});
afterAll(async () => {
  await Promise.allSettled([redis.quit(), cluster.quit()]);
});

/** What two stores must agree on: everything a Decision says, settles' answers included. */
const seen = (d: Decision) => ({
  allowed: d.allowed,
  reason: d.reason,
  remaining: d.remaining,
  retryAfterMs: d.retryAfterMs,
  resetMs: d.resetMs,
  policy: d.policy.name,
  shadowLimited: d.shadowLimited,
  countedAt: d.countedAt,
  policies: d.policies.map((p) => ({
    name: p.name,
    allowed: p.allowed,
    remaining: p.remaining,
    resetMs: p.resetMs,
    retryAfterMs: p.retryAfterMs,
    windowMs: p.windowMs,
    uncharged: p.uncharged,
  })),
});

describe('MemoryStore and RedisStore decide identically with every new capability in one set', () => {
  const policy: fc.Arbitrary<RatePolicy> = fc.oneof(
    fc.record({
      algorithm: fc.constant('fixed-window' as const),
      limit: fc.integer({ min: 1, max: 5 }),
      window: fc.record({
        calendar: fc.constantFrom('hour' as const, 'day' as const),
        timeZone: fc.constantFrom('UTC', NY),
      }),
    }),
    fc.record({
      algorithm: fc.constantFrom(
        'fixed-window' as const,
        'sliding-window' as const,
        'token-bucket' as const,
        'leaky-bucket' as const,
      ),
      limit: fc.integer({ min: 1, max: 5 }),
      window: fc.integer({ min: 1, max: 3000 }),
    }),
  );
  const ban: fc.Arbitrary<BanOptions | undefined> = fc.oneof(
    fc.constant(undefined),
    fc.constant({}),
    fc.record({
      after: fc.integer({ min: 1, max: 3 }),
      within: fc.integer({ min: 100, max: 5000 }),
      for: fc.integer({ min: 1, max: 5000 }),
    }),
  );
  const op = fc.record({
    // Up to 4 000 000 ms: clock hours and New York days end within a run.
    advance: fc.oneof(
      fc.constant(0),
      fc.integer({ min: 0, max: 50 }),
      fc.integer({ min: 0, max: 4_000_000 }),
    ),
    kind: fc.constantFrom(
      'consume',
      'consume',
      'consume',
      'peek',
      'refund',
      'refund-counted',
      'reserve',
      'ban',
      'unban',
      'reset',
      'release',
    ),
    cost: fc.integer({ min: 0, max: 4 }),
    actual: fc.integer({ min: 0, max: 10 }),
    /** Settle at once, or at the next step that moves the clock (perhaps past a period's end). */
    later: fc.boolean(),
  });

  it.each([
    ['Redis', 150, () => redis],
    ['Redis Cluster', 60, () => cluster],
  ] as const)(
    '%s: calendar + shadow + maxDebt + bans + concurrency, reserve/settle, releases, refunds counted at',
    async (_name, runs, client) => {
      /** Slots taken and released across the runs: so that a generator that reaches none shows. */
      const slots = { held: 0, released: 0 };
      // The runs are random: a round whose draws took or released few slots (60 runs on the Cluster
      // released 5 once) is followed by another, at most three in all, before the counts are judged.
      for (let round = 0; round < 3 && (slots.held <= 20 || slots.released <= 5); round++)
        await fc.assert(
          fc.asyncProperty(
            fc.array(
              fc.tuple(
                policy,
                fc.constantFrom('enforce' as const, 'shadow' as const),
                fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined }),
              ),
              { minLength: 1, maxLength: 3 },
            ),
            ban,
            fc.option(
              fc.record({ limit: fc.integer({ min: 1, max: 3 }), lease: fc.integer({ min: 1, max: 5000 }) }),
              { nil: undefined },
            ),
            fc.integer({ min: 1_700_000_000_000, max: 1_800_000_000_000 }),
            fc.array(op, { minLength: 1, maxLength: 30 }),
            async (drawn, banOptions, concurrency, start, ops) => {
              let now = start;
              const clock = () => now;
              const policies = drawn.map(
                ([p, mode, maxDebt], i): RatePolicy => ({
                  ...(p as RatePolicy),
                  mode,
                  name: `p${i}`,
                  ...(maxDebt === undefined ? {} : { maxDebt }),
                }),
              );
              const all: Policy[] =
                concurrency === undefined
                  ? policies
                  : [...policies, { name: 'flight', algorithm: 'concurrency', ...concurrency }];
              const make = (store: Store): Limiter =>
                createLimiter({
                  store,
                  policies: all,
                  blockedCache: false,
                  logger: quiet,
                  ...(banOptions === undefined ? {} : { ban: { ...banOptions, recheck: false } }),
                });
              const memory = make(new MemoryStore({ clock }));
              const remote = make(
                new RedisStore({
                  client: client(),
                  clock,
                  prefix: `review:${randomUUID()}:`,
                  timeoutMs: SLOW,
                }),
              );
              const log: string[] = [];
              const same = (a: Decision, b: Decision) => expect(seen(b), log.join('\n')).toEqual(seen(a));
              let last: [Decision | undefined, Decision | undefined] = [undefined, undefined];
              const pending: [Reservation, Reservation, number][] = [];
              /** Decisions holding a slot of the concurrency policy, oldest first. */
              const held: [Decision, Decision][] = [];
              const hold = (a: Decision, b: Decision) => {
                expect(typeof b.release, log.join('\n')).toBe(typeof a.release);
                if (a.release === undefined) return;
                held.push([a, b]);
                slots.held++;
              };
              for (const { advance, kind, cost, actual, later } of ops) {
                now += advance;
                log.push(`+${advance} ms: ${kind} cost ${cost} actual ${actual}${later ? ' later' : ''}`);
                if (kind === 'consume') {
                  last = [await memory.consume('k', { cost }), await remote.consume('k', { cost })];
                  same(last[0]!, last[1]!);
                  hold(last[0]!, last[1]!);
                } else if (kind === 'peek') {
                  same(await memory.peek('k'), await remote.peek('k'));
                } else if (kind === 'refund') {
                  await memory.refund('k', cost);
                  await remote.refund('k', cost);
                } else if (kind === 'refund-counted') {
                  await memory.refund('k', cost, { countedAt: last[0]?.countedAt ?? now });
                  await remote.refund('k', cost, { countedAt: last[1]?.countedAt ?? now });
                } else if (kind === 'reserve') {
                  const a = await memory.reserve('k', { cost });
                  const b = await remote.reserve('k', { cost });
                  same(a.decision, b.decision);
                  hold(a.decision, b.decision);
                  if (later) pending.push([a, b, actual]);
                  else same(await a.settle(actual), await b.settle(actual));
                } else if (kind === 'ban' || kind === 'unban') {
                  if (banOptions === undefined) continue;
                  if (kind === 'ban') {
                    await memory.ban('k', cost * 1000 + 1);
                    await remote.ban('k', cost * 1000 + 1);
                  } else {
                    await memory.unban('k');
                    await remote.unban('k');
                  }
                } else if (kind === 'release') {
                  const [a, b] = held.shift() ?? [];
                  if (a !== undefined) slots.released++;
                  await a?.release?.();
                  await b?.release?.();
                } else {
                  await memory.reset('k');
                  await remote.reset('k');
                }
                if (pending.length > 0 && advance > 0) {
                  const [a, b, settleWith] = pending.shift()!;
                  log.push(`settle the earliest open reservation with ${settleWith}`);
                  same(await a.settle(settleWith), await b.settle(settleWith));
                }
              }
              same(await memory.peek('k'), await remote.peek('k'));
            },
          ),
          { numRuns: runs },
        );
      expect(slots.held).toBeGreaterThan(20);
      expect(slots.released).toBeGreaterThan(5);
    },
  );
});

describe('SCRIPT FLUSH before every call of a set with bans fails nothing (Redis TIME)', () => {
  const SETS: [string, Policy | Policy[]][] = [
    ['a lone shadow policy', { algorithm: 'fixed-window', limit: 3, window: '1h', mode: 'shadow' }],
    [
      'a lone calendar policy',
      { algorithm: 'fixed-window', limit: 3, window: { calendar: 'day', timeZone: NY } },
    ],
    [
      'calendar + shadow + token bucket',
      [
        { name: 'day', algorithm: 'fixed-window', limit: 3, window: { calendar: 'day', timeZone: NY } },
        { name: 'trial', limit: 1, window: '1h', mode: 'shadow' },
        { name: 'tb', algorithm: 'token-bucket', limit: 10, window: '1h' },
      ],
    ],
  ];
  for (const topology of ['standalone', 'cluster'] as const) {
    it.each(SETS)(`${topology}: %s`, async (_name, policies) => {
      const client = topology === 'standalone' ? redis : cluster;
      const flush = async () => {
        const nodes = client instanceof Cluster ? client.nodes('master') : [client];
        await Promise.all(nodes.map((node) => node.script('FLUSH')));
      };
      const logged: string[] = [];
      const limiter = createLimiter({
        policies,
        store: new RedisStore({ client, prefix: `review-flush:${randomUUID()}:`, timeoutMs: SLOW }),
        ban: { after: 2, within: '1m', for: '2d' },
        logger: { warn: (m) => logged.push(m), error: (m) => logged.push(m) },
      });
      const flushed = async <T>(call: () => Promise<T>): Promise<T> => {
        await flush();
        return call();
      };
      const lone = !Array.isArray(policies);
      const shadowOnly = lone && policies.mode === 'shadow';
      const decisions: Decision[] = [];
      for (let i = 0; i < 3; i++) decisions.push(await flushed(() => limiter.consume('k')));
      expect(decisions.map((d) => [d.allowed, d.reason])).toEqual([
        [true, undefined],
        [true, undefined],
        [true, undefined],
      ]);
      expect((await flushed(() => limiter.peek('k'))).allowed).toBe(shadowOnly);
      await flushed(() => limiter.refund('k', 1));
      const reservation = await flushed(() => limiter.reserve('k', { cost: 1 }));
      expect([reservation.decision.allowed, reservation.decision.reason]).toEqual([true, undefined]);
      // Settled at 2: the 3-per-day policy is 1 over (its maxDebt is 3), so a cost-1 request is denied.
      const settled = await flushed(() => reservation.settle(2));
      expect(settled.allowed).toBe(shadowOnly);
      await flushed(() => limiter.ban('k', 60_000));
      const banned = await flushed(() => limiter.consume('k'));
      expect([banned.allowed, banned.reason]).toEqual([false, 'banned']);
      // Real time passes between the ban and the request (Redis TIME, the ban cache's monotonic clock).
      expect(banned.retryAfterMs).toBeGreaterThan(55_000);
      expect(banned.retryAfterMs).toBeLessThanOrEqual(60_000);
      await flushed(() => limiter.unban('k'));
      const unbanned = await flushed(() => limiter.consume('k'));
      expect([unbanned.allowed, unbanned.reason]).toEqual([shadowOnly, undefined]);
      expect(logged).toEqual([]);
    });
  }
});

describe('over HTTP: a calendar month, a shadow policy, bans and settle, watched by events, status and usage', () => {
  /** 15 April 2026, noon UTC: a month of 30 days, 15.5 days before its end. */
  const APRIL_15_NOON = Date.UTC(2026, 3, 15, 12);
  const APRIL = 30 * 86_400;
  const POLICIES: Policy[] = [
    { name: 'month', algorithm: 'fixed-window', limit: 4, window: { calendar: 'month' } },
    { name: 'trial', limit: 2, window: '1h', mode: 'shadow' },
  ];
  const BAN: BanOptions = { after: 2, within: '1m', for: '1h' };
  /** The handler reports its actual cost in `x-actual` (?actual=), which `settle` reads on close. */
  const settle = (_req: unknown, res: object) => {
    const actual = (res as ServerResponse).getHeader('x-actual');
    return actual === undefined ? undefined : Number(actual);
  };

  function app(framework: 'express' | 'koa', store: Store, clock: () => number, name: string) {
    const common = {
      name,
      store,
      policies: POLICIES,
      ban: BAN,
      headers: 'draft-7',
      logger: quiet,
      settle,
    } as const;
    if (framework === 'express') {
      const usage = forExpress.createUsage({ clock, flushIntervalMs: '1h' });
      const limiter = forExpress.rateLimit({ ...common, key: forExpress.byHeader('x-user'), usage });
      const server = express();
      server.get('/api', limiter, (req, res) => {
        if (typeof req.query.actual === 'string') res.setHeader('x-actual', req.query.actual);
        res.send('ok');
      });
      server.get('/rate_limit', forExpress.rateLimitStatus({ limiters: [limiter] }));
      return { listener: server as unknown as RequestListener, usage, limiter: limiter.limiter };
    }
    const usage = forKoa.createUsage({ clock, flushIntervalMs: '1h' });
    const limiter = forKoa.rateLimit({ ...common, key: forKoa.byHeader('x-user'), usage });
    const router = new Router();
    router.get('/api', limiter, (ctx) => {
      if (typeof ctx.query.actual === 'string') ctx.set('x-actual', ctx.query.actual);
      ctx.body = 'ok';
    });
    router.get('/rate_limit', forKoa.rateLimitStatus({ limiters: [limiter] }));
    const server = new Koa();
    server.use(router.routes());
    return { listener: server.callback() as RequestListener, usage, limiter: limiter.limiter };
  }

  async function listen(listener: RequestListener): Promise<{ server: Server; base: string }> {
    const server = createServer(listener);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }

  it.each([
    ['express', 'memory'],
    ['koa', 'memory'],
    ['express', 'redis'],
    ['koa', 'redis'],
  ] as const)('%s, %s store', async (framework, kind) => {
    let now = APRIL_15_NOON;
    const clock = () => now;
    const store =
      kind === 'memory'
        ? new MemoryStore({ clock })
        : new RedisStore({ client: redis, clock, prefix: `review-http:${randomUUID()}:`, timeoutMs: SLOW });
    const name = `review-${framework}-${kind}`;
    const { listener, usage, limiter } = app(framework, store, clock, name);
    const { server, base } = await listen(listener);
    const events: DecisionMessage[] = [];
    const onDecision = (message: unknown) => {
      if ((message as DecisionMessage).limiter === name) events.push(message as DecisionMessage);
    };
    subscribe(DECISION_CHANNEL, onDecision);
    try {
      const get = async (path: string) => {
        const response = await fetch(`${base}${path}`, { headers: { 'x-user': 'u1' } });
        return { response, text: await response.text() };
      };
      // Reserved 1, settled 2 on close: the month has used 2 of 4 and the trial 2 of 2.
      const first = await get('/api?actual=2');
      expect(first.response.status).toBe(200);
      expect(first.response.headers.get('ratelimit-policy')).toBe(`4;w=${APRIL}`);
      const key = events[0]!.key;
      for (let i = 0; i < 1000 && (await limiter.peek(key)).policies[0]!.remaining !== 2; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect((await limiter.peek(key)).policies.map((p) => p.remaining)).toEqual([2, 0]);

      const answers = [];
      for (let i = 0; i < 5; i++) answers.push((await get('/api')).response);
      expect(answers.map((r) => r.status)).toEqual([200, 200, 429, 429, 429]);
      expect(events.map((e) => e.result)).toEqual([
        'allowed',
        'shadow_limited',
        'shadow_limited',
        'limited',
        'banned',
        'banned',
      ]);
      expect(events.map((e) => e.decision.shadowLimited)).toEqual([
        undefined,
        ['trial'],
        ['trial'],
        // Denied by the month: the shadow policy would have denied it too (it is listed either way).
        ['trial'],
        // Banned: no policy ran.
        undefined,
        undefined,
      ]);
      // The shadow policy shows nowhere; the month's period is April's 30 days.
      for (const r of answers.slice(0, 3)) expect(r.headers.get('ratelimit-policy')).toBe(`4;w=${APRIL}`);
      expect(answers[2]!.headers.get('retry-after')).toBe(String(15.5 * 86_400));
      expect(answers[3]!.headers.get('retry-after')).toBe('3600');
      expect(answers[4]!.headers.get('retry-after')).toBe('3600');

      // The status endpoint while banned: refused for the ban's time left, and nothing is counted.
      const decisions = events.length;
      let status: unknown;
      for (let i = 0; i < 20; i++) status = JSON.parse((await get('/rate_limit')).text);
      expect(events.length).toBe(decisions);
      expect(status).toMatchObject({ limiters: { [name]: { allowed: false, retryAfter: 3600 } } });

      await usage.flush();
      const report = await usage.report({ period: 'day', tenant: key });
      expect([report.requests, report.limited, report.results]).toEqual([
        6,
        1,
        { allowed: 1, limited: 1, shadow_limited: 2, banned: 2 },
      ]);

      // The ban ends: the month is still spent (the status calls counted nothing, not even denials).
      now += 3_600_000;
      const after = JSON.parse((await get('/rate_limit')).text);
      expect(after.limiters[name]).toEqual({
        allowed: false,
        retryAfter: 15.5 * 86_400 - 3600,
        policies: [
          {
            name: 'month',
            algorithm: 'fixed-window',
            limit: 4,
            remaining: 0,
            used: 4,
            reset: 15.5 * 86_400 - 3600,
            window: APRIL,
          },
        ],
      });
      const again = await get('/api');
      expect(again.response.status).toBe(429);
      expect(again.response.headers.get('retry-after')).toBe(String(15.5 * 86_400 - 3600));
      expect(events.at(-1)!.result).toBe('limited');
    } finally {
      unsubscribe(DECISION_CHANNEL, onDecision);
      await new Promise((resolve) => server.close(resolve));
      await usage.close();
    }
  });
});

describe('a ban beside a calendar and a shadow policy outlives a Redis killed and restarted (AOF on)', () => {
  it('another process (a fresh limiter) is refused for the ban left, from Redis', async ({
    onTestFinished,
  }) => {
    const server = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    onTestFinished(() => server.stop());
    const client = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true });
    client.on('error', () => undefined);
    onTestFinished(() => client.disconnect());
    await client.connect();
    const prefix = `review-restart:${randomUUID()}:`;
    const make = () =>
      createLimiter({
        policies: [
          { name: 'day', algorithm: 'fixed-window', limit: 2, window: { calendar: 'day', timeZone: NY } },
          { name: 'trial', limit: 1, window: '1h', mode: 'shadow' },
        ],
        store: new RedisStore({ client, prefix }),
        ban: { after: 2, within: '1m', for: '1d' },
        logger: quiet,
      });
    const first = make();
    const results = [];
    for (let i = 0; i < 4; i++) {
      const d = await first.consume('k');
      results.push([d.allowed, d.reason, d.shadowLimited]);
    }
    expect(results).toEqual([
      [true, undefined, undefined],
      [true, undefined, ['trial']],
      [false, undefined, ['trial']],
      [false, 'banned', undefined],
    ]);
    await server.kill();
    await server.restart();
    const second = make();
    let d = await second.consume('k');
    for (
      const deadline = performance.now() + 5_000;
      d.reason === 'store-error' && performance.now() < deadline;
    ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      d = await second.consume('k');
    }
    expect([d.allowed, d.reason]).toEqual([false, 'banned']);
    expect(d.retryAfterMs).toBeGreaterThan(86_400_000 - 10_000);
    expect(d.retryAfterMs).toBeLessThanOrEqual(86_400_000);
  });
});
