/**
 * express-rate-limit's own cases for `handler`, `requestWasSuccessful` and `resetKey`
 * (test/library/middleware-test.ts), ported to tollgate over real Express and HTTP: the same
 * expectations, written for tollgate's options (`handler`, `refund.isFailure(req, res)`,
 * `middleware.reset(req)`).
 */
import { MemoryStore, type PolicySet } from '@tollgate/core';
import { rateLimit } from '@tollgate/express';
import express, { type NextFunction, type Request, type Response } from 'express';
import supertest from 'supertest';
import { describe, expect, it } from 'vitest';

const quiet = { warn: () => {}, error: () => {} };

/** express-rate-limit's test server: `/` answers 'Hi there!', `/error` 400, behind `middleware`. */
function createServer(...middleware: express.RequestHandler[]) {
  const app = express();
  app.use(...middleware);
  app.get('/', (_req, res) => void res.send('Hi there!'));
  app.get('/error', (_req, res) => void res.sendStatus(400));
  return app;
}

describe('handler', () => {
  it('should use a custom handler when specified', async () => {
    const app = createServer(
      rateLimit({
        policies: { limit: 1, window: '1m' },
        logger: quiet,
        handler: (_req, res) => void res.status(420).end('Enhance your calm'),
      }),
    );
    await supertest(app).get('/').expect(200);
    await supertest(app).get('/').expect(420, 'Enhance your calm');
  });

  it('should forward errors in the handler using `next()`', async () => {
    let errorCaught = false;
    const app = createServer(
      rateLimit({
        policies: { limit: 1, window: '1m' },
        logger: quiet,
        handler: () => {
          throw new Error('420: Enhance your calm');
        },
      }),
    );
    app.use((error: Error, _req: Request, res: Response, _next: NextFunction) => {
      errorCaught = true;
      res.status(500).send(error.message);
    });
    await supertest(app).get('/').expect(200);
    await supertest(app).get('/').expect(500, '420: Enhance your calm');
    expect(errorCaught).toBe(true);
  });

  it('should handle two rate-limiters with their own handlers operating independently', async () => {
    const keyLimiter = rateLimit({
      policies: { limit: 2, window: '1m' },
      name: 'per-key',
      logger: quiet,
      key: (req) => String(req.query.key),
      handler: (_req, res) => void res.status(420).end('Enhance your calm'),
    });
    const globalLimiter = rateLimit({
      policies: { limit: 5, window: '1m' },
      name: 'global',
      logger: quiet,
      key: () => 'global',
      handler: (_req, res) => void res.status(429).end('Too many requests'),
    });
    let seen: Request | undefined;
    const save = (req: Request, _res: Response, next: NextFunction) => {
      seen = req;
      next();
    };
    const app = createServer(save, keyLimiter, globalLimiter);
    const get = (key: number) => supertest(app).get('/').query({ key });

    await get(1).expect(200);
    // tollgate shows the most restrictive decision of stacked limiters on req.rateLimit.
    expect(seen?.rateLimit).toMatchObject({ limit: 2, remaining: 1 });
    await get(2).expect(200);
    await get(1).expect(200);
    expect(seen?.rateLimit).toMatchObject({ limit: 2, remaining: 0 });
    await get(2).expect(200);
    expect(seen?.rateLimit).toMatchObject({ remaining: 0 });
    await get(1).expect(420, 'Enhance your calm');
    expect(seen?.rateLimit).toMatchObject({ limit: 2, remaining: 0 });
    await get(3).expect(200);
    await get(3).expect(429, 'Too many requests');
    expect(seen?.rateLimit).toMatchObject({ limit: 5, remaining: 0 });
  });

  it('sets the status, the rate-limit fields and Retry-After before the handler, and no body type', async () => {
    const app = createServer(
      rateLimit({
        policies: { limit: 1, window: '1m' },
        logger: quiet,
        handler: (req, res) => void res.send(`wait ${req.rateLimit?.retryAfterMs} ms`),
      }),
    );
    await supertest(app).get('/').expect(200);
    const denied = await supertest(app).get('/');
    expect(denied.status).toBe(429);
    expect(Number(denied.headers['retry-after'])).toBeGreaterThanOrEqual(60);
    expect(denied.headers['ratelimit-remaining']).toBe('0');
    expect(denied.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(denied.text).toMatch(/^wait \d+ ms$/);
  });
});

/** express-rate-limit's MockStore's `decrementWasCalled`, over a real MemoryStore. */
class CountingStore extends MemoryStore {
  refunds = 0;
  resets: string[] = [];
  override refund(key: string, set: PolicySet, cost: number, countedAt?: number): Promise<void> {
    this.refunds++;
    return super.refund(key, set, cost, countedAt);
  }
  override reset(key: string, set: PolicySet): Promise<void> {
    this.resets.push(key);
    return super.reset(key, set);
  }
}

/**
 * An app whose routes run after `limiter`, and a promise per request that settles once its response
 * has closed and the refund it triggered (its `close` listener ran first) has reached the store.
 */
function refundServer(limiter: express.RequestHandler) {
  let closed: Promise<void> = Promise.resolve();
  const afterClose: express.RequestHandler = (_req, res, next) => {
    closed = new Promise((resolve) => res.once('close', () => setImmediate(resolve)));
    next();
  };
  const app = createServer(limiter, afterClose);
  return { app, closed: () => closed };
}

describe('requestWasSuccessful (refund.isFailure from the request and response)', () => {
  const cases = [
    {
      name: 'should decrement hits when requests succeed and a custom `requestWasSuccessful` method used',
      isFailure: (_status: number, _req: Request, res: { statusCode: number }) => res.statusCode !== 200,
      path: '/',
      refunded: 1,
    },
    {
      name: 'should not decrement hits when requests fail and a custom `requestWasSuccessful` method used',
      isFailure: (_status: number, _req: Request, res: { statusCode: number }) => res.statusCode !== 200,
      path: '/error',
      refunded: 0,
    },
    {
      name: 'should decrement hits when the request says it succeeded (from the request)',
      isFailure: (_status: number, req: Request) => req.query.success !== '1',
      path: '/?success=1',
      refunded: 1,
    },
    {
      name: 'should not decrement hits when the request says it failed (from the request)',
      isFailure: (_status: number, req: Request) => req.query.success !== '1',
      path: '/?success=0',
      refunded: 0,
    },
    {
      name: 'should decrement hits when an asynchronous `requestWasSuccessful` resolves success',
      isFailure: async (_status: number, req: Request) => req.query.success !== '1',
      path: '/?success=1',
      refunded: 1,
    },
    {
      name: 'should not decrement hits when an asynchronous `requestWasSuccessful` resolves failure',
      isFailure: async (_status: number, req: Request) => req.query.success !== '1',
      path: '/?success=0',
      refunded: 0,
    },
  ];
  it.each(cases)('$name', async ({ isFailure, path, refunded }) => {
    const store = new CountingStore();
    const limiter = rateLimit({
      policies: { limit: 5, window: '1m' },
      store,
      logger: quiet,
      key: () => 'k',
      refund: { onSuccess: true, isFailure },
    });
    const { app, closed } = refundServer(limiter);
    await supertest(app).get(path);
    await closed();
    expect(store.refunds).toBe(refunded);
    expect((await limiter.limiter.peek('k')).remaining).toBe(5 - 1 + refunded);
  });

  it('logs a rejecting isFailure and refunds nothing', async () => {
    const store = new CountingStore();
    const errors: string[] = [];
    const limiter = rateLimit({
      policies: { limit: 5, window: '1m' },
      store,
      logger: { warn: () => {}, error: (m) => void errors.push(m) },
      key: () => 'k',
      refund: { onSuccess: true, isFailure: () => Promise.reject(new Error('no verdict')) },
    });
    const { app, closed } = refundServer(limiter);
    await supertest(app).get('/').expect(200);
    await closed();
    expect(store.refunds).toBe(0);
    expect(errors).toEqual(["[tollgate] refund.isFailure of limiter 'default' failed: no verdict"]);
  });
});

describe('resetKey (middleware.reset(req))', () => {
  it('should call `resetKey` on the store, with the key the request maps to', async () => {
    const store = new CountingStore();
    const limiter = rateLimit({ policies: { limit: 2, window: '1m' }, store, logger: quiet });
    const app = express();
    app.post('/login', async (req, res) => {
      await limiter.reset(req);
      res.send('reset');
    });
    app.use(limiter);
    app.get('/', (_req, res) => void res.send('Hi there!'));
    await supertest(app).get('/').expect(200);
    await supertest(app).get('/').expect(200);
    await supertest(app).get('/').expect(429);
    await supertest(app).post('/login').expect(200, 'reset');
    expect(store.resets).toEqual(['ip:127.0.0.1']);
    await supertest(app).get('/').expect(200);
    await supertest(app).get('/').expect(200);
    await supertest(app).get('/').expect(429);
  });

  it('is needed: limiter.reset(req.ip) resets a key no request is counted under', async () => {
    const limiter = rateLimit({ policies: { limit: 1, window: '1m' }, logger: quiet });
    const app = express();
    app.post('/reset-by-ip', async (req, res) => {
      await limiter.limiter.reset(req.ip!);
      res.send('reset');
    });
    app.use(limiter);
    app.get('/', (_req, res) => void res.send('Hi there!'));
    await supertest(app).get('/').expect(200);
    await supertest(app).post('/reset-by-ip').expect(200);
    await supertest(app).get('/').expect(429);
  });
});
