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
