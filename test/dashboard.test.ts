/**
 * Issue 14: the live dashboard in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core), over real Express and Koa apps on 127.0.0.1, with a real Redis that is killed
 * mid-test for the store-health view. The page must load with no console error, show the exact
 * counts of the traffic the test sends and follow it live; a screenshot goes to test/output/ (and
 * to docs/dashboard.png for the README when TOLLGATE_DOCS_SCREENSHOT=1).
 */

import { channel } from 'node:diagnostics_channel';
import { existsSync, mkdirSync } from 'node:fs';
import { get, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import Router from '@koa/router';
import { DECISION_CHANNEL, isConfigError, MemoryStore } from '@tollgate/core';
import * as tollExpress from '@tollgate/express';
import * as tollKoa from '@tollgate/koa';
import { RedisStore } from '@tollgate/redis';
import express from 'express';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { type RedisServer, startRedis } from './support/redis-servers.ts';

const CHROMIUM = '/usr/bin/chromium';
const OUTPUT = fileURLToPath(new URL('./output/', import.meta.url));
const DOCS_SCREENSHOT = fileURLToPath(new URL('../docs/dashboard.png', import.meta.url));
const quiet = { warn: () => undefined, error: () => undefined };
/** Operators carry this cookie; the guard admits nobody else. */
const COOKIE = { name: 'role', value: 'operator' };
const isOperator = (cookie: string | undefined) => cookie?.split(/;\s*/).includes('role=operator') === true;

/** The little of the DOM that the functions run in the page use (the tests compile without the DOM lib). */
interface PageElement {
  readonly textContent: string | null;
  readonly outerHTML: string;
  getAttribute(name: string): string | null;
}
declare const document: {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): Iterable<PageElement>;
  readonly documentElement: PageElement;
};

let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `This test drives Debian's Chromium at ${CHROMIUM}: apt-get install chromium (.ci/run does).`,
    );
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
});
afterAll(async () => {
  await browser?.close();
});

interface Running {
  url: string;
  dashboard: { readonly clients: number; close(): void };
}

/**
 * An app with `/api` (by `X-Client`, 5 per 10 s and 100 per hour) and `/search` (Redis, memory
 * fallback), both recording usage, and the dashboard in front.
 */
type Build = (redis?: Redis) => Promise<Running>;

async function listen(server: Server): Promise<string> {
  if (!server.listening) await new Promise((resolve) => server.once('listening', resolve));
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const API = {
  name: 'api',
  policies: [
    { name: 'burst', limit: 5, window: '10s' },
    { name: 'hourly', limit: 100, window: '1h' },
  ],
  logger: quiet,
} as const;
const SEARCH = {
  name: 'search',
  policies: { name: 'search', limit: 50, window: '1m' },
  logger: quiet,
} as const;
const searchStore = (redis: Redis | undefined) =>
  redis === undefined
    ? {}
    : {
        store: new RedisStore({
          client: redis,
          prefix: `dash-${process.pid}-${Date.now()}:`,
          timeoutMs: 200,
        }),
        fallback: new MemoryStore(),
        // One failed call marks the store failing; no probe within the test.
        probeIntervalMs: 60_000,
      };

const buildExpress: Build = async (redis) => {
  const app = express();
  const usage = tollExpress.createUsage();
  onTestFinished(() => usage.close());
  const api = tollExpress.rateLimit({ ...API, usage, key: tollExpress.byHeader('x-client') });
  const search = tollExpress.rateLimit({ ...SEARCH, usage, ...searchStore(redis) });
  const dashboard = tollExpress.dashboard({
    usage,
    guard: (req) => isOperator(req.headers.cookie),
    limiters: [api, search],
    interval: '200ms',
  });
  onTestFinished(() => dashboard.close());
  app.use(dashboard);
  app.get('/api', api, (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/search', search, (_req, res) => {
    res.json({ ok: true });
  });
  return { url: await listen(app.listen(0, '127.0.0.1')), dashboard };
};

const buildKoa: Build = async (redis) => {
  const app = new Koa();
  const router = new Router();
  const usage = tollKoa.createUsage();
  onTestFinished(() => usage.close());
  const api = tollKoa.rateLimit({ ...API, usage, key: tollKoa.byHeader('x-client') });
  const search = tollKoa.rateLimit({ ...SEARCH, usage, ...searchStore(redis) });
  const dashboard = tollKoa.dashboard({
    usage,
    guard: (ctx) => isOperator(ctx.get('cookie') || undefined),
    limiters: [api, search],
    interval: '200ms',
  });
  onTestFinished(() => dashboard.close());
  app.use(dashboard);
  const ok = (ctx: Koa.Context) => {
    ctx.body = { ok: true };
  };
  router.get('/api', api, ok);
  router.get('/search', search, ok);
  app.use(router.routes());
  return { url: await listen(app.listen(0, '127.0.0.1')), dashboard };
};

/** `count` requests, one after another, as client `client`; their statuses. */
async function send(url: string, path: string, count: number, client = 'nobody'): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < count; i++) {
    const response = await fetch(`${url}${path}`, { headers: { 'x-client': client } });
    await response.arrayBuffer();
    statuses.push(response.status);
  }
  return statuses;
}

