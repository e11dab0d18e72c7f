/**
 * The adapters as users write them: mounted on Express 4 and 5, Koa 2 and 3 and @koa/router with no
 * casts (so `tsc` checks that one source fits every supported version's types), callbacks typed
 * with each framework's own request.
 */

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import * as forExpress from '@tollgate/express';
import * as forKoa from '@tollgate/koa';
import express5 from 'express';
import express4 from 'express4';
import Koa3 from 'koa';
import Koa2 from 'koa2';
import Koa2Lowest from 'koa2-lowest';
import Koa3Lowest from 'koa3-lowest';
import ky, { HTTPError } from 'ky';
import supertest from 'supertest';
import { describe, expect, it } from 'vitest';

const policies = { limit: 5, window: '1m' as const };
const quiet = { warn: () => {}, error: () => {} };

describe('@tollgate/express', () => {
  it('mounts on Express 4 with its own types, and puts the decision on req.rateLimit', async () => {
    const app = express4();
    app.get(
      '/',
      forExpress.rateLimit({
        policies,
        logger: quiet,
        key: (req) => (req.query.user ? `user:${req.query.user}` : undefined),
      }),
      (req, res) => {
        res.json({ key: req.rateLimit?.key, remaining: req.rateLimit?.remaining });
      },
    );
    expect((await supertest(app).get('/?user=ann')).body).toEqual({ key: 'user:ann', remaining: 4 });
  });

  it('mounts on Express 5 with app.use and takes its request in every callback', async () => {
    const app = express5();
    app.use(
      forExpress.rateLimit({
        policies: (req) => (req.get('x-plan') === 'pro' ? [{ limit: 50, window: '1m' }] : [policies]),
        key: forExpress.byHeader('x-org', { fallback: forExpress.byIp() }),
        cost: (req) => (req.method === 'POST' ? 2 : 1),
        skip: (req) => req.path === '/health',
        onLimited: (req, decision) => void req.get(decision.key),
        logger: quiet,
      }),
    );
    app.all('/{*any}', (req, res) => void res.json({ remaining: req.rateLimit?.remaining ?? null }));
    expect((await supertest(app).post('/x').set('x-org', 'acme')).body).toEqual({ remaining: 3 });
    expect((await supertest(app).get('/health')).body).toEqual({ remaining: null });
  });
});

