/**
 * Per-route limits stacked under an app-wide one: every request counts against `app`; POST /login
 * also against the strict `login` limiter, GET /search against the looser `search` one. A request
 * must fit every limiter it passes, and the headers show the most restrictive of them.
 *
 *   node --import tsx examples/per-route/server.ts      # PORT=3000 by default
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { type Logger, MemoryStore, rateLimit, type Store } from '@tollgate/express';
import express, { type Express } from 'express';

export interface AppOptions {
  /** Where all three limiters keep their counters. @default a new MemoryStore */
  store?: Store;
  /** @default console */
  logger?: Logger;
}

export function createApp({ store = new MemoryStore(), logger = console }: AppOptions = {}): Express {
  // One store for all three: the limiter `name` keeps their counters apart. Without distinct names,
  // two limiters on one store would share counters for the same client (tollgate warns about it).
  const app = express();
  app.use(rateLimit({ name: 'app', policies: { name: 'app', limit: 300, window: '1m' }, store, logger }));

  // Strict: guessing passwords should be slow. Two policies, both must allow: a short burst and a
  // daily cap. To count only failed attempts, add `refund: { onSuccess: true }`.
  const loginLimit = rateLimit({
    name: 'login',
    policies: [
      { name: 'login-burst', limit: 5, window: '1m' },
      { name: 'login-daily', limit: 50, window: '1d' },
    ],
    store,
    logger,
  });
  // Looser: searching is cheap but not free.
  const searchLimit = rateLimit({
    name: 'search',
    policies: { name: 'search', limit: 60, window: '1m' },
    store,
    logger,
  });

  app.post('/login', loginLimit, express.json(), (req, res) => {
    const { username, password } = (req.body ?? {}) as { username?: unknown; password?: unknown };
    if (username === 'demo' && password === 'demo') res.json({ token: 'a-session-token' });
    else res.status(401).json({ error: 'wrong username or password' });
  });
  app.get('/search', searchLimit, (req, res) => {
    res.json({ query: req.query.q ?? '', results: [] });
  });
  app.get('/', (_req, res) => {
    res.json({ routes: ['POST /login', 'GET /search?q=...'] });
  });
  return app;
}

const runDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (runDirectly) {
  const port = Number(process.env.PORT ?? 3000);
  createApp().listen(port, (error) => {
    if (error) throw error;
    console.log(`per-route listening on http://localhost:${port}`);
  });
}
