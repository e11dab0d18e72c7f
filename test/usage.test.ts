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
