// Real HTTP servers on 127.0.0.1 for the client tests: tollgate's own Express and Koa middleware,
// and scripted servers whose answers a test writes.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HeaderMode, Policy } from '@tollgate/core';
import { rateLimit as expressRateLimit } from '@tollgate/express';
import { rateLimit as koaRateLimit } from '@tollgate/koa';
import express from 'express';
import Koa from 'koa';

export interface Running {
  url: string;
  /** Statuses answered, in order. */
  statuses: number[];
  /** Epoch ms at which each allowed request was answered. */
  allowedAt: number[];
  close(): Promise<void>;
}

async function listen(server: Server, statuses: number[], allowedAt: number[]): Promise<Running> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    statuses,
    allowedAt,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A tollgate server: Express or Koa, one policy, one header mode. */
export async function tollgateServer(
  framework: 'express' | 'koa',
  policy: Policy,
  headers: HeaderMode,
): Promise<Running> {
  const statuses: number[] = [];
  const allowedAt: number[] = [];
  const record = (status: number) => {
    statuses.push(status);
    if (status < 400) allowedAt.push(Date.now());
  };
  if (framework === 'express') {
    const app = express();
    app.use((_req, res, next) => {
      res.on('finish', () => record(res.statusCode));
      next();
    });
    app.use(expressRateLimit({ policies: policy, headers }));
    app.get('/', (_req, res) => {
      res.json({ ok: true });
    });
    return listen(createServer(app), statuses, allowedAt);
  }
  const app = new Koa();
  app.use(async (ctx, next) => {
    ctx.res.on('finish', () => record(ctx.res.statusCode));
    await next();
  });
  app.use(koaRateLimit({ policies: policy, headers }));
  app.use((ctx) => {
    ctx.body = { ok: true };
  });
  return listen(createServer(app.callback()), statuses, allowedAt);
}

/** A server whose every answer `handle` writes. */
export function scriptedServer(
  handle: (req: IncomingMessage, res: ServerResponse, index: number) => void,
): Promise<Running> {
  const statuses: number[] = [];
  const allowedAt: number[] = [];
  let index = 0;
  const server = createServer((req, res) => {
    res.on('finish', () => {
      statuses.push(res.statusCode);
      if (res.statusCode < 400) allowedAt.push(Date.now());
    });
    handle(req, res, index++);
  });
  return listen(server, statuses, allowedAt);
}

/** Answers of 429 a server gave. */
export const denied = (s: Running): number => s.statuses.filter((x) => x === 429).length;

/** A fixed window on the multiples of `W` of the server's clock (`skew` ms ahead), draft-7 headers. */
export function gridFixedWindow(L: number, W: number, skew = 0) {
  const counts = new Map<number, number>();
  return scriptedServer((_req, res) => {
    const now = Date.now() + skew;
    const k = Math.floor(now / W);
    const count = counts.get(k) ?? 0;
    const allowed = count < L;
    if (allowed) counts.set(k, count + 1);
    const remaining = L - count - (allowed ? 1 : 0);
    const reset = Math.ceil(((k + 1) * W - now) / 1000);
    res.writeHead(allowed ? 200 : 429, {
      RateLimit: `limit=${L}, remaining=${remaining}, reset=${reset}`,
      'RateLimit-Policy': `${L};w=${W / 1000}`,
      Date: new Date(now).toUTCString(),
      ...(allowed ? {} : { 'Retry-After': String(reset) }),
    });
    res.end('{}');
  });
}

/** tollgate's sliding window (windows on multiples of W on the server's clock, `skew` ms ahead of ours), draft-7 headers. */
export function gridSlidingWindow(L: number, W: number, skew = 0) {
  const counts = new Map<number, number>();
  return scriptedServer((_req, res) => {
    const now = Date.now() + skew;
    const k = Math.floor(now / W);
    const estimate = ((counts.get(k - 1) ?? 0) * (W - (now - k * W))) / W + (counts.get(k) ?? 0);
    const allowed = estimate + 1 <= L;
    if (allowed) counts.set(k, (counts.get(k) ?? 0) + 1);
    const remaining = Math.max(0, Math.floor(L - estimate - (allowed ? 1 : 0)));
    const reset = Math.ceil(((k + 2) * W - now) / 1000);
    res.writeHead(allowed ? 200 : 429, {
      RateLimit: `limit=${L}, remaining=${remaining}, reset=${reset}`,
      'RateLimit-Policy': `${L};w=${W / 1000}`,
      Date: new Date(now).toUTCString(),
      ...(allowed ? {} : { 'Retry-After': '1' }),
    });
    res.end('{}');
  });
}
