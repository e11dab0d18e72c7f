import type { ServerResponse } from 'node:http';
import { checkOptions, durationOption } from '../check-options.js';
import { configError } from '../errors.js';
import type { Limiter } from '../limiter.js';
import type { Duration } from '../types.js';
import { Broadcaster } from './broadcaster.js';
import { Collector } from './collector.js';
import { buildPage } from './page.js';
import { UsagePoller, type UsageSource } from './usage-poller.js';

/**
 * Options of `dashboard()`. `Req` is the framework's own request (Express `req`, Koa `ctx`), as the
 * guard receives it.
 */
export interface DashboardOptions<Req> {
  /**
   * Who may see the dashboard: only `true` (or a promise of it) opens it; anything else answers
   * 403. Required: the page shows who is being limited and how your store fares.
   * @example (req) => req.user?.role === 'admin'
   */
  guard: (req: Req) => boolean | Promise<boolean>;
  /**
   * The limiters to show: `rateLimit()` middlewares or limiters. Their policies are listed before
   * the first request, and other limiters in the process are left out.
   * @default every limiter of this process, from its first decision on
   */
  limiters?: readonly (Limiter | { readonly limiter: Limiter })[];
  /**
   * The usage recorder given to `rateLimit({ usage })` (what `createUsage()` returned): the page
   * then shows the busiest routes of the last hour (requests and limited), read at most every 5 s
   * while a page is open.
   */
  usage?: UsageSource;
  /**
   * Where the page is served; its live stream is at `${path}/events` and a JSON snapshot at
   * `${path}/data`. Relative to where the middleware is mounted.
   * @default '/tollgate'
   */
  path?: string;
  /**
   * How often open pages receive a new snapshot: milliseconds or a duration string, at least 100 ms.
   * @default '1s'
   */
  interval?: Duration;
  /**
   * Live streams open at once; one more is answered 503 with `Retry-After`.
   * @default 10
   */
  maxClients?: number;
}

const OPTIONS = ['guard', 'limiters', 'usage', 'path', 'interval', 'maxClients'];
/** How often an open page's usage numbers are read again. */
const USAGE_EVERY_MS = 5000;

/** The framework-free dashboard: the adapters hand it a path, their request and Node's response. */
export interface DashboardHandler<Req> {
  /**
   * Answers `path` when it is the dashboard's (page, `/events`, `/data`); `false` and nothing
   * written for any other path (the framework goes on). Rejects when the guard throws.
   */
  serve(path: string, method: string, req: Req, res: ServerResponse): false | Promise<void>;
  /** Live streams open now. */
  readonly clients: number;
  /** Ends the live streams and stops listening to the limiters' events; then serves nothing. */
  close(): void;
}

