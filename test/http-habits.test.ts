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

  it('Express: reaches the error handler as a ConfigError naming the option (a 500 by default)', async () => {
    const app = express();
    app.use(forExpress.rateLimit({ policies: () => undefined as never, logger: recorder() }));
    app.get('/', (_req, res) => void res.send('ok'));
    let caught: unknown;
    app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      caught = error;
      res.status(500).send('failed');
    });
    await supertest(app).get('/').expect(500, 'failed');
    expect(caught).toMatchObject({ name: 'ConfigError', code: 'TOLLGATE_CONFIG' });
    expect((caught as Error).message).toContain(message);
  });

  it("Koa: reaches the app's error handling as a ConfigError (a 500 by default)", async () => {
    const app = new Koa();
    const caught: unknown[] = [];
    app.on('error', (error) => void caught.push(error));
    app.use(forKoa.rateLimit({ policies: () => undefined as never, logger: recorder() }));
    app.use((ctx) => {
      ctx.body = 'ok';
    });
    await supertest(app.callback()).get('/').expect(500);
    expect(caught[0]).toMatchObject({ name: 'ConfigError', code: 'TOLLGATE_CONFIG' });
    expect((caught[0] as Error).message).toContain(message);
  });
});
