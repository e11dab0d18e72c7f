/**
 * Usage recording and reports (issue 14): a scripted day of traffic from 3 tenants on 4 routes, over
 * real HTTP on Express and Koa, with the limiter and the usage on the memory stores and on Redis,
 * driven by one virtual clock; every report (each period, each tenant, all tenants) must equal the
 * one a model of the script computes. Then the bound: a million distinct raw paths.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import {
  MemoryStore,
  MemoryUsageStore,
  type RouteUsage,
  type Store,
  type TenantUsage,
  type UsagePeriod,
  type UsageReport,
  type UsageResult,
  type UsageStore,
} from '@tollgate/core';
import * as forExpress from '@tollgate/express';
import * as forKoa from '@tollgate/koa';
import { RedisStore, RedisUsageStore } from '@tollgate/redis';
import express from 'express';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startRedis } from './support/redis-servers.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** Midnight UTC of the scripted day. */
const DAY0 = Date.UTC(2026, 10, 30);
/** The report is read at 23:59:30 on the scripted day. */
const END = DAY0 + 24 * HOUR - 30_000;
const quiet = { warn: () => {}, error: () => {} };
/** Fixed window, 5 per minute per tenant: each burst opens a fresh window (bursts are > 1 min apart). */
const POLICY = { algorithm: 'fixed-window' as const, limit: 5, window: '1m' as const };

/** The four routes: template (as reported) and a raw path for a given id. */
const ROUTES = [
  { label: 'GET /users/:id', method: 'GET', path: (id: number) => `/users/${id}` },
  { label: 'POST /orders', method: 'POST', path: () => '/orders' },
  { label: 'GET /orders/:id', method: 'GET', path: (id: number) => `/orders/${id}` },
  { label: 'GET /catalog/items/:sku', method: 'GET', path: (id: number) => `/catalog/items/sku-${id}` },
];
const TENANTS = ['alpha', 'bravo', 'charlie'];
const apiKey = (tenant: number) => `${TENANTS[tenant]}-secret-token`;
/** The tenant as recorded: the limiter's key from `byApiKey()`, a digest (never the secret). */
const tenantLabel = (tenant: number) =>
  `key:${createHash('sha256').update(apiKey(tenant)).digest('base64url')}`;

interface Hit {
  at: number;
  tenant: number;
  route: number;
  id: number;
  /** Filled in by the model: what the limiter answers. */
  result: UsageResult;
}

/** A seeded PRNG (mulberry32), so the script is the same on every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * The day: per tenant, 30 bursts of 1 to 9 requests at distinct minutes at least 2 apart (so each
 * burst opens a fresh fixed window), four of them in the last hour, and a shared busy minute where
 * every tenant bursts at once (the all-tenants peak). Within a burst the first 5 are allowed.
 */
function scriptDay(): Hit[] {
  const next = random(14);
  const hits: Hit[] = [];
  TENANTS.forEach((_, tenant) => {
    const minutes = new Set<number>([600]); // 10:00, every tenant
    while (minutes.size < 26) minutes.add(Math.floor(next() * 1380)); // before 23:00
    while (minutes.size < 30) minutes.add(1380 + Math.floor(next() * 59)); // 23:00 to 23:58
    const sorted = [...minutes].sort((a, b) => a - b).filter((m, i, all) => i === 0 || m - all[i - 1]! >= 2);
    for (const minute of sorted) {
      const at = DAY0 + minute * MINUTE + Math.floor(next() * 30) * 1000;
      const size = minute === 600 ? 9 : 1 + Math.floor(next() * 9);
      for (let i = 0; i < size; i++) {
        hits.push({
          at,
          tenant,
          route: Math.floor(next() * ROUTES.length),
          id: Math.floor(next() * 1e6),
          result: i < POLICY.limit ? 'allowed' : 'limited',
        });
      }
    }
  });
  return hits.sort((a, b) => a.at - b.at || a.tenant - b.tenant);
}

const GRAIN: Record<UsagePeriod, { length: number; count: number; name: UsageReport['granularity'] }> = {
  hour: { length: MINUTE, count: 60, name: 'minute' },
  day: { length: HOUR, count: 24, name: 'hour' },
  week: { length: 24 * HOUR, count: 7, name: 'day' },
  month: { length: 24 * HOUR, count: 30, name: 'day' },
};