async function redisFor(): Promise<{ server: RedisServer; client: Redis }> {
  const server = await startRedis();
  onTestFinished(() => server.stop());
  const client = new Redis({
    host: '127.0.0.1',
    port: server.port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
  });
  // Connection errors are expected once the server is killed; the dashboard shows them.
  client.on('error', () => undefined);
  onTestFinished(() => client.disconnect());
  await client.connect();
  return { server, client };
}

async function openPage(url: string): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  onTestFinished(() => context.close());
  await context.addCookies([{ ...COOKIE, url }]);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('requestfailed', (request) => problems.push(`${request.url()}: ${request.failure()?.errorText}`));
  const response = await page.goto(`${url}/tollgate`);
  expect(response?.status()).toBe(200);
  return { page, problems };
}

/** Waits until the page's element `selector` reads `text`. */
async function shows(page: Page, selector: string, text: string): Promise<void> {
  await page.waitForFunction(
    ([s, t]) => document.querySelector(s!)?.textContent === t,
    [selector, text] as const,
    { timeout: 5000, polling: 50 },
  );
}

const byResult = async (page: Page) =>
  page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll('[data-total]')].map((e) => [
        e.getAttribute('data-total'),
        e.textContent,
      ]),
    ),
  );

describe.each([
  ['Express', buildExpress],
  ['Koa', buildKoa],
] as const)('dashboard() on %s', (framework, build) => {
  it('shows the exact counts live in Chromium, with limited keys hashed and a killed Redis as failing on fallback', async () => {
    const { server: redisServer, client } = await redisFor();
    const { url, dashboard } = await build(client);

    // Before the page opens: three clients, 8 requests each on /api (5 allowed, 3 limited), 4 searches.
    for (const who of ['alice', 'bob', 'carol']) {
      expect(await send(url, '/api', 8, who)).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    }
    expect(await send(url, '/search', 4)).toEqual([200, 200, 200, 200]);

    const { page, problems } = await openPage(url);
    await shows(page, '[data-total="allowed"]', '19');
    expect(await byResult(page)).toEqual({
      allowed: '19',
      limited: '9',
      shadow_limited: '0',
      banned: '0',
      store_error: '0',
      fallback: '0',
    });
    expect(dashboard.clients).toBe(1);
    // The usage recorder's routes, read when the page connected: the same 24 + 4 requests.
    await shows(page, '[data-route="GET /api"] td:nth-child(2)', '24');
    expect(await page.textContent('[data-route="GET /api"] td:nth-child(3)')).toBe('9');
    expect(await page.textContent('[data-route="GET /search"] td:nth-child(2)')).toBe('4');

    // Live: more traffic while the page is open; the counts rise without a reload.
    expect(await send(url, '/api', 8, 'dave')).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    await shows(page, '[data-total="allowed"]', '24');
    await shows(page, '[data-total="limited"]', '12');

    // Redis dies: /search goes on through the fallback store, and the page says so.
    await redisServer.kill();
    expect(await send(url, '/search', 3)).toEqual([200, 200, 200]);
    await shows(page, '[data-total="fallback"]', '3');
    await page.waitForFunction(() =>
      document.querySelector('[data-limiter="search"]')?.textContent?.includes('on fallback store'),
    );
    const search = await page.textContent('[data-limiter="search"]');
    expect(search).toMatch(/failing/);
    expect(search).toMatch(/1 store error \(store\)/);

    // The four limited keys, each denied 3 times, by label; no raw key anywhere on the page.
    const keys = await page.$$eval('[data-key]', (rows) =>
      rows.map((row) => [
        row.querySelector('code')!.textContent,
        row.querySelectorAll('td')[2]!.lastChild!.textContent,
      ]),
    );
    expect(keys).toHaveLength(4);
    for (const [label, count] of keys) {
      expect(label).toMatch(/^[0-9a-f]{12}$/);
      expect(count).toBe('3 limited');
    }
    const text = await page.evaluate(() => document.documentElement.outerHTML);
    for (const raw of ['alice', 'bob', 'carol', 'dave']) expect(text).not.toContain(raw);

    // Policy use: the hottest /api key used all 5 of `burst` and 5 of 100 `hourly`.
    const burst = await page.textContent('[data-limiter="api"] [data-policy="burst"]');
    expect(burst).toContain('5/5 per 10s');
    const hourly = await page.textContent('[data-limiter="api"] [data-policy="hourly"]');
    expect(hourly).toContain('5/100 per 1h');

    mkdirSync(OUTPUT, { recursive: true });
    const shot = `${OUTPUT}dashboard-${framework.toLowerCase()}.png`;
    await page.screenshot({ path: shot, fullPage: true });
    expect(existsSync(shot)).toBe(true);
    if (framework === 'Express' && process.env.TOLLGATE_DOCS_SCREENSHOT === '1') {
      await page.screenshot({ path: DOCS_SCREENSHOT, fullPage: true });
    }
    expect(problems).toEqual([]);

    // Closing the page closes its stream.
    await page.close();
    await until(() => dashboard.clients === 0);
  });

  it('answers 403 to a request its guard refuses, on the page, its stream and its data', async () => {
    const { url } = await build();
    for (const path of ['/tollgate', '/tollgate/', '/tollgate/events', '/tollgate/data']) {
      const refused = await fetch(`${url}${path}`);
      expect(refused.status).toBe(403);
      expect(await refused.text()).toBe('The dashboard guard refused this request.\n');
    }
    const data = await fetch(`${url}/tollgate/data`, { headers: { cookie: 'role=operator' } });
    expect(data.status).toBe(200);
    expect(((await data.json()) as { limiters: { name: string }[] }).limiters.map((l) => l.name)).toEqual([
      'api',
      'search',
    ]);
    expect((await fetch(`${url}/tollgate/elsewhere`, { headers: { cookie: 'role=operator' } })).status).toBe(
      404,
    );
    const post = await fetch(`${url}/tollgate`, { method: 'POST', headers: { cookie: 'role=operator' } });
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
  });

  it('frees a stream whose client goes away', async () => {
    const { url, dashboard } = await build();
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      get(`${url}/tollgate/events`, { headers: { cookie: 'role=operator' } }, resolve).on('error', reject);
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const first = await new Promise<string>((resolve) =>
      response.once('data', (chunk) => resolve(String(chunk))),
    );
    expect(first).toContain('retry: 2000');
    expect(dashboard.clients).toBe(1);
    response.destroy();
    await until(() => dashboard.clients === 0);
  });

  it('refuses to start without a guard, naming the fix', () => {
    const make = framework === 'Express' ? tollExpress.dashboard : tollKoa.dashboard;
    const error = (() => {
      try {
        make({} as never);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(isConfigError(error)).toBe(true);
    expect((error as Error).message).toBe(
      'Expected `guard` to be a function `(req) => boolean | Promise<boolean>`, got `undefined`. The dashboard shows who is being limited: pass a check that admits only your operators, e.g. `guard: (req) => req.user?.role === "admin"`.',
    );
  });
});

it('listens to no event before a dashboard exists, and to none after it closes', () => {
  const decisions = channel(DECISION_CHANNEL);
  expect(decisions.hasSubscribers).toBe(false);
  const dashboard = tollExpress.dashboard({ guard: () => true });
  expect(decisions.hasSubscribers).toBe(true);
  dashboard.close();
  expect(decisions.hasSubscribers).toBe(false);
});

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
