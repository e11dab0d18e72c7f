/**
 * The smallest useful setup: one app-wide limit per client IP address, counters in memory.
 *
 *   node --import tsx examples/express-basic/server.ts      # PORT=3000 by default
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { type RateLimitOptions, rateLimit } from '@tollgate/express';
import express, { type Express, type Request } from 'express';

/** Builds the app; `limits` go to `rateLimit()` as they are (the tests and the demo pass their own). */
export function createApp(
  limits: RateLimitOptions<Request> = { policies: { limit: 100, window: '1m' } },
): Express {
  const app = express();
  // Behind a reverse proxy or load balancer, trust exactly the hops you run, so that `req.ip` (the
  // default key) is the client's address and not the proxy's: app.set('trust proxy', 1)
  app.use(rateLimit(limits));
  app.get('/', (req, res) => {
    res.json({ hello: 'world', remaining: req.rateLimit?.remaining });
  });
  return app;
}

const runDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (runDirectly) {
  const port = Number(process.env.PORT ?? 3000);
  createApp().listen(port, (error) => {
    if (error) throw error;
    console.log(`express-basic listening on http://localhost:${port}`);
  });
}
