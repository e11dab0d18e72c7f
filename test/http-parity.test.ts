/**
 * One HTTP suite, every framework and store: Express 4 and 5, Koa 2 and 3 at their latest releases,
 * each on the MemoryStore and on the RedisStore, and at their lowest supported releases on the
 * MemoryStore, over real HTTP. Every scenario asserts exact statuses, headers and bodies, and every
 * response is also recorded, so the last test can require that all twelve variants answered the
 * same traffic byte for byte.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ACCESS_DENIED_TYPE,
  type Clock,
  type ConsumeInfo,
  type KeyHelpers,
  type Logger,
  MemoryStore,
  type Policy,
  type PolicySet,
  QUOTA_EXCEEDED_TYPE,
  type RateLimitOptions,
  type Store,
} from '@tollgate/core/internal';
import * as forExpress from '@tollgate/express';
import * as forKoa from '@tollgate/koa';
import { RedisStore } from '@tollgate/redis';
import express5 from 'express';
import express4 from 'express4';
import express4Lowest from 'express4-lowest';
import express5Lowest from 'express5-lowest';
import { Redis } from 'ioredis';
import Koa3 from 'koa';
import Koa2 from 'koa2';
import Koa2Lowest from 'koa2-lowest';
import Koa3Lowest from 'koa3-lowest';
import { parseDictionary, parseItem, parseList } from 'structured-headers';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { IPV4_SPELLINGS, IPV6_SPELLINGS } from './support/address-spellings.js';

/** Midnight of a virtual day: windows of every usual length start here, so the numbers are round. */
const T0 = 20_000 * 86_400_000;

/** What both frameworks' request objects have (Express `req`, Koa `ctx`): enough for the callbacks. */
interface Native {
  headers: IncomingHttpHeaders;
}
type Options = RateLimitOptions<Native>;
type Middleware = (...args: never[]) => unknown;

interface Route {
  path: string;
  /** Options to build a limiter from, or a limiter middleware built already. */
  limiters: (Options | Middleware)[];
  /** An upstream middleware writes the head and a first chunk before the limiters run. */
  streamFirst?: boolean;
}

interface AppSpec {
  routes: Route[];
  /** `one`: trust the one proxy in front; `any`: trust every X-Forwarded-For hop. */
  trustProxy?: 'none' | 'one' | 'any';
}

/** A terminal handler that waits for the test: for client aborts. */
class Gate {
  entered = deferred();
  released = deferred();
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

interface Counters {
  downstream: number;
  gate: Gate;
}

interface Framework {
  name: string;
  keys: KeyHelpers<Native>;
  limit(options: Options): Middleware;
  listener(spec: AppSpec, counters: Counters): (req: never, res: ServerResponse) => void;
}

// --- Express ------------------------------------------------------------------------------------

interface ExpressLike {
  (req: never, res: ServerResponse): void;
  set(setting: string, value: unknown): unknown;
  disable(setting: string): unknown;
  all(path: string, ...handlers: Middleware[]): unknown;
  use(handler: Middleware): unknown;
}
interface ExpressReq extends Native {
  originalUrl: string;
  rateLimit?: SeenDecision;
}
interface ExpressRes extends ServerResponse {
  status(code: number): ExpressRes;
  json(body: unknown): void;
}
type Next = (error?: unknown) => void;

function expressListener(create: () => ExpressLike) {
  return (spec: AppSpec, counters: Counters) => {
    const app = create();
    app.disable('x-powered-by');
    app.set('trust proxy', { none: false, one: 1, any: true }[spec.trustProxy ?? 'none']);
    for (const route of spec.routes) {
      const upstream = (_req: ExpressReq, res: ExpressRes, next: Next) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial;');
        next();
      };
      const terminal = async (req: ExpressReq, res: ExpressRes) => {
        counters.downstream++;
        if (route.streamFirst) return void res.end('done');
        if (req.headers['x-gate']) {
          counters.gate.entered.resolve();
          await counters.gate.released.promise;
        }
        const status = Number(new URL(req.originalUrl, 'http://x').searchParams.get('status') ?? 200);
        res.status(status).json(reply(req.rateLimit));
      };
      app.all(
        route.path,
        ...((route.streamFirst ? [upstream] : []) as Middleware[]),
        ...route.limiters.map((o) => (typeof o === 'function' ? o : (forExpress.rateLimit(o) as Middleware))),
        terminal as Middleware,
      );
    }
    app.use(((error: Error, _req: ExpressReq, res: ExpressRes, _next: Next) => {
      res.status(500).json({ error: error.message });
    }) as Middleware);
    return app;
  };
}

// --- Koa ----------------------------------------------------------------------------------------

interface KoaCtx extends Native {
  url: string;
  status: number;
  body: unknown;
  respond?: boolean;
  res: ServerResponse;
  state: { rateLimit?: SeenDecision };
  path: string;
}
type KoaMiddleware = (ctx: KoaCtx, next: () => Promise<unknown>) => Promise<unknown>;
interface KoaLike {
  proxy: boolean;
  maxIpsCount: number;
  use(middleware: KoaMiddleware): unknown;
  callback(): (req: never, res: ServerResponse) => void;
}

const compose =
  (middlewares: KoaMiddleware[]): KoaMiddleware =>
  (ctx, next) => {
    const run = (i: number): Promise<unknown> =>
      i === middlewares.length ? next() : Promise.resolve(middlewares[i]!(ctx, () => run(i + 1)));
    return run(0);
  };

function koaListener(create: () => KoaLike) {
  return (spec: AppSpec, counters: Counters) => {
    const app = create();
    app.proxy = spec.trustProxy === 'one' || spec.trustProxy === 'any';
    app.maxIpsCount = spec.trustProxy === 'one' ? 1 : 0;
    app.use(async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        ctx.status = 500;
        ctx.body = { error: (error as Error).message };
      }
    });
    for (const route of spec.routes) {
      const upstream: KoaMiddleware = async (ctx, next) => {
        ctx.respond = false;
        ctx.res.writeHead(200, { 'content-type': 'text/plain' });
        ctx.res.write('partial;');
        await next();
      };
      const terminal: KoaMiddleware = async (ctx) => {
        counters.downstream++;
        if (route.streamFirst) return void ctx.res.end('done');
        if (ctx.headers['x-gate']) {
          counters.gate.entered.resolve();
          await counters.gate.released.promise;
        }
        ctx.status = Number(new URL(ctx.url, 'http://x').searchParams.get('status') ?? 200);
        // A downstream body: the limiter must leave it alone.
        ctx.body = reply(ctx.state.rateLimit);
      };
      const chain = compose([
        ...(route.streamFirst ? [upstream] : []),
        ...route.limiters.map(
          (o) => (typeof o === 'function' ? o : forKoa.rateLimit(o)) as unknown as KoaMiddleware,
        ),
        terminal,
      ]);
      app.use((ctx, next) => (ctx.path === route.path ? chain(ctx, next) : next()));
    }
    return app.callback();
  };
}

/** What the request's decision holds, as downstream reads it; the optional fields only when set. */
interface SeenDecision {
  key: string;
  limit: number;
  remaining: number;
  shadowLimited?: string[];
  reason?: string;
}

const reply = (decision: SeenDecision | undefined) =>
  decision === undefined
    ? { ok: true }
    : {
        ok: true,
        key: decision.key,
        limit: decision.limit,
        remaining: decision.remaining,
        ...(decision.shadowLimited === undefined ? {} : { shadowLimited: decision.shadowLimited }),
        ...(decision.reason === undefined ? {} : { reason: decision.reason }),
      };

