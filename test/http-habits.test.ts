/**
 * express-rate-limit and koa-ratelimit habits tollgate supports (issue 11), over real HTTP on both
 * adapters: errors from per-request callbacks, custom answers to a denial, request-based refunds,
 * resetting by request, the decision's `used` and `resetTime`, and coded misconfiguration warnings.
 */
import * as forExpress from '@tollgate/express';
import * as forKoa from '@tollgate/koa';
import express from 'express';
import Koa from 'koa';
import supertest from 'supertest';
import { describe, expect, it } from 'vitest';

function recorder() {
  const warnings: string[] = [];
  const errors: string[] = [];
  return {
    warnings,
    errors,
    warn: (m: string) => void warnings.push(m),
    error: (m: string) => void errors.push(m),
  };
}

describe('a policies function that returns nothing', () => {
  const message =
    "Expected the `policies` function of limiter 'default' to return a policy or an array of policies for every request, got `undefined`.";

  it('Express: reaches the error handler as a CallbackError naming the option (a 500 by default)', async () => {
    const app = express();
    app.use(forExpress.rateLimit({ policies: () => undefined as never, logger: recorder() }));
    app.get('/', (_req, res) => void res.send('ok'));
    let caught: unknown;
    app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      caught = error;
      res.status(500).send('failed');
    });
    await supertest(app).get('/').expect(500, 'failed');
    expect(caught).toMatchObject({ name: 'CallbackError', code: 'TOLLGATE_CALLBACK', option: 'policies' });
    expect((caught as Error).message).toContain(message);
  });

  it("Koa: reaches the app's error handling as a CallbackError (a 500 by default)", async () => {
    const app = new Koa();
    const caught: unknown[] = [];
    app.on('error', (error) => void caught.push(error));
    app.use(forKoa.rateLimit({ policies: () => undefined as never, logger: recorder() }));
    app.use((ctx) => {
      ctx.body = 'ok';
    });
    await supertest(app.callback()).get('/').expect(500);
    expect(caught[0]).toMatchObject({ name: 'CallbackError', code: 'TOLLGATE_CALLBACK', option: 'policies' });
    expect((caught[0] as Error).message).toContain(message);
  });
});

