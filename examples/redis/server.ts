/**
 * Limits shared by every process of an app through one Redis: run it twice (or on ten machines)
 * and a client gets one budget, not one per process.
 *
 *   REDIS_URL=redis://localhost:6379 node --import tsx examples/redis/server.ts
 *   node --import tsx examples/redis/run.ts      # two servers + a throwaway Redis, see README.md
 *
 * Environment: REDIS_URL (default redis://localhost:6379), PORT (default 3000; 0 picks a free one),
 * HOST (default all interfaces), RATE_LIMIT and RATE_WINDOW (default 100 per '1m'), REDIS_PREFIX
 * (default 'tollgate:').
 */
import { realpathSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import {
  type Logger,
  MemoryStore,
  type Policy,
  type RatePolicy,
  rateLimit,
  type Store,
} from '@tollgate/express';
import { RedisStore } from '@tollgate/redis';
import express, { type Express } from 'express';
import { Redis } from 'ioredis';

export interface AppOptions {
  /** A RedisStore (or any store); every process given the same Redis shares the counters. */
  store: Store;
  /** @default 100 requests per minute per client */
  policies?: Policy | readonly Policy[];
  /** @default console */
  logger?: Logger;
}

export function createApp({
  store,
  policies = { limit: 100, window: '1m' },
  logger = console,
}: AppOptions): Express {
  const app = express();
  app.use(
    rateLimit({
      policies,
      store,
      // While Redis is unreachable, each process limits on its own instead of letting everything
      // through; tollgate goes back to Redis by itself once it answers again.
      fallback: new MemoryStore(),
      logger,
    }),
  );
  app.get('/', (req, res) => {
    res.json({ pid: process.pid, remaining: req.rateLimit?.remaining });
  });
  return app;
}

const runDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (runDirectly) {
  const url = process.env.REDIS_URL ?? 'redis://localhost:6379';
  const where = new URL(url).host; // no password in the logs
  // maxRetriesPerRequest: 0: while disconnected, fail at once (tollgate then uses the fallback)
  // rather than queue requests and replay stale ones after a reconnect.
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  client.on('error', (error: Error) => console.error(`Redis ${where}: ${error.message}`));
  try {
    await client.connect();
  } catch (error) {
    console.error(`Cannot reach Redis at ${where} (set REDIS_URL): ${(error as Error).message}`);
    client.disconnect();
    process.exit(1);
  }
  const store = new RedisStore({ client, prefix: process.env.REDIS_PREFIX ?? 'tollgate:' });
  // A string from the environment cannot be checked at compile time; the limiter checks it at start.
  const window = (process.env.RATE_WINDOW ?? '1m') as RatePolicy['window'];
  const policies = { limit: Number(process.env.RATE_LIMIT ?? 100), window };
  const app = createApp({ store, policies });
  const port = Number(process.env.PORT ?? 3000);
  const host = process.env.HOST;
  const onListening = (error?: Error) => {
    if (error) throw error;
    const { port } = server.address() as AddressInfo;
    console.log(
      `redis example (pid ${process.pid}) listening on http://${host ?? 'localhost'}:${port}, Redis ${where}`,
    );
  };
  const server = host === undefined ? app.listen(port, onListening) : app.listen(port, host, onListening);
  const stop = () => {
    server.close(() => void client.quit());
    server.closeAllConnections();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