const onExpress = (name: string, create: () => unknown): Framework => ({
  name,
  keys: forExpress as unknown as KeyHelpers<Native>,
  limit: (o) => forExpress.rateLimit(o) as Middleware,
  listener: expressListener(create as () => ExpressLike),
});
const onKoa = (name: string, Koa: new () => unknown): Framework => ({
  name,
  keys: forKoa as unknown as KeyHelpers<Native>,
  limit: (o) => forKoa.rateLimit(o) as Middleware,
  listener: koaListener(() => new Koa() as KoaLike),
});

/** Every supported peer range at its latest release (aliases `express4`, `koa2`, ...): on every store. */
const frameworks: Framework[] = [
  onExpress('express4', express4),
  onExpress('express5', express5),
  onKoa('koa2', Koa2),
  onKoa('koa3', Koa3),
];
/**
 * And at its lowest (Express 4.17.0 and 5.0.0, Koa 2.13.0 and 3.0.0): every scenario, on the memory
 * store only, since what a store does is independent of the framework's release.
 */
const lowest: Framework[] = [
  onExpress('express4.17.0', express4Lowest),
  onExpress('express5.0.0', express5Lowest),
  onKoa('koa2.13.0', Koa2Lowest),
  onKoa('koa3.0.0', Koa3Lowest),
];

// --- Stores -------------------------------------------------------------------------------------

let redis: Redis;

const stores = {
  memory: (clock: Clock): Store => new MemoryStore({ clock }),
  redis: (clock: Clock): Store =>
    new RedisStore({ client: redis, clock, prefix: `tollgate-http:${randomUUID()}:` }),
};

/**
 * Wraps a store to count completed refunds, which happen after the response (asynchronously), and
 * every call made to it (`calls`, counted as it is made).
 */
class ObservedStore implements Store {
  consumes = 0;
  refunds = 0;
  calls = 0;
  constructor(private readonly inner: Store) {}
  get remote() {
    return this.inner.remote === true;
  }
  /** The test's virtual clock, which the limiter's ban cache then follows too. */
  get clock() {
    return this.inner.clock;
  }
  async consume(key: string, set: PolicySet, cost: number, info?: ConsumeInfo) {
    this.calls++;
    // The store's answer besides the outcomes reaches the limiter only when the set has bans, as
    // before for every other set (their refunds go to the state as it is).
    const outcomes = await this.inner.consume(key, set, cost, set.ban === undefined ? undefined : info);
    this.consumes++;
    return outcomes;
  }
  peek(key: string, set: PolicySet, info?: ConsumeInfo) {
    this.calls++;
    return this.inner.peek(key, set, info);
  }
  ban(key: string, set: PolicySet, durationMs: number) {
    this.calls++;
    return this.inner.ban!(key, set, durationMs);
  }
  unban(key: string, set: PolicySet) {
    this.calls++;
    return this.inner.unban!(key, set);
  }
  async refund(key: string, set: PolicySet, cost: number) {
    this.calls++;
    await this.inner.refund(key, set, cost);
    this.refunds++;
  }
  reset(key: string, set: PolicySet) {
    this.calls++;
    return this.inner.reset(key, set);
  }
  async refunded(count: number) {
    await vi.waitFor(() => expect(this.refunds).toBe(count), { timeout: 2000, interval: 2 });
  }
  settles = 0;
  async settle(key: string, set: PolicySet, delta: number, countedAt?: number) {
    this.calls++;
    const settlement = await this.inner.settle!(key, set, delta, countedAt);
    this.settles++;
    return settlement;
  }
  /** Reservations are settled after the response, when it closes (asynchronously). */
  async settled(count: number) {
    await vi.waitFor(() => expect(this.settles).toBe(count), { timeout: 2000, interval: 2 });
  }
  async consumed(count: number) {
    await vi.waitFor(() => expect(this.consumes).toBe(count), { timeout: 2000, interval: 1 });
  }
}

/** A store whose server is gone. */
const deadStore: Store = {
  consume: () => Promise.reject(new Error('connection refused')),
  peek: () => Promise.reject(new Error('connection refused')),
  refund: () => Promise.reject(new Error('connection refused')),
  reset: () => Promise.reject(new Error('connection refused')),
};

// --- Transcripts and failures shared by all variants ------------------------------------------------

interface Exchange {
  status: number;
  headers: Record<string, string>;
  text: string;
}
const transcripts = new Map<string, Map<string, Exchange[]>>();
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  redis = new Redis({
    host: '127.0.0.1',
    port: inject('redisPort'),
    lazyConnect: true,
    maxRetriesPerRequest: 0,
  });
  await redis.connect();
});

afterEach(() => {
  expect(unhandled).toEqual([]);
});

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await redis.quit();
});

/** The headers the limiter owns, plus the content type; `X-RateLimit-Reset` is epoch time: dropped. */
const RECORDED = /^(ratelimit.*|retry-after|x-ratelimit-(limit|remaining)|content-type)$/;

const variants = [
  ...frameworks.flatMap((framework) => (['memory', 'redis'] as const).map((store) => ({ framework, store }))),
  ...lowest.map((framework) => ({ framework, store: 'memory' as const })),
].map((v) => ({ ...v, name: `${v.framework.name} + ${v.store}` }));