/** The report the script implies: counted by hand from the hits, independently of the stores. */
function expectedReport(hits: readonly Hit[], period: UsagePeriod, tenant: number | undefined): UsageReport {
  const { length, count, name } = GRAIN[period];
  const from = Math.floor(END / length) * length - (count - 1) * length;
  const mine = hits.filter(
    (h) => h.at >= from && h.at <= END && (tenant === undefined || h.tenant === tenant),
  );
  const tally = <K>(key: (h: Hit) => K) => {
    const counts = new Map<
      K,
      { requests: number; limited: number; results: Partial<Record<UsageResult, number>> }
    >();
    for (const hit of mine) {
      const k = key(hit);
      const c = counts.get(k) ?? { requests: 0, limited: 0, results: {} };
      c.requests++;
      if (hit.result === 'limited') c.limited++;
      c.results[hit.result] = (c.results[hit.result] ?? 0) + 1;
      counts.set(k, c);
    }
    return [...counts].sort(([a, x], [b, y]) => y.requests - x.requests || (String(a) < String(b) ? -1 : 1));
  };
  const total = tally(() => 'all')[0]?.[1] ?? { requests: 0, limited: 0, results: {} };
  const perMinute = tally((h) => Math.floor(h.at / MINUTE) * MINUTE);
  const busiest = perMinute.sort(([a, x], [b, y]) => y.requests - x.requests || a - b)[0];
  const report: UsageReport = {
    period,
    tenant: tenant === undefined ? null : tenantLabel(tenant),
    from: new Date(from).toISOString(),
    to: new Date(END).toISOString(),
    granularity: name,
    ...total,
    routes: tally((h) => ROUTES[h.route]!.label).map(([route, c]): RouteUsage => ({ route, ...c })),
    peak:
      busiest === undefined
        ? null
        : { minute: new Date(busiest[0]).toISOString(), requests: busiest[1].requests },
  };
  if (tenant === undefined) {
    report.tenants = tally((h) => tenantLabel(h.tenant)).map(([t, c]): TenantUsage => ({ tenant: t, ...c }));
  }
  return report;
}

type Framework = 'express' | 'koa';

/** An app with the four routes (one limiter on each), the caller's report and the admin's. */
function app(framework: Framework, store: Store, usageStore: UsageStore, clock: () => number) {
  if (framework === 'express') {
    const usage = forExpress.createUsage({ store: usageStore, clock, flushIntervalMs: '1h' });
    const limiter = forExpress.rateLimit({
      policies: POLICY,
      key: forExpress.byApiKey(),
      store,
      usage,
      logger: quiet,
    });
    const handler = (_req: express.Request, res: express.Response) => void res.json({ ok: true });
    const server = express();
    server.get('/users/:id', limiter, handler);
    server.post('/orders', limiter, handler);
    server.get('/orders/:id', limiter, handler);
    const catalog = express.Router();
    catalog.get('/items/:sku', limiter, handler);
    server.use('/catalog', catalog);
    server.get(
      '/usage',
      forExpress.usageReport({
        usage,
        tenant: forExpress.byApiKey(),
        admin: (req) => req.get('x-admin') === 'yes',
      }),
    );
    return { listener: server as RequestListener, usage };
  }
  const usage = forKoa.createUsage({ store: usageStore, clock, flushIntervalMs: '1h' });
  const limiter = forKoa.rateLimit({ policies: POLICY, key: forKoa.byApiKey(), store, usage, logger: quiet });
  const handler = (ctx: Koa.Context) => {
    ctx.body = { ok: true };
  };
  const router = new Router();
  router.get('/users/:id', limiter, handler);
  router.post('/orders', limiter, handler);
  router.get('/orders/:id', limiter, handler);
  router.get(
    '/usage',
    forKoa.usageReport({ usage, tenant: forKoa.byApiKey(), admin: (ctx) => ctx.get('x-admin') === 'yes' }),
  );
  const catalog = new Router({ prefix: '/catalog' });
  catalog.get('/items/:sku', limiter, handler);
  const server = new Koa();
  server.use(router.routes()).use(catalog.routes());
  return { listener: server.callback() as RequestListener, usage };
}