/** Builds the dashboard once: options checked here, events listened to from now on. */
export function createDashboard<Req>(
  options: DashboardOptions<Req>,
  adapterOptions: readonly string[] = [],
): DashboardHandler<Req> {
  checkOptions(options, [...OPTIONS, ...adapterOptions], '`dashboard()` options');
  const { guard } = options;
  if (typeof guard !== 'function') {
    throw configError(
      'guard',
      'a function `(req) => boolean | Promise<boolean>`',
      guard,
      'The dashboard shows who is being limited: pass a check that admits only your operators, e.g. `guard: (req) => req.user?.role === "admin"`.',
    );
  }
  const base = checkPath(options.path ?? '/tollgate');
  const intervalMs = durationOption(options.interval, 'interval', 1000);
  if (intervalMs < 100) throw configError('interval', 'at least 100 ms', options.interval);
  const maxClients = options.maxClients ?? 10;
  if (!Number.isInteger(maxClients) || maxClients < 1) {
    throw configError('maxClients', 'a positive integer', options.maxClients);
  }
  const usage = usageOf(options.usage);
  const collector = new Collector(limitersOf(options.limiters));
  const page = buildPage();
  const data = () => JSON.stringify({ ...collector.snapshot(), usage: usage?.current() });
  const broadcaster = new Broadcaster(intervalMs, () => `event: snapshot\ndata: ${data()}\n\n`);
  let closed = false;
  collector.start();

  const routes: Readonly<Record<string, Route>> = {
    [base || '/']: (method, res) => answer(res, method, 200, page.headers, page.html),
    [`${base}/`]: (method, res) => answer(res, method, 200, page.headers, page.html),
    [`${base}/data`]: async (method, res) => {
      await usage?.refresh();
      answer(res, method, 200, JSON_HEADERS, data());
    },
    [`${base}/events`]: (method, res) => {
      if (method !== 'GET') return answer(res, method, 405, { ...TEXT_HEADERS, Allow: 'GET' }, 'GET only.\n');
      if (broadcaster.size >= maxClients) {
        return answer(
          res,
          method,
          503,
          { ...TEXT_HEADERS, 'Retry-After': '5' },
          'Too many open dashboards.\n',
        );
      }
      res.writeHead(200, EVENT_HEADERS);
      // Reconnect after 2 s when the stream drops (a restart, a proxy's idle timeout).
      res.write('retry: 2000\n\n');
      broadcaster.add(res);
    },
  };

  async function guarded(
    route: (method: string, res: ServerResponse) => void,
    method: string,
    req: Req,
    res: ServerResponse,
  ) {
    const admitted = (await guard(req)) === true;
    if (res.destroyed || res.headersSent) return;
    if (!admitted)
      return answer(res, method, 403, TEXT_HEADERS, 'The dashboard guard refused this request.\n');
    if (method !== 'GET' && method !== 'HEAD') {
      return answer(res, method, 405, { ...TEXT_HEADERS, Allow: 'GET, HEAD' }, 'GET or HEAD only.\n');
    }
    await route(method, res);
  }

  return {
    serve(path, method, req, res) {
      const route = closed ? undefined : routes[path];
      return route === undefined ? false : guarded(route, method, req, res);
    },
    get clients() {
      return broadcaster.size;
    },
    close() {
      closed = true;
      broadcaster.closeAll();
      collector.stop();
    },
  };
}

type Route = (method: string, res: ServerResponse) => void | Promise<void>;

const TEXT_HEADERS = { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' };
const JSON_HEADERS = { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' };
const EVENT_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-store',
  Connection: 'keep-alive',
  // nginx buffers proxied responses by default, which would hold every event back.
  'X-Accel-Buffering': 'no',
};

function answer(
  res: ServerResponse,
  method: string,
  status: number,
  headers: Readonly<Record<string, string>>,
  body: string,
): void {
  res.writeHead(status, { ...headers, 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(method === 'HEAD' ? undefined : body);
}

function checkPath(path: unknown): string {
  if (typeof path !== 'string' || !/^\/[A-Za-z0-9._~!$&'()*+,;=:@/-]*$/.test(path) || path.includes('//')) {
    throw configError('path', "a path such as '/tollgate' (a leading `/`, no query)", path);
  }
  return path.endsWith('/') ? path.slice(0, -1) : path;
}

function limitersOf(limiters: DashboardOptions<unknown>['limiters']) {
  if (limiters === undefined) return undefined;
  if (!Array.isArray(limiters)) {
    throw configError('limiters', 'an array of `rateLimit()` middlewares or limiters', limiters);
  }
  return limiters.map((entry: unknown, i) => {
    const candidate = entry as { limiter?: unknown; name?: unknown } | null;
    const limiter =
      (typeof candidate === 'function' || typeof candidate === 'object') &&
      candidate !== null &&
      'limiter' in candidate
        ? candidate.limiter
        : candidate;
    const { name, policies } = (limiter ?? {}) as Partial<Limiter>;
    if (typeof name !== 'string') {
      throw configError(`limiters[${i}]`, 'a `rateLimit()` middleware or a limiter', entry);
    }
    return { name, policies };
  });
}

function usageOf(usage: unknown): UsagePoller | undefined {
  if (usage === undefined) return undefined;
  if (typeof (usage as Partial<UsageSource> | null)?.topRoutes !== 'function') {
    throw configError('usage', 'what `createUsage()` returns', usage);
  }
  return new UsagePoller(usage as UsageSource, USAGE_EVERY_MS);
}