describe('@tollgate/koa', () => {
  it('mounts on Koa 2 and puts the decision on ctx.state.rateLimit', async () => {
    const app = new Koa2();
    app.use(forKoa.rateLimit({ policies, key: forKoa.byApiKey({ fallback: forKoa.byIp() }), logger: quiet }));
    app.use((ctx) => {
      ctx.body = { remaining: ctx.state.rateLimit?.remaining };
    });
    expect((await supertest(app.callback()).get('/').set('x-api-key', 'k')).body).toEqual({ remaining: 4 });
  });

  it('mounts on Koa 3 through @koa/router, per route', async () => {
    const app = new Koa3();
    const router = new Router();
    router.get(
      '/search',
      forKoa.rateLimit({ policies, name: 'search', skip: (ctx) => ctx.query.free === '1', logger: quiet }),
      (ctx) => {
        ctx.body = { remaining: ctx.state.rateLimit?.remaining ?? null };
      },
    );
    app.use(router.routes());
    expect((await supertest(app.callback()).get('/search')).body).toEqual({ remaining: 4 });
    expect((await supertest(app.callback()).get('/search?free=1')).body).toEqual({ remaining: null });
  });

  it.each([
    ['Koa 2', () => new Koa2()],
    ['Koa 3', () => new Koa3()],
  ])(
    'keeps the rate-limit fields on an error thrown downstream on %s, as Express does',
    async (_, create) => {
      const fields = (res: { headers: Record<string, unknown> }) =>
        Object.fromEntries(Object.entries(res.headers).filter(([name]) => name.startsWith('ratelimit')));
      const expected = {
        'ratelimit-limit': '5',
        'ratelimit-remaining': '4',
        'ratelimit-reset': '60',
        'ratelimit-policy': '5;w=60',
      };
      const limit = {
        policies: { algorithm: 'fixed-window' as const, limit: 5, window: '1m' as const },
        logger: quiet,
      };

      const koa = create() as unknown as Koa3;
      koa.silent = true;
      koa.use(forKoa.rateLimit(limit));
      koa.use((ctx) => {
        // Koa's own error handler answers: it clears every header first, then sets `error.headers`.
        if (ctx.path === '/teapot') ctx.throw(418, { headers: { 'x-brew': 'no' } });
        ctx.throw(404);
      });
      const missing = await supertest(koa.callback()).get('/');
      expect([missing.status, fields(missing)]).toEqual([404, expected]);
      const teapot = await supertest(koa.callback()).get('/teapot');
      expect([teapot.status, teapot.headers['x-brew'], fields(teapot)]).toEqual([
        418,
        'no',
        { ...expected, 'ratelimit-remaining': '3' },
      ]);

      const app = express5();
      app.use(forExpress.rateLimit(limit));
      app.use(() => {
        throw Object.assign(new Error('Not Found'), { status: 404 });
      });
      const onExpress = await supertest(app).get('/');
      expect([onExpress.status, fields(onExpress)]).toEqual([404, expected]);
    },
  );

  it.each([
    ['Koa 2', () => new Koa2()],
    ['Koa 3', () => new Koa3()],
    ['Koa 2.13.0', () => new Koa2Lowest()],
    ['Koa 3.0.0', () => new Koa3Lowest()],
  ])('counts by the address Koa would give ctx.ip on %s, however the app decides it', async (_, create) => {
    const keyOf = async (setup: (app: Koa3) => void, headers: Record<string, string> = {}) => {
      const app = create() as unknown as Koa3;
      setup(app);
      app.use(forKoa.rateLimit({ policies, logger: quiet }));
      app.use((ctx) => {
        ctx.body = { key: ctx.state.rateLimit?.key, ip: ctx.ip };
      });
      const keys = [];
      // Twice: the first request of a process may take another path than the next ones.
      for (let i = 0; i < 2; i++) keys.push((await supertest(app.callback()).get('/').set(headers)).body);
      return keys;
    };
    const [first, second] = await keyOf(() => {});
    expect(first!.ip).toMatch(/^(::ffff:)?127\.0\.0\.1$/);
    expect([first, second]).toEqual([
      { key: 'ip:127.0.0.1', ip: first!.ip },
      { key: 'ip:127.0.0.1', ip: first!.ip },
    ]);
    // An earlier middleware sets ctx.request.ip (Koa's setter).
    const set = { key: 'ip:9.9.9.9', ip: '9.9.9.9' };
    expect(
      await keyOf((app) =>
        app.use((ctx, next) => {
          ctx.request.ip = '9.9.9.9';
          return next();
        }),
      ),
    ).toEqual([set, set]);
    // The app redefines ip for all its requests.
    const redefined = { key: 'ip:8.8.8.8', ip: '8.8.8.8' };
    expect(
      await keyOf((app) =>
        Object.defineProperty(app.request, 'ip', { get: () => '8.8.8.8', configurable: true }),
      ),
    ).toEqual([redefined, redefined]);
    // Behind a trusted proxy.
    const proxied = { key: 'ip:7.7.7.7', ip: '7.7.7.7' };
    expect(
      await keyOf(
        (app) => {
          app.proxy = true;
        },
        { 'x-forwarded-for': '7.7.7.7' },
      ),
    ).toEqual([proxied, proxied]);
  });
});

describe('the deny list on the adapters’ own answering paths', () => {
  const deny = ['127.0.0.0/8', '::1'];

  it('Express: a denied client gets the 403 problem, never the `handler` meant for requests over the limit', async () => {
    const seen: string[] = [];
    const app = express5();
    app.use(
      forExpress.rateLimit({
        policies,
        deny,
        logger: quiet,
        handler: (_req, res) => {
          seen.push('handler');
          res.end('over the limit');
        },
      }),
    );
    app.get('/', (_req, res) => void res.send('ok'));
    const res = await supertest(app).get('/');
    expect([res.status, res.headers['content-type'], res.body.title]).toEqual([
      403,
      'application/problem+json',
      'Access denied',
    ]);
    expect(seen).toEqual([]);
  });

  it.each([
    ['Koa 2', () => new Koa2()],
    ['Koa 3', () => new Koa3()],
  ])('%s with `throw`: a denied client is thrown as a 403 with the problem’s detail', async (_, create) => {
    const app = create() as unknown as Koa3;
    app.silent = true;
    app.use(forKoa.rateLimit({ policies, deny, throw: true, logger: quiet }));
    app.use((ctx) => {
      ctx.body = 'ok';
    });
    const res = await supertest(app.callback()).get('/');
    expect([res.status, res.text]).toEqual([
      403,
      'Requests from this client are refused by the deny list; waiting does not help.',
    ]);
  });
});

describe('a retrying client', () => {
  it('does not resend a request whose cost can never fit (ky, four retries allowed)', async () => {
    let arrived = 0;
    const app = express5();
    app.use((_req, _res, next) => {
      arrived++;
      next();
    });
    app.use(
      forExpress.rateLimit({
        policies: { algorithm: 'fixed-window', limit: 10, window: '1m' },
        cost: 11,
        logger: quiet,
      }),
    );
    const server = createServer(app).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const error = await ky(`http://127.0.0.1:${port}/`, { retry: { limit: 4 } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HTTPError);
      expect((error as HTTPError).response.status).toBe(403);
      expect((error as HTTPError).response.headers.get('retry-after')).toBeNull();
      expect(arrived).toBe(1);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