async function listen(listener: RequestListener): Promise<{ server: Server; base: string }> {
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const hits = scriptDay();

describe('a scripted day of usage', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis({ port: inject('redisPort'), lazyConnect: true });
  });
  afterAll(async () => {
    await redis.quit();
  });

  it('has the shape the acceptance asks for', () => {
    expect(new Set(hits.map((h) => h.tenant)).size).toBe(3);
    expect(new Set(hits.map((h) => h.route)).size).toBe(4);
    expect(hits.filter((h) => h.result === 'limited').length).toBeGreaterThan(20);
    expect(hits.filter((h) => h.at >= END - HOUR).length).toBeGreaterThan(10);
  });

  describe.each([
    ['express', 'memory'],
    ['koa', 'memory'],
    ['express', 'redis'],
    ['koa', 'redis'],
  ] as const)('%s, %s stores', (framework, stores) => {
    it('reports exactly what the script sent, for every period, tenant and all tenants', async () => {
      let now = DAY0;
      const clock = () => now;
      const prefix = `usage-${randomUUID()}:`;
      const store =
        stores === 'memory' ? new MemoryStore({ clock }) : new RedisStore({ client: redis, clock, prefix });
      const usageStore: UsageStore =
        stores === 'memory' ? new MemoryUsageStore() : new RedisUsageStore({ client: redis, prefix });
      const { listener, usage } = app(framework, store, usageStore, clock);
      const { server, base } = await listen(listener);
      try {
        for (const hit of hits) {
          now = hit.at;
          const route = ROUTES[hit.route]!;
          const response = await fetch(base + route.path(hit.id), {
            method: route.method,
            headers: { 'x-api-key': apiKey(hit.tenant) },
          });
          await response.arrayBuffer();
          expect(response.status).toBe(hit.result === 'allowed' ? 200 : 429);
        }
        now = END;
        const read = async (query: string, tenant?: number) => {
          const response = await fetch(`${base}/usage?${query}`, {
            headers: tenant === undefined ? { 'x-admin': 'yes' } : { 'x-api-key': apiKey(tenant) },
          });
          expect(response.status).toBe(200);
          return response.json();
        };
        for (const period of ['hour', 'day', 'week', 'month'] as const) {
          for (const tenant of [0, 1, 2]) {
            expect(await read(`period=${period}`, tenant)).toEqual(expectedReport(hits, period, tenant));
          }
          expect(await read(`period=${period}&tenant=*`)).toEqual(expectedReport(hits, period, undefined));
        }
        // The same through the read API a dashboard calls, and an admin reading one tenant.
        expect(await usage.report({ period: 'day' })).toEqual(expectedReport(hits, 'day', undefined));
        expect(await read(`period=week&tenant=${encodeURIComponent(tenantLabel(1))}`)).toEqual(
          expectedReport(hits, 'week', 1),
        );
        expect(await usage.topRoutes({ period: 'day', limit: 2 })).toEqual(
          expectedReport(hits, 'day', undefined).routes.slice(0, 2),
        );
        expect(await usage.tenants({ period: 'hour' })).toEqual(
          expectedReport(hits, 'hour', undefined).tenants,
        );
      } finally {
        await new Promise((resolve) => server.close(resolve));
        await usage.close();
      }
    });
  });
});

