/**
 * The smallest useful setup on Koa: one app-wide limit per client IP address, counters in memory.
 *
 *   node --import tsx examples/koa-basic/server.ts      # PORT=3000 by default
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { type RateLimitOptions, rateLimit } from '@tollgate/koa';
import Koa, { type Context } from 'koa';

/** Builds the app; `limits` go to `rateLimit()` as they are (the tests pass their own). */
export function createApp(
  limits: RateLimitOptions<Context> = { policies: { limit: 100, window: '1m' } },
): Koa {
  const app = new Koa();
  // Behind a reverse proxy or load balancer, trust exactly the hops you run, so that `ctx.ip` (the
  // default key) is the client's address and not the proxy's: app.proxy = true; app.maxIpsCount = 1
  app.use(rateLimit(limits));
  app.use((ctx) => {
    ctx.body = { hello: 'world', remaining: ctx.state.rateLimit?.remaining };
  });
  return app;
}

const runDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (runDirectly) {
  const port = Number(process.env.PORT ?? 3000);
  createApp().listen(port, () => {
    console.log(`koa-basic listening on http://localhost:${port}`);
  });
}