describe('Koa `throw: true`', () => {
  it("sends a denial through the app's central error handling as an HttpError with the fields on error.headers", async () => {
    const app = new Koa();
    const thrown: Array<Record<string, unknown>> = [];
    app.use(async (_ctx, next) => {
      try {
        await next();
      } catch (error) {
        thrown.push(error as Record<string, unknown>);
        throw error;
      }
    });
    app.use(forKoa.rateLimit({ policies: { limit: 1, window: '1m' }, throw: true, logger: recorder() }));
    app.use((ctx) => {
      ctx.body = 'ok';
    });
    const server = supertest(app.callback());
    await server.get('/').expect(200, 'ok');
    const denied = await server.get('/');
    expect(denied.status).toBe(429);
    expect(denied.text).toMatch(/^Rate limit exceeded \(policy '.+'\)\. Retry after \d+ seconds\.$/);
    expect(denied.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(Number(denied.headers['retry-after'])).toBeGreaterThanOrEqual(60);
    expect(denied.headers['ratelimit-remaining']).toBe('0');
    const error = thrown[0]!;
    expect(error).toMatchObject({ status: 429, expose: true, rateLimit: { allowed: false, remaining: 0 } });
    expect(error.headers).toEqual({
      'Retry-After': denied.headers['retry-after'],
      'RateLimit-Limit': '1',
      'RateLimit-Remaining': '0',
      'RateLimit-Reset': denied.headers['ratelimit-reset'],
      'RateLimit-Policy': '1;w=60',
    });
  });

  it('answers as before without it, and refuses a non-boolean', async () => {
    expect(() => forKoa.rateLimit({ policies: { limit: 1, window: '1m' }, throw: 'yes' as never })).toThrow(
      'Expected `throw` to be a boolean, got "yes" (string).',
    );
    const app = new Koa();
    app.use(forKoa.rateLimit({ policies: { limit: 1, window: '1m' }, logger: recorder() }));
    app.use((ctx) => {
      ctx.body = 'ok';
    });
    const server = supertest(app.callback());
    await server.get('/').expect(200);
    await server.get('/').expect(429).expect('content-type', 'application/problem+json');
  });
});

describe('Express `handler`', () => {
  it('is not used for a store failure with onStoreError deny (a 503), and must be a function', async () => {
    expect(() =>
      forExpress.rateLimit({ policies: { limit: 1, window: '1m' }, handler: 'x' as never }),
    ).toThrow('Expected `handler` to be a function `(req, res, next, decision) => void`, got "x" (string).');
    const down = () => Promise.reject(new Error('down'));
    const store = { consume: down, peek: down, refund: down, reset: down };
    let called = false;
    const app = express();
    app.use(
      forExpress.rateLimit({
        policies: { limit: 1, window: '1m' },
        store,
        onStoreError: 'deny',
        logger: recorder(),
        handler: () => {
          called = true;
        },
      }),
    );
    await supertest(app).get('/').expect(503).expect('content-type', 'application/problem+json');
    expect(called).toBe(false);
  });
});

describe('refund.isFailure from the request and response, asynchronously', () => {
  it('Koa: receives ctx and the Node response; a success the app reports is given back', async () => {
    const app = new Koa();
    const seen: Array<[string, number]> = [];
    let closed: Promise<void> = Promise.resolve();
    const limiter = forKoa.rateLimit({
      policies: { limit: 5, window: '1m' },
      key: () => 'k',
      logger: recorder(),
      refund: {
        onSuccess: true,
        isFailure: async (status, ctx, res) => {
          seen.push([ctx.path, res.statusCode]);
          return status >= 400 || ctx.state.failed === true;
        },
      },
    });
    app.use(limiter);
    app.use((ctx) => {
      closed = new Promise((resolve) => ctx.res.once('close', () => setImmediate(resolve)));
      ctx.state.failed = ctx.path === '/soft-failure';
      ctx.body = 'ok';
    });
    const server = supertest(app.callback());
    await server.get('/fine').expect(200);
    await closed;
    expect((await limiter.limiter.peek('k')).remaining).toBe(5);
    await server.get('/soft-failure').expect(200);
    await closed;
    expect((await limiter.limiter.peek('k')).remaining).toBe(4);
    expect(seen).toEqual([
      ['/fine', 200],
      ['/soft-failure', 200],
    ]);
  });
});

describe('middleware.reset(req)', () => {
  it("Koa: resets the counters of the request's key under its tier's policies", async () => {
    const tiers = { free: [{ limit: 1, window: '1m' as const }], pro: [{ limit: 2, window: '1m' as const }] };
    const limiter = forKoa.rateLimit({
      policies: (ctx) => (ctx.get('x-plan') === 'pro' ? tiers.pro : tiers.free),
      key: forKoa.byHeader('x-user'),
      logger: recorder(),
    });
    const app = new Koa();
    app.use(async (ctx, next) => {
      if (ctx.path !== '/login') return next();
      await limiter.reset(ctx);
      ctx.body = 'reset';
    });
    app.use(limiter);
    app.use((ctx) => {
      ctx.body = 'ok';
    });
    const server = supertest(app.callback());
    const get = (path: string) => server.get(path).set('x-user', 'ann').set('x-plan', 'pro');
    await get('/').expect(200);
    await get('/').expect(200);
    await get('/').expect(429);
    await get('/login').expect(200, 'reset');
    await get('/').expect(200);
    // Another user's counters are untouched.
    await server.get('/').set('x-user', 'bob').expect(200);
    await server.get('/').set('x-user', 'bob').expect(429);
    await get('/').expect(200);
    await get('/').expect(429);
  });
});

describe('used and resetTime on the decision', () => {
  const policies = { limit: 5, window: '1m', algorithm: 'fixed-window' } as const;

  it('Express: req.rateLimit carries used and resetTime (a Date), allowed and denied', async () => {
    const app = express();
    const limiter = forExpress.rateLimit({
      policies: { ...policies, limit: 2 },
      logger: recorder(),
      handler: (req, res) =>
        void res.json({ used: req.rateLimit?.used, reset: req.rateLimit?.resetTime.getTime() }),
    });
    app.use(limiter);
    app.get('/', (req, res) => {
      const info = req.rateLimit!;
      res.json({
        used: info.used,
        remaining: info.remaining,
        isDate: info.resetTime instanceof Date,
        reset: info.resetTime.getTime(),
      });
    });
    const before = Date.now();
    const first = (await supertest(app).get('/').expect(200)).body;
    expect(first).toMatchObject({ used: 1, remaining: 1, isDate: true });
    expect(first.reset).toBeGreaterThan(before);
    expect(first.reset).toBeLessThanOrEqual(Date.now() + 60_000);
    expect((await supertest(app).get('/').expect(200)).body).toMatchObject({ used: 2, remaining: 0 });
    const denied = (await supertest(app).get('/').expect(429)).body;
    expect(denied.used).toBe(2);
    // One fixed window: every request of it resets at the same moment (to the clock's millisecond).
    expect(Math.abs(denied.reset - first.reset)).toBeLessThanOrEqual(5);
  });

  it('Koa: ctx.state.rateLimit carries used and resetTime', async () => {
    const app = new Koa();
    app.use(forKoa.rateLimit({ policies, logger: recorder() }));
    app.use((ctx) => {
      const info = ctx.state.rateLimit!;
      ctx.body = { used: info.used, remaining: info.remaining, isDate: info.resetTime instanceof Date };
    });
    const server = supertest(app.callback());
    expect((await server.get('/')).body).toEqual({ used: 1, remaining: 4, isDate: true });
    expect((await server.get('/')).body).toEqual({ used: 2, remaining: 3, isDate: true });
  });
});

describe('coded misconfiguration warnings, once each per limiter', () => {
  const policies = { limit: 100, window: '1m' } as const;
  const codes = (log: { warnings: string[] }) => log.warnings.map((w) => w.slice(1, w.indexOf(']')));

  type Send = (headers: Record<string, string>) => Promise<unknown>;
  const apps: Array<
    [
      string,
      (options: { trust: boolean; validate?: object }) => { send: Send; log: ReturnType<typeof recorder> },
    ]
  > = [
    [
      'Express',
      ({ trust, validate }) => {
        const log = recorder();
        const app = express();
        if (trust) app.set('trust proxy', 1);
        app.use(
          forExpress.rateLimit({
            policies,
            logger: log,
            ...(validate === undefined ? {} : { validate: validate as never }),
          }),
        );
        app.get('/', (_req, res) => void res.send('ok'));
        return { log, send: (headers) => supertest(app).get('/').set(headers).expect(200) };
      },
    ],
    [
      'Koa',
      ({ trust, validate }) => {
        const log = recorder();
        const app = new Koa();
        if (trust) {
          app.proxy = true;
          app.maxIpsCount = 1;
        }
        app.use(
          forKoa.rateLimit({
            policies,
            logger: log,
            ...(validate === undefined ? {} : { validate: validate as never }),
          }),
        );
        app.use((ctx) => {
          ctx.body = 'ok';
        });
        return { log, send: (headers) => supertest(app.callback()).get('/').set(headers).expect(200) };
      },
    ],
  ];

  describe.each(apps)('%s', (_name, make) => {
    it('an address with a port, an invalid address: TOLLGATE_IP_WITH_PORT, TOLLGATE_INVALID_IP, once each', async () => {
      const { send, log } = make({ trust: true });
      await send({ 'x-forwarded-for': '203.0.113.7:5678' });
      await send({ 'x-forwarded-for': '[2001:db8::1]:443' });
      await send({ 'x-forwarded-for': 'not-an-address' });
      await send({ 'x-forwarded-for': 'still junk' });
      expect(codes(log)).toEqual(['TOLLGATE_IP_WITH_PORT', 'TOLLGATE_INVALID_IP']);
    });

    it('a Forwarded header while proxies are not trusted: TOLLGATE_FORWARDED_HEADER once; none when trusted', async () => {
      const untrusted = make({ trust: false });
      await untrusted.send({ forwarded: 'for=203.0.113.7' });
      await untrusted.send({ forwarded: 'for=203.0.113.8' });
      expect(codes(untrusted.log)).toEqual(['TOLLGATE_FORWARDED_HEADER']);
      const trusted = make({ trust: true });
      await trusted.send({ forwarded: 'for=203.0.113.7', 'x-forwarded-for': '203.0.113.7' });
      expect(codes(trusted.log)).toEqual([]);
    });

    it('validate turns a check off by code, or every warning with false', async () => {
      const off = make({ trust: false, validate: { TOLLGATE_FORWARDED_HEADER: false } });
      await off.send({ forwarded: 'for=203.0.113.7', 'x-forwarded-for': '203.0.113.7' });
      expect(codes(off.log)).toEqual(['TOLLGATE_TRUST_PROXY']);
      const none = make({ trust: false, validate: false as never });
      await none.send({ forwarded: 'for=203.0.113.7', 'x-forwarded-for': '203.0.113.7' });
      expect(codes(none.log)).toEqual([]);
    });
  });

  it('validate: an unknown code or a non-boolean is a ConfigError', () => {
    expect(() =>
      forExpress.rateLimit({ policies, validate: { TOLLGATE_TRUST_PROXI: false } as never }),
    ).toThrow(
      /^Unknown option `TOLLGATE_TRUST_PROXI` in `validate`\. Did you mean `TOLLGATE_TRUST_PROXY`\? It takes `TOLLGATE_TRUST_PROXY`, /,
    );
    expect(() => forKoa.rateLimit({ policies, validate: { TOLLGATE_TRUST_PROXY: 'no' as never } })).toThrow(
      'Expected `validate.TOLLGATE_TRUST_PROXY` to be a boolean, got "no" (string).',
    );
  });

  it('an out-of-range ipv6Subnet is a ConfigError at construction', () => {
    expect(() => forExpress.byIp({ ipv6Subnet: 129 })).toThrow(
      'Expected `ipv6Subnet` to be an integer from 1 to 128, got `129` (number).',
    );
    expect(() => forKoa.byIp({ ipv6Subnet: 0 })).toThrow(
      'Expected `ipv6Subnet` to be an integer from 1 to 128, got `0` (number).',
    );
  });

  it('Express: a limiter created per request: TOLLGATE_CREATED_IN_REQUEST once for its logger', async () => {
    const log = recorder();
    const app = express();
    app.use((req, res, next) =>
      forExpress.rateLimit({ policies: { limit: 1, window: '1m' }, logger: log })(req, res, next),
    );
    app.get('/', (_req, res) => void res.send('ok'));
    // Never limited: each request meets a new limiter.
    await supertest(app).get('/').expect(200);
    await supertest(app).get('/').expect(200);
    await supertest(app).get('/').expect(200);
    expect(codes(log)).toEqual(['TOLLGATE_CREATED_IN_REQUEST']);
  });

  it('Koa: a limiter created per request: TOLLGATE_CREATED_IN_REQUEST once for its logger', async () => {
    const log = recorder();
    const app = new Koa();
    app.use((ctx, next) =>
      forKoa.rateLimit({ policies: { limit: 1, window: '1m' }, logger: log })(ctx, next),
    );
    app.use((ctx) => {
      ctx.body = 'ok';
    });
    await supertest(app.callback()).get('/').expect(200);
    await supertest(app.callback()).get('/').expect(200);
    expect(codes(log)).toEqual(['TOLLGATE_CREATED_IN_REQUEST']);
  });

  it('no warning for limiters created at start-up, as the README shows', async () => {
    const log = recorder();
    const app = express();
    app.use(forExpress.rateLimit({ policies: { limit: 100, window: '1m' }, logger: log }));
    app.get('/', (_req, res) => void res.send('ok'));
    await supertest(app).get('/').expect(200);
    expect(log.warnings).toEqual([]);
  });
});

describe("the README's own examples", () => {
  it('log no warning (Express in ten lines, its Koa twin, plain node:http)', async () => {
    const log = recorder();
    const app = express();
    app.use(
      forExpress.rateLimit({
        policies: [
          { limit: 10, window: '1s' },
          { limit: 1000, window: '1h' },
        ],
        logger: log,
      }),
    );
    app.post(
      '/search',
      forExpress.rateLimit({
        name: 'search',
        policies: { limit: 5, window: '10s' },
        key: forExpress.byApiKey(),
        logger: log,
      }),
      (req, res) => void res.json({ left: req.rateLimit?.remaining }),
    );
    await supertest(app).post('/search').set('authorization', 'Bearer k1').expect(200, { left: 4 });
    await supertest(app).get('/').expect(404);

    const koa = new Koa();
    koa.use(
      forKoa.rateLimit({
        policies: [
          { limit: 10, window: '1s' },
          { limit: 1000, window: '1h' },
        ],
        logger: log,
      }),
    );
    koa.use((ctx) => {
      ctx.body = { left: ctx.state.rateLimit?.remaining };
    });
    await supertest(koa.callback()).get('/').expect(200, { left: 9 });

    const { rateLimit, writeResult, NodeRequestView } = await import('@tollgate/core');
    const { createServer } = await import('node:http');
    const limit = rateLimit({ policies: { limit: 100, window: '1m' }, logger: log });
    const server = createServer(async (req, res) => {
      const result = await limit(new NodeRequestView(req, res), req);
      if (result.action === 'error') return void res.writeHead(500).end();
      if (await writeResult(result, res)) res.end('ok');
    });
    await supertest(server).get('/').expect(200, 'ok');
    expect(log.warnings).toEqual([]);
  });
});