describe('bounded usage', () => {
  const RAW_PATHS = 1_000_000;
  const MAX_ROUTES = 50;
  /** Results recorded: allowed and limited. */
  const RESULTS = 2;
  /** Per bucket: all, routes, peak, peak minute; per named route (and `(other)`) its total and each result's; per tenant each result's. */
  const FIELDS_PER_BUCKET = 4 + (MAX_ROUTES + 1) * (1 + RESULTS) + TENANTS.length * RESULTS;

  /**
   * A route function that returns the raw URL (the mistake the caps are for), seen through
   * `usage.record`: a million distinct paths from 3 tenants over 100 minutes, flushed every 10.
   */
  async function recordRawPaths(store: UsageStore): Promise<ReturnType<typeof createUsageFor>> {
    let now = DAY0 + 10 * HOUR;
    const usage = createUsageFor(store, () => now);
    for (let i = 0; i < RAW_PATHS; i++) {
      if (i % 10_000 === 0 && i > 0) now += MINUTE;
      if (i % 100_000 === 0) await usage.flush();
      usage.record({
        tenant: TENANTS[i % 3]!,
        route: `GET /files/${i}/${i * 7}`,
        result: i % 10 ? 'allowed' : 'limited',
      });
    }
    await usage.flush();
    return usage;
  }
  const warnings: string[] = [];
  const createUsageFor = (store: UsageStore, clock: () => number) =>
    forExpress.createUsage({
      store,
      clock,
      maxRoutes: MAX_ROUTES,
      flushIntervalMs: '1h',
      logger: { warn: (message) => warnings.push(message), error: () => undefined },
    });

  async function expectExactTotals(usage: ReturnType<typeof createUsageFor>) {
    const report = await usage.report({ period: 'day' });
    expect(report.requests).toBe(RAW_PATHS);
    expect(report.limited).toBe(RAW_PATHS / 10);
    expect(report.routes.length).toBeLessThanOrEqual(MAX_ROUTES + 1);
    expect(report.routes.at(-1)!.route).toBe('(other)');
    expect(report.tenants!.map((t) => t.requests).sort()).toEqual([333_333, 333_333, 333_334]);
    // Told once per usage that its route labels look like raw URLs.
    expect(warnings.splice(0).map((w) => w.slice(0, w.indexOf(']') + 1))).toEqual([
      '[TOLLGATE_USAGE_ROUTES]',
    ]);
  }

  it('keeps a MemoryUsageStore at its bound under 1 000 000 distinct raw paths, and every count', async () => {
    const store = new MemoryUsageStore();
    const usage = await recordRawPaths(store);
    const { tenants, buckets, fields } = store.stats();
    // (3 tenants + all) x (101 minutes + 2 hours + 1 day)
    expect(tenants).toBe(3);
    expect(buckets).toBeLessThanOrEqual(4 * (101 + 2 + 1));
    expect(fields).toBeLessThanOrEqual(buckets * FIELDS_PER_BUCKET);
    await expectExactTotals(usage);
    await usage.close();
  });

  it('keeps Redis at its bound under 1 000 000 distinct raw paths, and every count', async () => {
    const redis = new Redis({ port: inject('redisPort') });
    try {
      const store = new RedisUsageStore({ client: redis, prefix: `usage-${randomUUID()}:` });
      const usage = await recordRawPaths(store);
      const keys: string[] = [];
      for await (const page of redis.scanStream({ match: store.pattern, count: 1000 })) keys.push(...page);
      const buckets = keys.filter((k) => !k.includes(':batch:') && !k.endsWith(':tenants'));
      expect(buckets.length).toBeLessThanOrEqual(4 * (101 + 2 + 1));
      const sizes = await Promise.all(buckets.map((k) => redis.hlen(k)));
      expect(Math.max(...sizes)).toBeLessThanOrEqual(FIELDS_PER_BUCKET);
      expect(await redis.zcard(`${store.pattern.slice(0, -1)}tenants`)).toBe(3);
      await expectExactTotals(usage);
      await usage.close();
    } finally {
      await redis.quit();
    }
  });

  it('records raw URLs no route matched as (unmatched), on Express and Koa, never the path', async () => {
    const redis = new Redis({ port: inject('redisPort') });
    const usageStore = new RedisUsageStore({ client: redis, prefix: `usage-${randomUUID()}:` });
    const express5 = express();
    const warned: string[] = [];
    const logger = { warn: (message: string) => warned.push(message), error: () => undefined };
    const onExpress = forExpress.createUsage({ store: usageStore, logger });
    express5.use(
      forExpress.rateLimit({ policies: POLICY, store: new MemoryStore(), usage: onExpress, logger: quiet }),
    );
    const koa = new Koa();
    const onKoa = forKoa.createUsage({ store: usageStore, logger });
    koa.use(forKoa.rateLimit({ policies: POLICY, store: new MemoryStore(), usage: onKoa, logger: quiet }));
    koa.use(
      new Router()
        .get('/known', (ctx) => {
          ctx.body = 'ok';
        })
        .routes(),
    );
    const servers = [await listen(express5 as RequestListener), await listen(koa.callback())];
    try {
      for (const { base } of servers) {
        for (let i = 0; i < 100; i++) await (await fetch(`${base}/raw/${randomUUID()}?q=${i}`)).arrayBuffer();
      }
      await onExpress.flush();
      const report = await onKoa.report({ period: 'hour' });
      expect(report.requests).toBe(200);
      expect(report.limited).toBe(190); // 5 per minute per IP and limiter
      expect(report.routes.map((r) => r.route)).toEqual(['(unmatched)']);
      // Each usage says once that its limiter's denials cannot be told apart by route.
      expect(warned.map((w) => w.slice(0, w.indexOf(']') + 1))).toEqual([
        '[TOLLGATE_USAGE_UNROUTED_DENIAL]',
        '[TOLLGATE_USAGE_UNROUTED_DENIAL]',
      ]);
      const keys: string[] = [];
      for await (const page of redis.scanStream({ match: usageStore.pattern, count: 1000 }))
        keys.push(...page);
      for (const key of keys.filter((k) => !k.includes(':batch:'))) {
        const type = await redis.type(key);
        const content = type === 'hash' ? await redis.hkeys(key) : await redis.zrange(key, 0, -1);
        expect(content.join(' ')).not.toContain('/raw/');
      }
    } finally {
      for (const { server } of servers) await new Promise((resolve) => server.close(resolve));
      await onExpress.close();
      await onKoa.close();
      await redis.quit();
    }
  });
});