describe.each(variants)('$name', ({ framework, store: storeKind, name: variant }) => {
  const transcript = new Map<string, Exchange[]>();
  transcripts.set(variant, transcript);
  const { byApiKey, byHeader, byIp } = framework.keys;

  let server: Server | undefined;
  let now = T0;
  const clock: Clock = () => now;
  let store: ObservedStore;
  let log: { warnings: string[]; errors: string[] } & Logger;
  let counters: Counters;

  /** Options every limiter of a test shares: the test's store and logger. */
  const base = (): Pick<Options, 'store' | 'logger' | 'blockedCache'> => ({
    store,
    logger: log,
    // The denied-key cache runs on real time, the store on the test's virtual clock: keep it out.
    blockedCache: false,
  });

  /** Starts an app whose routes are built with this test's store and logger. */
  async function app(build: (b: ReturnType<typeof base>) => AppSpec) {
    now = T0;
    store = new ObservedStore(stores[storeKind](clock));
    const warnings: string[] = [];
    const errors: string[] = [];
    log = { warnings, errors, warn: (m) => warnings.push(m), error: (m) => errors.push(m) };
    counters = { downstream: 0, gate: new Gate() };
    server = createServer(
      framework.listener(build(base()), counters) as (req: unknown, res: unknown) => void,
    );
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  }

  afterEach(async () => {
    counters?.gate.released.resolve();
    if (server) {
      server.closeAllConnections();
      await new Promise((resolve) => server!.close(resolve));
      server = undefined;
    }
  });

  async function send(
    path: string,
    headers: Record<string, string> = {},
    method: 'get' | 'options' | 'post' = 'get',
  ): Promise<Exchange & { body: Record<string, unknown> }> {
    const { port } = server!.address() as AddressInfo;
    // fetch keeps connections alive, which keeps this suite fast.
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: method.toUpperCase(), headers });
    const text = await res.text();
    const kept: Record<string, string> = {};
    for (const [name, value] of res.headers) if (RECORDED.test(name)) kept[name] = value;
    const exchange = { status: res.status, headers: kept, text };
    const test = expect.getState().currentTestName!.split(' > ').slice(1).join(' > ');
    transcript.set(test, [...(transcript.get(test) ?? []), exchange]);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text);
    } catch {}
    return { ...exchange, body };
  }

  /** Sends a request and destroys it once `when` resolves, before the response is complete. */
  function abort(path: string, headers: Record<string, string>, when: Promise<unknown>): Promise<void> {
    const { port } = server!.address() as AddressInfo;
    return new Promise((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, path, headers });
      req.on('error', () => resolve());
      req.on('response', () => {});
      req.end();
      void when.then(() => {
        req.destroy();
        resolve();
      });
    });
  }

  /** Until the server has seen every connection close. */
  async function allClosed(): Promise<void> {
    for (let open = 1; open > 0; ) {
      open = await new Promise<number>((resolve, reject) =>
        server!.getConnections((error, count) => (error ? reject(error) : resolve(count))),
      );
      if (open > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  const route = (path: string, ...limiters: Options[]): Route => ({ path, limiters });

  it('counts, then denies with Retry-After and an RFC 9457 body', async () => {
    await app((b) => ({
      routes: [route('/api', { ...b, policies: { name: 'api', limit: 3, window: '1m' } })],
    }));
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await send('/api'));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429]);
    expect(answers[0]!.headers).toEqual({
      'content-type': 'application/json; charset=utf-8',
      'ratelimit-limit': '3',
      'ratelimit-remaining': '2',
      'ratelimit-reset': '120',
      'ratelimit-policy': '3;w=60',
    });
    expect(answers[0]!.body).toEqual({ ok: true, key: 'ip:127.0.0.1', limit: 3, remaining: 2 });
    expect(answers[2]!.headers['ratelimit-remaining']).toBe('0');
    const denied = answers[3]!;
    expect(denied.headers).toEqual({
      'content-type': 'application/problem+json',
      'ratelimit-limit': '3',
      'ratelimit-remaining': '0',
      'ratelimit-reset': '120',
      'ratelimit-policy': '3;w=60',
      'retry-after': '80',
    });
    expect(denied.body).toEqual({
      type: QUOTA_EXCEEDED_TYPE,
      title: 'Request cannot be satisfied as assigned quota has been exceeded',
      status: 429,
      detail: "Rate limit exceeded (policy 'api'). Retry after 80 seconds.",
      'violated-policies': ['api'],
      retryAfter: 80,
      limit: 3,
      remaining: 0,
      reset: 120,
    });
    expect(counters.downstream).toBe(3);
    expect(log.warnings).toEqual([]);
  });

  it('sends every header mode in RFC 9651 syntax', async () => {
    const policies: Policy[] = [
      { name: 'burst', limit: 10, window: '1s' },
      { name: 'hourly', limit: 100, window: '1h' },
    ];
    const modes = ['draft-6', 'draft-7', 'draft-8', 'legacy'] as const;
    await app((b) => ({
      routes: [
        ...modes.map((mode) => route(`/${mode}`, { ...b, name: mode, policies, headers: mode })),
        route('/both', { ...b, name: 'both', policies, headers: ['draft-7', 'legacy'] }),
        route('/none', { ...b, name: 'none', policies: { limit: 1, window: '1m' }, headers: false }),
      ],
    }));
    const d6 = (await send('/draft-6')).headers;
    expect(parseItem(d6['ratelimit-limit']!)).toEqual([10, new Map()]);
    expect(parseItem(d6['ratelimit-remaining']!)).toEqual([9, new Map()]);
    expect(parseItem(d6['ratelimit-reset']!)).toEqual([2, new Map()]);
    expect(parseList(d6['ratelimit-policy']!)).toEqual([
      [10, new Map([['w', 1]])],
      [100, new Map([['w', 3600]])],
    ]);

    const d7 = (await send('/draft-7')).headers;
    expect(parseDictionary(d7.ratelimit!)).toEqual(
      new Map([
        ['limit', [10, new Map()]],
        ['remaining', [9, new Map()]],
        ['reset', [2, new Map()]],
      ]),
    );
    expect(parseList(d7['ratelimit-policy']!)).toHaveLength(2);

    const d8 = (await send('/draft-8')).headers;
    const params = (list: ReturnType<typeof parseList>) =>
      list.map(([name, p]) => [name, Object.fromEntries(p as Map<string, unknown>)]);
    expect(params(parseList(d8['ratelimit-policy']!))).toEqual([
      ['burst', { q: 10, w: 1 }],
      ['hourly', { q: 100, w: 3600 }],
    ]);
    expect(params(parseList(d8.ratelimit!))).toEqual([
      ['burst', { r: 9, t: 2 }],
      ['hourly', { r: 99, t: 7200 }],
    ]);

    const before = Math.floor(Date.now() / 1000);
    const legacy = await send('/legacy');
    const after = Math.ceil(Date.now() / 1000);
    expect(legacy.headers).toMatchObject({ 'x-ratelimit-limit': '10', 'x-ratelimit-remaining': '9' });
    expect(legacy.headers['ratelimit-limit']).toBeUndefined();
    const { port } = server!.address() as AddressInfo;
    const reset = Number((await fetch(`http://127.0.0.1:${port}/legacy`)).headers.get('x-ratelimit-reset'));
    expect(reset).toBeGreaterThanOrEqual(before + 2);
    expect(reset).toBeLessThanOrEqual(after + 2);

    const both = (await send('/both')).headers;
    expect(Object.keys(both).sort()).toEqual([
      'content-type',
      'ratelimit',
      'ratelimit-policy',
      'x-ratelimit-limit',
      'x-ratelimit-remaining',
    ]);

    expect((await send('/none')).headers).toEqual({ 'content-type': 'application/json; charset=utf-8' });
    // No rate-limit headers, but a 429 still says when to come back.
    expect((await send('/none')).headers).toEqual({
      'content-type': 'application/problem+json',
      'retry-after': '120',
    });
  });

  it('is honest about Retry-After: a client that waits it gets in, a second less does not', async () => {
    const algorithms: Policy[] = [
      { name: 'sw', limit: 3, window: '1m' },
      { name: 'fw', algorithm: 'fixed-window', limit: 3, window: '1m' },
      { name: 'tb', algorithm: 'token-bucket', limit: 3, window: '1m', burst: 5 },
      { name: 'lb', algorithm: 'leaky-bucket', limit: 3, window: '10s', delay: false },
    ];
    await app((b) => ({
      routes: algorithms.map((p) => route(`/${p.name}`, { ...b, name: p.name!, policies: p })),
    }));
    const waits: Record<string, number> = {};
    for (const policy of algorithms) {
      const path = `/${policy.name}`;
      now = T0 + 12_345;
      let res = await send(path);
      for (let i = 0; i < 10 && res.status === 200; i++) res = await send(path);
      expect(res.status).toBe(429);
      const wait = Number(res.headers['retry-after']);
      waits[policy.name!] = wait;
      expect(res.body.retryAfter).toBe(wait);
      const deniedAt = now;
      now = deniedAt + wait * 1000 - 1000;
      expect((await send(path)).status).toBe(429);
      now = deniedAt + wait * 1000;
      expect((await send(path)).status).toBe(200);
    }
    expect(waits).toEqual({ sw: 68, fw: 60, tb: 20, lb: 4 });
  });

  it('keeps per-route limits apart on one store', async () => {
    await app((b) => ({
      routes: [
        route('/login', { ...b, name: 'login', policies: { limit: 2, window: '1m' } }),
        route('/search', { ...b, name: 'search', policies: { limit: 5, window: '1m' } }),
      ],
    }));
    const login = [];
    for (let i = 0; i < 3; i++) login.push((await send('/login')).status);
    expect(login).toEqual([200, 200, 429]);
    const search = await send('/search');
    expect(search.status).toBe(200);
    expect(search.headers['ratelimit-limit']).toBe('5');
    expect(search.headers['ratelimit-remaining']).toBe('4');
  });

  it('shows the most restrictive of stacked limiters and denies on either', async () => {
    await app((b) => {
      const global: Options = { ...b, name: 'global', policies: { name: 'global', limit: 10, window: '1m' } };
      return {
        routes: [
          route('/stacked', global, {
            ...b,
            name: 'route',
            policies: { name: 'route', limit: 2, window: '1m' },
          }),
          route('/other', global),
        ],
      };
    });
    const first = await send('/stacked');
    expect(first.headers['ratelimit-policy']).toBe('2;w=60');
    expect(first.headers['ratelimit-remaining']).toBe('1');
    expect(first.body).toMatchObject({ limit: 2, remaining: 1 });
    await send('/stacked');
    const denied = await send('/stacked');
    expect(denied.status).toBe(429);
    expect(denied.body['violated-policies']).toEqual(['route']);
    // The global limiter counted all three; it shows on a route of its own.
    const other = await send('/other');
    expect(other.headers['ratelimit-policy']).toBe('10;w=60');
    expect(other.headers['ratelimit-remaining']).toBe('6');
  });

  it('counts shadow policies without denying on them or advertising them, unless asked', async () => {
    const policies: Policy[] = [
      { name: 'api', limit: 3, window: '1m' },
      { name: 'new', algorithm: 'fixed-window', limit: 1, window: '1m', mode: 'shadow' },
    ];
    await app((b) => ({
      routes: [
        route('/mixed', { ...b, name: 'mixed', policies }),
        route('/advertised', { ...b, name: 'advertised', policies, shadowHeaders: true, headers: 'draft-8' }),
        route('/trial', {
          ...b,
          name: 'trial',
          policies: { name: 'trial', algorithm: 'fixed-window', limit: 1, window: '1m', mode: 'shadow' },
        }),
        route(
          '/stacked',
          { ...b, name: 'stacked', policies: { name: 'st', limit: 5, window: '1m' } },
          {
            ...b,
            name: 'trial2',
            policies: { name: 'trial2', algorithm: 'fixed-window', limit: 1, window: '1m', mode: 'shadow' },
          },
        ),
      ],
    }));
    const mixed = [];
    for (let i = 0; i < 4; i++) mixed.push(await send('/mixed'));
    expect(mixed.map((a) => a.status)).toEqual([200, 200, 200, 429]);
    // Only the enforced policy shows: its numbers, its quota.
    expect(mixed[1]!.headers).toEqual({
      'content-type': 'application/json; charset=utf-8',
      'ratelimit-limit': '3',
      'ratelimit-remaining': '1',
      'ratelimit-reset': '120',
      'ratelimit-policy': '3;w=60',
    });
    expect(mixed.map((a) => a.body.shadowLimited)).toEqual([undefined, ['new'], ['new'], undefined]);
    expect(mixed[3]!.body['violated-policies']).toEqual(['api']);
    expect(mixed[3]!.headers['retry-after']).toBe('80');

    const advertised = await send('/advertised');
    expect(advertised.headers['ratelimit-policy']).toBe('"api";q=3;w=60, "new";q=1;w=60');
    expect(advertised.headers.ratelimit).toBe('"api";r=2;t=120, "new";r=0;t=60');

    // Shadow policies only: every request passes, none carries a rate-limit header.
    const trial = [await send('/trial'), await send('/trial'), await send('/trial')];
    expect(trial.map((a) => a.status)).toEqual([200, 200, 200]);
    for (const answer of trial) {
      expect(answer.headers).toEqual({ 'content-type': 'application/json; charset=utf-8' });
    }
    expect(trial.map((a) => a.body)).toEqual([
      { ok: true, key: 'ip:127.0.0.1', limit: 1, remaining: 0 },
      { ok: true, key: 'ip:127.0.0.1', limit: 1, remaining: 0, shadowLimited: ['trial'] },
      { ok: true, key: 'ip:127.0.0.1', limit: 1, remaining: 0, shadowLimited: ['trial'] },
    ]);
    // Behind an enforced limiter, a shadow-only one leaves the enforced decision in view.
    await send('/stacked');
    const stacked = await send('/stacked');
    expect(stacked.headers['ratelimit-policy']).toBe('5;w=60');
    expect(stacked.body).toEqual({ ok: true, key: 'ip:127.0.0.1', limit: 5, remaining: 3 });
    expect(log.warnings).toEqual([]);
  });

  describe('allow and deny lists', () => {
    it('never counts 100 addresses inside an allowed /48, and refuses a denied /8 with 403 before any store call', async () => {
      await app((b) => ({
        trustProxy: 'one',
        routes: [
          route('/lists', {
            ...b,
            policies: { name: 'api', limit: 1, window: '1m' },
            allow: ['2001:db8:1234::/48'],
            deny: ['10.0.0.0/8'],
          }),
        ],
      }));
      for (let i = 0; i < 100; i++) {
        // Each in a /56 of its own, so each would have its own counter: none is ever counted.
        const address = `2001:db8:1234:${(i * 256 + i).toString(16)}::${i.toString(16)}`;
        const allowed = await send('/lists', { 'x-forwarded-for': address });
        expect(allowed.status).toBe(200);
        expect(allowed.headers).toEqual({ 'content-type': 'application/json; charset=utf-8' });
        expect(allowed.body).toMatchObject({ ok: true, reason: 'allowed', remaining: 999_999_999_999_999 });
      }
      // The same clients again, spelled otherwise: still allowed.
      expect((await send('/lists', { 'x-forwarded-for': '2001:0DB8:1234:0000::1' })).body.reason).toBe(
        'allowed',
      );
      expect(store.calls).toBe(0);
      for (const address of ['10.0.0.1', '10.255.255.254', '::ffff:10.1.2.3', '10.20.30.40']) {
        const denied = await send('/lists', { 'x-forwarded-for': address });
        expect(denied.status).toBe(403);
        expect(denied.headers).toEqual({ 'content-type': 'application/problem+json' });
        expect(denied.body).toEqual({
          type: ACCESS_DENIED_TYPE,
          title: 'Access denied',
          status: 403,
          detail: 'Requests from this client are refused by the deny list; waiting does not help.',
        });
      }
      expect(store.calls).toBe(0);
      expect(counters.downstream).toBe(101);
      // Outside both lists: counted as usual.
      const outside = await send('/lists', { 'x-forwarded-for': '203.0.113.9' });
      expect([outside.status, outside.headers['ratelimit-remaining']]).toEqual([200, '0']);
      expect((await send('/lists', { 'x-forwarded-for': '2001:db8:1235::1' })).status).toBe(200);
      expect((await send('/lists', { 'x-forwarded-for': '203.0.113.9' })).status).toBe(429);
      expect(store.calls).toBe(3);
      expect(log.warnings).toEqual([]);
    });

    it('matches the address the framework trusts, never a raw X-Forwarded-For', async () => {
      await app((b) => ({
        routes: [
          route('/lists', {
            ...b,
            policies: { limit: 5, window: '1m' },
            allow: ['203.0.113.0/24'],
            deny: ['198.51.100.0/24'],
          }),
        ],
      }));
      // No proxy trusted: the socket's address (127.0.0.1) is the client, whatever the header claims.
      const claimed = await send('/lists', { 'x-forwarded-for': '203.0.113.7' });
      expect(claimed.body).toMatchObject({ key: 'ip:127.0.0.1', remaining: 4 });
      expect(claimed.body.reason).toBeUndefined();
      expect((await send('/lists', { 'x-forwarded-for': '198.51.100.7' })).status).toBe(200);
      expect(store.calls).toBe(2);
    });

    it('refuses a malformed range when the middleware is created, naming it', () => {
      expect(() =>
        framework.limit({ policies: { limit: 1, window: '1s' }, deny: ['10.0.0.0/8', '10.0.0.0/33'] }),
      ).toThrow(
        "Expected `deny[1]` to be an IPv4 or IPv6 address or CIDR range ('203.0.113.7', '10.0.0.0/8', '2001:db8::/48') or a function `(req) => boolean`, got \"10.0.0.0/33\" (string). The prefix length of an IPv4 range is a whole number from 0 to 32.",
      );
    });
  });

  describe('tiers', () => {
    const FREE: Policy[] = [{ name: 'free', limit: 60, window: '1m' }];
    const PRO: Policy[] = [{ name: 'pro', limit: 600, window: '1m' }];
    const ENTERPRISE: Policy[] = [{ name: 'enterprise', limit: 6000, window: '1m' }];
    const PLANS: Record<string, Policy[]> = { free: FREE, pro: PRO, enterprise: ENTERPRISE };
    const KEYS: Record<string, string> = { 'sk-free-1': 'free', 'sk-pro-1': 'pro', 'sk-ent-1': 'enterprise' };
    const ORGS: Record<string, string> = { acme: 'enterprise', initech: 'pro', hooli: 'free' };
    const sha = (s: string) => createHash('sha256').update(s).digest('base64url');

    it('by API key: free 60/min, pro 600/min, enterprise 6000/min', async () => {
      await app((b) => ({
        routes: [
          route('/v1', {
            ...b,
            key: byApiKey(),
            policies: (req) => PLANS[KEYS[String(req.headers['x-api-key'] ?? '')] ?? 'free']!,
          }),
        ],
      }));
      for (const [secret, limit] of [
        ['sk-pro-1', 600],
        ['sk-ent-1', 6000],
        ['sk-free-1', 60],
      ] as const) {
        const res = await send('/v1', { 'x-api-key': secret });
        expect(res.headers['ratelimit-limit']).toBe(String(limit));
        expect(res.headers['ratelimit-remaining']).toBe(String(limit - 1));
        expect(res.body.key).toBe(`key:${sha(secret)}`);
        expect(res.text).not.toContain(secret);
      }
      // Bearer tokens count under the same key as X-API-Key.
      const bearer = await send('/v1', { authorization: 'Bearer sk-free-1' });
      expect(bearer.body.key).toBe(`key:${sha('sk-free-1')}`);
      expect(bearer.headers['ratelimit-remaining']).toBe('58');
      for (let i = 0; i < 58; i++) expect((await send('/v1', { 'x-api-key': 'sk-free-1' })).status).toBe(200);
      const denied = await send('/v1', { 'x-api-key': 'sk-free-1' });
      expect(denied.status).toBe(429);
      expect(denied.body['violated-policies']).toEqual(['free']);
      expect((await send('/v1', { 'x-api-key': 'sk-pro-1' })).headers['ratelimit-remaining']).toBe('598');
      expect(log.warnings).toEqual([]);
    });

    it('by organization header, with requests without one counted by IP', async () => {
      await app((b) => ({
        routes: [
          route('/org', {
            ...b,
            key: byHeader('X-Org', { fallback: byIp() }),
            policies: (req) => PLANS[ORGS[String(req.headers['x-org'] ?? '')] ?? 'free']!,
          }),
        ],
      }));
      const acme = await send('/org', { 'x-org': 'acme' });
      expect(acme.headers).toMatchObject({ 'ratelimit-limit': '6000', 'ratelimit-policy': '6000;w=60' });
      expect(acme.body.key).toBe('hdr:x-org:acme');
      expect((await send('/org', { 'x-org': 'initech' })).headers['ratelimit-limit']).toBe('600');
      const anonymous = await send('/org');
      expect(anonymous.body).toMatchObject({ key: 'ip:127.0.0.1', limit: 60, remaining: 59 });
      expect((await send('/org', { 'x-org': 'acme' })).headers['ratelimit-remaining']).toBe('5998');
      expect(log.warnings).toEqual([]);
    });
  });

  it('charges the cost, and refuses for good a cost above the capacity', async () => {
    await app((b) => ({
      routes: [
        route('/cost', {
          ...b,
          policies: { name: 'units', algorithm: 'fixed-window', limit: 10, window: '1m' },
          cost: (req) => Number(req.headers['x-cost'] ?? 1),
        }),
      ],
    }));
    expect((await send('/cost', { 'x-cost': '4' })).headers['ratelimit-remaining']).toBe('6');
    const tooMuch = await send('/cost', { 'x-cost': '7' });
    expect(tooMuch.status).toBe(429);
    expect(tooMuch.headers['retry-after']).toBe('60');
    expect(tooMuch.headers['ratelimit-remaining']).toBe('6');
    const never = await send('/cost', { 'x-cost': '11' });
    // No wait helps: a status no client retries (ky, axios-retry retry 429), no Retry-After.
    expect(never.status).toBe(403);
    expect(never.body.status).toBe(403);
    expect(never.headers['ratelimit-reset']).toBe('60');
    expect(never.headers['retry-after']).toBeUndefined();
    expect(never.body.retryAfter).toBeUndefined();
    expect(never.body.detail).toBe(
      "This request costs more than policy 'units' allows at once (10); it can never succeed.",
    );
    expect((await send('/cost', { 'x-cost': '6' })).headers['ratelimit-remaining']).toBe('0');
    const bad = await send('/cost', { 'x-cost': '1.5' });
    expect(bad.status).toBe(500);
    // A cost function's wrong value is the CallbackError of issue 10, naming the callback.
    expect(bad.body).toEqual({
      error:
        "Expected the `cost` function of limiter 'default' to return a non-negative integer, got `1.5` (number).",
    });
  });

  it('reserves the cost as an estimate and settles what `settle` reads when the response closes', async () => {
    await app((b) => ({
      routes: [
        route('/llm', {
          ...b,
          policies: { name: 'tokens', algorithm: 'fixed-window', limit: 100, window: '1m', maxDebt: 50 },
          cost: (req) => Number(req.headers['x-estimate'] ?? 10),
          settle: (req) =>
            req.headers['x-actual'] === undefined ? undefined : Number(req.headers['x-actual']),
          refund: { onFailure: true },
        }),
      ],
    }));
    // The headers show the reservation (the estimate); the actual is charged once the response closes.
    const first = await send('/llm', { 'x-estimate': '30', 'x-actual': '50' });
    expect(first.headers['ratelimit-remaining']).toBe('70');
    await store.settled(1);
    // No actual: the estimate stands, with no store call.
    expect((await send('/llm', { 'x-estimate': '20' })).headers['ratelimit-remaining']).toBe('30');
    // No actual on a failure: `refund` gives the estimate back.
    expect((await send('/llm?status=500', { 'x-estimate': '10' })).headers['ratelimit-remaining']).toBe('20');
    await store.settled(2);
    // Below the estimate: the difference goes back.
    expect((await send('/llm', { 'x-estimate': '25', 'x-actual': '5' })).headers['ratelimit-remaining']).toBe(
      '5',
    );
    await store.settled(3);
    // 75 counted. Past the limit: 95 with the estimate, 180 more would be 275, maxDebt stops it at 150.
    expect(
      (await send('/llm', { 'x-estimate': '20', 'x-actual': '200' })).headers['ratelimit-remaining'],
    ).toBe('5');
    await store.settled(4);
    expect(log.warnings).toEqual([
      expect.stringContaining(
        "[TOLLGATE_DEBT_CAPPED] A settle of limiter 'default' left 125 units uncharged on policy 'tokens'",
      ),
    ]);
    // In debt: denied, even a cost of 1, until the window ends.
    const owed = await send('/llm', { 'x-estimate': '1' });
    expect(owed.status).toBe(429);
    expect(owed.headers['retry-after']).toBe('60');
    expect(owed.headers['ratelimit-remaining']).toBe('0');
    now += 60_000;
    // An actual that is no count: logged, and the estimate stands.
    expect(
      (await send('/llm', { 'x-estimate': '10', 'x-actual': 'lots' })).headers['ratelimit-remaining'],
    ).toBe('90');
    await vi.waitFor(() => expect(log.errors).toHaveLength(1), { timeout: 2000, interval: 2 });
    expect(log.errors[0]).toContain(
      "Expected the `settle` function of limiter 'default' to return a non-negative integer or undefined, got `NaN` (number); the estimate stands.",
    );
    expect((await send('/llm', { 'x-estimate': '0' })).headers['ratelimit-remaining']).toBe('90');
    expect(store.settles).toBe(4);
  });

  it('skips what `skip` says, with no headers and no count', async () => {
    await app((b) => ({
      routes: [
        route('/skip', {
          ...b,
          policies: { limit: 1, window: '1m' },
          skip: (req) => req.headers['x-internal'] === 'yes',
        }),
      ],
    }));
    for (let i = 0; i < 3; i++) {
      const res = await send('/skip', { 'x-internal': 'yes' });
      expect(res.status).toBe(200);
      expect(res.headers['ratelimit-limit']).toBeUndefined();
      expect(res.body).toEqual({ ok: true });
    }
    expect((await send('/skip')).headers['ratelimit-remaining']).toBe('0');
    expect((await send('/skip')).status).toBe(429);
  });

  describe('refunds', () => {
    it('gives back failed requests, at most once each', async () => {
      await app((b) => ({
        routes: [route('/r', { ...b, policies: { limit: 3, window: '1m' }, refund: { onFailure: true } })],
      }));
      expect((await send('/r?status=500')).status).toBe(500);
      await store.refunded(1);
      expect((await send('/r?status=404')).status).toBe(404);
      await store.refunded(2);
      // Success is kept: 3, 2 ...
      expect((await send('/r')).headers['ratelimit-remaining']).toBe('2');
      expect((await send('/r')).headers['ratelimit-remaining']).toBe('1');
      expect((await send('/r?status=503')).headers['ratelimit-remaining']).toBe('0');
      await store.refunded(3);
      // ... and the refunded one is back, exactly one unit.
      expect((await send('/r')).headers['ratelimit-remaining']).toBe('0');
      expect((await send('/r')).status).toBe(429);
      expect(store.refunds).toBe(3);
    });

    it('gives back successful requests with onSuccess, by a custom isFailure', async () => {
      await app((b) => ({
        routes: [
          route('/login', {
            ...b,
            policies: { limit: 2, window: '1m' },
            refund: { onSuccess: true, isFailure: (status) => status === 401 },
          }),
        ],
      }));
      for (let i = 0; i < 4; i++) {
        expect((await send('/login')).status).toBe(200);
        await store.refunded(i + 1);
      }
      expect((await send('/login?status=401')).headers['ratelimit-remaining']).toBe('1');
      expect((await send('/login?status=401')).headers['ratelimit-remaining']).toBe('0');
      expect((await send('/login')).status).toBe(429);
    });

    it('counts requests whose clients went away mid-handler: an abort is no failure', async () => {
      await app((b) => ({
        routes: [
          route('/abort', { ...b, policies: { limit: 50, window: '1m' }, refund: { onFailure: true } }),
        ],
      }));
      const inside = vi.waitFor(() => expect(counters.downstream).toBe(50), { timeout: 10_000, interval: 5 });
      await Promise.all(Array.from({ length: 50 }, () => abort('/abort', { 'x-gate': '1' }, inside)));
      await allClosed();
      counters.gate.released.resolve();
      expect((await send('/abort')).status).toBe(429);
      expect([store.refunds, counters.downstream]).toEqual([0, 50]);
    });

    it('gives back a client that went away mid-handler with onAbort, once', async () => {
      await app((b) => ({
        routes: [route('/slow', { ...b, policies: { limit: 2, window: '1m' }, refund: { onAbort: true } })],
      }));
      await abort('/slow', { 'x-gate': '1' }, counters.gate.entered.promise);
      await store.refunded(1);
      // The handler finishing later on the dead connection refunds nothing more.
      counters.gate.released.resolve();
      expect((await send('/slow')).headers['ratelimit-remaining']).toBe('1');
      expect((await send('/slow')).headers['ratelimit-remaining']).toBe('0');
      expect((await send('/slow')).status).toBe(429);
      expect(store.refunds).toBe(1);
    });

    it('counts a client that left while the limiter was deciding as a failure, and sends it nowhere', async () => {
      const keyGate = new Gate();
      await app((b) => ({
        routes: [
          route('/slow-key', {
            ...b,
            policies: { limit: 2, window: '1m' },
            refund: { onFailure: true },
            // An asynchronous step (a slow key lookup; Redis is another): the client leaves during it.
            key: async () => {
              keyGate.entered.resolve();
              await keyGate.released.promise;
              return 'slow-key-client';
            },
          }),
        ],
      }));
      await abort('/slow-key', {}, keyGate.entered.promise);
      await allClosed();
      keyGate.released.resolve();
      await store.refunded(1);
      expect(counters.downstream).toBe(0);
      expect((await send('/slow-key')).headers['ratelimit-remaining']).toBe('1');
      expect((await send('/slow-key')).headers['ratelimit-remaining']).toBe('0');
      expect((await send('/slow-key')).status).toBe(429);
      expect([store.refunds, counters.downstream]).toEqual([1, 2]);
    });
  });

  it('does not count CORS preflights', async () => {
    await app((b) => ({ routes: [route('/cors', { ...b, policies: { limit: 2, window: '1m' } })] }));
    for (let i = 0; i < 5; i++) {
      const res = await send(
        '/cors',
        { origin: 'https://app.example', 'access-control-request-method': 'PUT' },
        'options',
      );
      expect(res.status).toBe(200);
      expect(res.headers['ratelimit-limit']).toBeUndefined();
    }
    // A plain OPTIONS request is a request like any other.
    expect((await send('/cors', {}, 'options')).headers['ratelimit-remaining']).toBe('1');
    expect((await send('/cors')).headers['ratelimit-remaining']).toBe('0');
  });

  describe('client addresses', () => {
    it('ignores a spoofed X-Forwarded-For unless the app trusts its proxy, and says so', async () => {
      await app((b) => ({ routes: [route('/ip', { ...b, policies: { limit: 100, window: '1m' } })] }));
      for (let i = 0; i < 3; i++) {
        const res = await send('/ip', { 'x-forwarded-for': `203.0.113.${i}` });
        expect(res.body).toMatchObject({ key: 'ip:127.0.0.1', remaining: 99 - i });
      }
      expect(log.warnings).toHaveLength(1);
      expect(log.warnings[0]).toMatch(
        /^\[TOLLGATE_TRUST_PROXY\] X-Forwarded-For arrived but the app does not trust proxies/,
      );
    });

    it('uses the address the trusted proxy reports', async () => {
      await app((b) => ({
        trustProxy: 'one',
        routes: [route('/ip', { ...b, policies: { limit: 100, window: '1m' } })],
      }));
      for (let i = 0; i < 3; i++) {
        const res = await send('/ip', { 'x-forwarded-for': `198.51.100.7, 203.0.113.${i}` });
        expect(res.body).toMatchObject({ key: `ip:203.0.113.${i}`, remaining: 99 });
      }
      expect(log.warnings).toEqual([]);
    });

    it('warns when the app trusts every hop, which lets clients pick their address', async () => {
      await app((b) => ({
        trustProxy: 'any',
        routes: [route('/ip', { ...b, policies: { limit: 100, window: '1m' } })],
      }));
      expect((await send('/ip', { 'x-forwarded-for': '198.51.100.7, 203.0.113.1' })).body.key).toBe(
        'ip:198.51.100.7',
      );
      expect(log.warnings).toHaveLength(1);
      expect(log.warnings[0]).toMatch(/^\[TOLLGATE_PERMISSIVE_TRUST_PROXY\]/);
    });

    it('puts 100 addresses of one IPv6 /56 in one bucket', async () => {
      await app((b) => ({
        trustProxy: 'one',
        routes: [route('/ip', { ...b, policies: { limit: 100, window: '1m' } })],
      }));
      for (let i = 0; i < 100; i++) {
        const address = `2001:db8:aa:bb${(i % 256).toString(16).padStart(2, '0')}:${i.toString(16)}::1`;
        const res = await send('/ip', { 'x-forwarded-for': address });
        expect(res.status).toBe(200);
        expect(res.body.key).toBe('ip:2001:db8:aa:bb00::/56');
      }
      expect((await send('/ip', { 'x-forwarded-for': '2001:db8:aa:bbff:ffff::9' })).status).toBe(429);
      const next = await send('/ip', { 'x-forwarded-for': '2001:db8:aa:bc00::1' });
      expect(next.body).toMatchObject({ key: 'ip:2001:db8:aa:bc00::/56', remaining: 99 });
    });

    it('counts ::ffff:1.2.3.4 and 1.2.3.4 as one client', async () => {
      await app((b) => ({
        trustProxy: 'one',
        routes: [route('/ip', { ...b, policies: { limit: 10, window: '1m' } })],
      }));
      expect((await send('/ip', { 'x-forwarded-for': '1.2.3.4' })).body).toMatchObject({
        key: 'ip:1.2.3.4',
        remaining: 9,
      });
      expect((await send('/ip', { 'x-forwarded-for': '::ffff:1.2.3.4' })).body).toMatchObject({
        key: 'ip:1.2.3.4',
        remaining: 8,
      });
    });
    it('counts 20 spellings of one IPv4 client and 20 of one IPv6 client as one client each', async () => {
      await app((b) => ({
        trustProxy: 'one',
        routes: [
          route('/ip', { ...b, policies: { limit: 100, window: '1m' } }),
          route('/ip6', { ...b, policies: { limit: 100, window: '1m' }, key: byIp({ ipv6Subnet: 128 }) }),
        ],
      }));
      for (const [i, address] of IPV4_SPELLINGS.entries()) {
        const res = await send('/ip', { 'x-forwarded-for': `198.51.100.7, ${address}` });
        expect(res.body, address).toMatchObject({ key: 'ip:1.2.3.4', remaining: 99 - i });
      }
      for (const [i, address] of IPV6_SPELLINGS.entries()) {
        const res = await send('/ip6', { 'x-forwarded-for': address });
        expect(res.body, address).toMatchObject({ key: 'ip:2001:db8::1', remaining: 99 - i });
      }
      // Spellings with a port say so, once per limiter (issue 11); nothing else is wrong.
      expect(log.warnings.map((w) => w.slice(0, w.indexOf(']') + 1))).toEqual([
        '[TOLLGATE_IP_WITH_PORT]',
        '[TOLLGATE_IP_WITH_PORT]',
      ]);
    });

    it('puts every address that is no address in one shared bucket, and says so once', async () => {
      await app((b) => ({
        trustProxy: 'one',
        routes: [route('/ip', { ...b, policies: { limit: 100, window: '1m' } })],
      }));
      const junk = ['unknown', '1.2.3.256', '1.2.3.4:port', '[2001:db8::1', 'x'.repeat(8000)];
      for (const [i, address] of junk.entries()) {
        const res = await send('/ip', { 'x-forwarded-for': address });
        expect(res.body).toMatchObject({ key: 'ip:invalid', remaining: 99 - i });
      }
      expect(log.warnings).toEqual([
        expect.stringMatching(
          /^\[TOLLGATE_INVALID_IP\] The client address of GET \/ip is no IP address \("unknown"\)/,
        ),
      ]);
    });
  });

  it('leaves a response that already started alone: no header errors, no 429 over it', async () => {
    await app((b) => ({
      routes: [
        { path: '/stream', streamFirst: true, limiters: [{ ...b, policies: { limit: 1, window: '1m' } }] },
      ],
    }));
    const first = await send('/stream');
    expect(first).toMatchObject({
      status: 200,
      text: 'partial;done',
      headers: { 'content-type': 'text/plain' },
    });
    const second = await send('/stream');
    expect(second).toMatchObject({
      status: 200,
      text: 'partial;',
      headers: { 'content-type': 'text/plain' },
    });
    expect(counters.downstream).toBe(1);
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]).toMatch(/^\[TOLLGATE_HEADERS_SENT\]/);
    expect(log.errors).toEqual([]);
  });

  it('keeps the body downstream sets, with the headers', async () => {
    await app((b) => ({ routes: [route('/body', { ...b, policies: { limit: 5, window: '1m' } })] }));
    const res = await send('/body', {}, 'post');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, key: 'ip:127.0.0.1', limit: 5, remaining: 4 });
    expect(res.headers['ratelimit-remaining']).toBe('4');
    expect((await send('/body?status=201', {}, 'post')).status).toBe(201);
  });

  describe('leaky bucket', () => {
    // One request drains every 25 ms; the virtual clock stands still, so each request waits 25 ms
    // longer than the one before it.
    const shaping: Policy = { name: 'shaped', algorithm: 'leaky-bucket', limit: 40, window: '1s', burst: 4 };

    it('holds admitted requests for their place in the queue', async () => {
      await app((b) => ({ routes: [route('/shaped', { ...b, policies: shaping })] }));
      const elapsed: number[] = [];
      for (let i = 0; i < 3; i++) {
        const started = performance.now();
        expect((await send('/shaped')).status).toBe(200);
        elapsed.push(performance.now() - started);
      }
      expect(elapsed[1]).toBeGreaterThanOrEqual(24);
      expect(elapsed[2]).toBeGreaterThanOrEqual(49);
      expect(counters.downstream).toBe(3);
    });

    it('does not send a held request downstream when its client leaves', async () => {
      await app((b) => ({ routes: [route('/shaped', { ...b, policies: shaping })] }));
      await send('/shaped');
      await send('/shaped');
      expect(counters.downstream).toBe(2);
      // Third in the queue, held 50 ms: the client leaves as soon as it has been counted.
      await abort('/shaped', {}, store.consumed(3));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(counters.downstream).toBe(2);
      expect((await send('/shaped')).status).toBe(200);
      expect(counters.downstream).toBe(3);
    });
  });

  it('takes a custom status and body, and calls the hooks with the framework request', async () => {
    const seen: string[] = [];
    const one: Policy = { limit: 1, window: '1m' };
    const hooks = {
      onDecision: (req: Native, decision: { allowed: boolean }) => {
        seen.push(`decision ${req.headers['x-who']} ${decision.allowed}`);
      },
      onLimited: async (req: Native) => {
        // The framework's own object: Express `req` has `originalUrl`, Koa `ctx` has `state`.
        seen.push(`limited ${req.headers['x-who']} ${'originalUrl' in req || 'state' in req}`);
      },
    };
    await app((b) => ({
      routes: [
        route('/text', { ...b, name: 'text', policies: one, status: 403, body: 'Slow down.', ...hooks }),
        route('/json', {
          ...b,
          name: 'json',
          policies: one,
          body: async (_req: Native, decision: { retryAfterMs: number }) => ({
            error: 'rate_limited',
            waitMs: decision.retryAfterMs,
          }),
        }),
        route('/bytes', { ...b, name: 'bytes', policies: one, body: new Uint8Array([104, 105]) }),
        route('/default', { ...b, name: 'default', policies: one, body: () => undefined }),
      ],
    }));
    await send('/text', { 'x-who': 'ann' });
    expect(await send('/text', { 'x-who': 'bob' })).toMatchObject({
      status: 403,
      text: 'Slow down.',
      headers: { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '120' },
    });
    expect(seen).toEqual(['decision ann true', 'decision bob false', 'limited bob true']);
    await send('/json');
    expect(await send('/json')).toMatchObject({
      status: 429,
      body: { error: 'rate_limited', waitMs: 120_000 },
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    await send('/bytes');
    expect(await send('/bytes')).toMatchObject({
      status: 429,
      text: 'hi',
      headers: { 'content-type': 'application/octet-stream' },
    });
    await send('/default');
    expect((await send('/default')).body.type).toBe(QUOTA_EXCEEDED_TYPE);
  });

  it('bans a client denied `after` times: 429 with the ban as Retry-After, a problem saying banned; unban lifts it', async () => {
    let middleware: Middleware & {
      limiter?: { unban(key: string): Promise<void>; ban(key: string, duration: string): Promise<void> };
    } = () => undefined;
    await app((b) => {
      middleware = framework.limit({
        ...b,
        policies: { name: 'api', limit: 2, window: '1m', algorithm: 'fixed-window' },
        ban: { after: 2, within: '1m', for: '10m', escalate: { factor: 2, max: '1h' } },
      });
      return { routes: [{ path: '/ban', limiters: [middleware] }] };
    });
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await send('/ban'));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 429, 429]);
    expect(answers[2]!.body.detail).toBe("Rate limit exceeded (policy 'api'). Retry after 60 seconds.");
    const banned = answers[3]!;
    expect(banned.headers).toEqual({
      'content-type': 'application/problem+json',
      'ratelimit-limit': '2',
      'ratelimit-remaining': '0',
      'ratelimit-reset': '600',
      'ratelimit-policy': '2;w=60',
      'retry-after': '600',
    });
    expect(banned.body).toEqual({
      type: QUOTA_EXCEEDED_TYPE,
      title: 'Request cannot be satisfied as assigned quota has been exceeded',
      status: 429,
      detail: 'Banned for repeatedly exceeding the rate limit. The ban ends in 600 seconds; retry after it.',
      'violated-policies': [],
      retryAfter: 600,
      limit: 2,
      remaining: 0,
      reset: 600,
    });
    // Past the policy's window the ban still refuses, for what is left of it.
    now += 120_500;
    const later = await send('/ban');
    expect([later.status, later.headers['retry-after']]).toEqual([429, '480']);
    expect(counters.downstream).toBe(2);
    await middleware.limiter!.unban('ip:127.0.0.1');
    expect((await send('/ban')).status).toBe(200);
    await middleware.limiter!.ban('ip:127.0.0.1', '90s');
    const manual = await send('/ban');
    expect([manual.status, manual.headers['retry-after'], manual.body.retryAfter]).toEqual([429, '90', 90]);
    expect(log.warnings).toEqual([]);
  });

  it("exposes the limiter on the middleware, to reset a client's count", async () => {
    let middleware: Middleware & { limiter?: { reset(key: string): Promise<void> } } = () => undefined;
    await app((b) => {
      middleware = framework.limit({ ...b, policies: { limit: 1, window: '1m' } });
      return { routes: [{ path: '/reset', limiters: [middleware] }] };
    });
    expect((await send('/reset')).status).toBe(200);
    expect((await send('/reset')).status).toBe(429);
    await middleware.limiter!.reset('ip:127.0.0.1');
    expect((await send('/reset')).status).toBe(200);
  });

  it('answers 503, never 429, when the store is down and onStoreError is deny', async () => {
    await app((b) => ({
      routes: [
        route('/deny', {
          ...b,
          store: deadStore,
          policies: { limit: 5, window: '1m' },
          onStoreError: 'deny',
        }),
        route('/allow', { ...b, store: deadStore, name: 'open', policies: { limit: 5, window: '1m' } }),
      ],
    }));
    const denied = await send('/deny');
    expect(denied.status).toBe(503);
    expect(denied.headers).toEqual({ 'content-type': 'application/problem+json', 'retry-after': '1' });
    expect(denied.body).toEqual({
      type: 'about:blank',
      title: 'Service Unavailable',
      status: 503,
      detail: 'The rate limiter cannot reach its store, so requests are refused until it recovers.',
      retryAfter: 1,
    });
    const open = await send('/allow');
    expect(open.status).toBe(200);
    expect(open.headers).toEqual({ 'content-type': 'application/json; charset=utf-8' });
    expect(log.warnings.map((w) => w.slice(0, 22))).toEqual([
      '[TOLLGATE_STORE_ERROR]',
      '[TOLLGATE_STORE_ERROR]',
    ]);
  });

  it('hands a failing callback to the framework, counting nothing', async () => {
    await app((b) => ({
      routes: [
        route('/cb', {
          ...b,
          policies: { limit: 2, window: '1m' },
          key: (req) => {
            if (req.headers['x-fail']) throw new Error('no session');
            return 'user:1';
          },
        }),
      ],
    }));
    expect(await send('/cb', { 'x-fail': '1' })).toMatchObject({
      status: 500,
      body: { error: 'no session' },
    });
    expect((await send('/cb')).headers['ratelimit-remaining']).toBe('1');
  });

  it('counts a request once when one limiter is mounted twice, and says so', async () => {
    await app((b) => {
      const once = framework.limit({ ...b, policies: { limit: 5, window: '1m' } });
      return { routes: [{ path: '/twice', limiters: [once, once] }] };
    });
    expect((await send('/twice')).headers['ratelimit-remaining']).toBe('4');
    expect((await send('/twice')).headers['ratelimit-remaining']).toBe('3');
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]).toMatch(
      /^\[TOLLGATE_DOUBLE_COUNT\] Limiter 'default' ran twice for one request \(GET \/twice\)/,
    );
  });

  it('counts a request once when two limiters share counters, and says so once', async () => {
    await app((b) => {
      const policies = { limit: 5, window: '1m' } as const;
      const outer = framework.limit({ ...b, name: 'api', policies });
      const inner = framework.limit({ ...b, name: 'api', policies });
      const other = framework.limit({ ...b, name: 'api-burst', policies });
      return {
        routes: [
          { path: '/shared', limiters: [outer, inner] },
          { path: '/apart', limiters: [outer, other] },
        ],
      };
    });
    expect((await send('/shared')).headers['ratelimit-remaining']).toBe('4');
    expect((await send('/shared')).headers['ratelimit-remaining']).toBe('3');
    expect(log.warnings).toEqual([
      expect.stringMatching(
        /^\[TOLLGATE_DOUBLE_COUNT\] Two limiters share the counters of limiter 'api' \(one store, one name, the same policies\) and both ran for one request \(GET \/shared\)/,
      ),
    ]);
    // Another name is other counters: both count.
    expect((await send('/apart')).body).toMatchObject({ limit: 5, remaining: 2 });
    expect(log.warnings).toHaveLength(1);
  });
});

describe('parity', () => {
  it('every framework and store answered the same traffic identically', () => {
    const [first, ...rest] = [...transcripts.entries()];
    expect(first![1].size).toBeGreaterThan(15);
    for (const [variant, transcript] of rest) {
      expect({ variant, transcript: Object.fromEntries(transcript) }).toEqual({
        variant,
        transcript: Object.fromEntries(first![1]),
      });
    }
    expect(unhandled).toEqual([]);
  });
});