describe('usage on a failing Redis', () => {
  it('keeps the counts while Redis is down and writes each once when it is back; SCRIPT FLUSH is harmless', async () => {
    // Append-only with fsync: what Redis took before the crash survives it, as in production.
    const server = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    const redis = new Redis({ port: server.port, retryStrategy: () => 50 });
    redis.on('error', () => undefined);
    const errors: string[] = [];
    let now = DAY0 + HOUR;
    const usage = forExpress.createUsage({
      store: new RedisUsageStore({ client: redis, timeoutMs: 300 }),
      clock: () => now,
      flushIntervalMs: '1h',
      logger: { warn: () => undefined, error: (message) => errors.push(message) },
    });
    const record = (n: number, route: string) => {
      for (let i = 0; i < n; i++) usage.record({ tenant: 'acme', route, result: 'allowed' });
    };
    try {
      record(10, 'GET /a');
      await usage.flush();
      await redis.script('FLUSH');
      record(5, 'GET /b');
      await usage.flush(); // NOSCRIPT: the script's text is sent instead
      await server.kill();
      record(7, 'GET /a');
      await expect(usage.flush()).rejects.toMatchObject({ name: 'StoreError' });
      now += MINUTE;
      record(3, 'GET /c');
      await expect(usage.flush()).rejects.toMatchObject({ name: 'StoreError' });
      expect(errors).toHaveLength(1); // once per failure streak
      expect(errors[0]).toContain('kept, tried again');
      await server.restart();
      const deadline = Date.now() + 15_000;
      for (;;) {
        try {
          await usage.flush();
          break;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      const report = await usage.report({ period: 'hour', tenant: 'acme' });
      expect(report.requests).toBe(25);
      expect(report.routes.map((r) => [r.route, r.requests])).toEqual([
        ['GET /a', 17],
        ['GET /b', 5],
        ['GET /c', 3],
      ]);
      expect(report.peak).toEqual({ minute: new Date(DAY0 + HOUR).toISOString(), requests: 22 });
    } finally {
      await usage.close().catch(() => undefined);
      redis.disconnect();
      await server.stop();
    }
  });
});

describe('what a request is recorded as', () => {
  it('two limiters sharing a usage record a request once, with the more severe result (Express)', async () => {
    const usage = forExpress.createUsage({ tenant: (req) => req.get('x-org') });
    const server = express();
    server.use(forExpress.rateLimit({ policies: { limit: 100, window: '1m' }, usage, logger: quiet }));
    const tight = forExpress.rateLimit({
      policies: { limit: 1, window: '1m' },
      name: 'tight',
      usage,
      logger: quiet,
    });
    server.get('/things/:id', tight, (_req, res) => void res.send('ok'));
    const { server: http, base } = await listen(server as RequestListener);
    try {
      for (const id of [1, 2, 3])
        await (await fetch(`${base}/things/${id}`, { headers: { 'x-org': 'acme' } })).text();
      const report = await usage.report({ period: 'hour', tenant: 'acme' });
      expect(report).toMatchObject({ requests: 3, limited: 2, results: { allowed: 1, limited: 2 } });
      expect(report.routes).toEqual([
        { route: 'GET /things/:id', requests: 3, limited: 2, results: { allowed: 1, limited: 2 } },
      ]);
    } finally {
      await new Promise((resolve) => http.close(resolve));
      await usage.close();
    }
  });

  it('records a denial Koa throws (throw: true) under its route', async () => {
    const usage = forKoa.createUsage();
    const router = new Router({ prefix: '/api' });
    router.get(
      '/things/:id',
      forKoa.rateLimit({ policies: { limit: 1, window: '1m' }, throw: true, usage, logger: quiet }),
      (ctx) => {
        ctx.body = 'ok';
      },
    );
    const app = new Koa();
    app.use(router.routes());
    const { server, base } = await listen(app.callback());
    try {
      const statuses = [];
      for (const id of [1, 2]) {
        const response = await fetch(`${base}/api/things/${id}`);
        await response.text();
        statuses.push(response.status);
      }
      expect(statuses).toEqual([200, 429]);
      const report = await usage.report({ period: 'hour' });
      expect(report.routes).toEqual([
        { route: 'GET /api/things/:id', requests: 2, limited: 1, results: { allowed: 1, limited: 1 } },
      ]);
      expect(report.tenants).toEqual([
        { tenant: 'ip:127.0.0.1', requests: 2, limited: 1, results: { allowed: 1, limited: 1 } },
      ]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await usage.close();
    }
  });
});
