/**
 * Builds one server variant of bench/http.ts (see http-variants.ts): the same `ok` handler behind
 * each limiter, every limiter with a limit so large that nothing is ever denied and a one-minute
 * window. Runs in the variant's own child process (bench/lib/http-child.ts).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import {
  byHeader as coreByHeader,
  rateLimit as coreRateLimit,
  type HttpResult,
  MemoryStore,
  NodeRequestView,
  type RequestView,
  writeHeaders,
} from '@tollgate/core/internal';
import { byHeader as expressByHeader, rateLimit as expressRateLimit } from '@tollgate/express';
import { byHeader as koaByHeader, rateLimit as koaRateLimit } from '@tollgate/koa';
import { RedisStore } from '@tollgate/redis';
import express from 'express';
import { rateLimit as erl } from 'express-rate-limit';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { RedisStore as ErlRedisStore } from 'rate-limit-redis';
import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import { KEY_HEADER, type Variant } from './http-variants.ts';

/** koa-ratelimit ships no types: the options used here. */
type KoaRatelimit = (options: {
  driver: 'memory' | 'redis';
  db: Map<string, unknown> | Redis;
  max: number;
  duration: number;
  namespace: string;
  id?: (ctx: Koa.Context) => string;
}) => Koa.Middleware;
const koaRatelimit = createRequire(import.meta.url)('koa-ratelimit') as KoaRatelimit;

const HUGE = 1_000_000_000;
const WINDOW_MS = 60_000;

export interface ServerOptions {
  /** Port of the throwaway Redis (variants with `store: 'redis'`). */
  redisPort?: number;
  /** `ip`: every limiter keys by client address; `header`: by the X-API-Key header. */
  keyBy: 'ip' | 'header';
  /** ioredis `enableAutoPipelining` for every Redis client alike (commands of one tick in one write). */
  autoPipelining?: boolean;
}

export interface Built {
  server: Server;
  /** Closes what the variant opened besides the server (a Redis client). */
  close(): Promise<void>;
}

export async function build(variant: Variant, options: ServerOptions): Promise<Built> {
  let redis: Redis | undefined;
  if (variant.store === 'redis') {
    if (options.redisPort === undefined) throw new Error(`${variant.id} needs a Redis port`);
    // Default ioredis options for every library alike; connect before the first request.
    redis = new Redis({
      host: '127.0.0.1',
      port: options.redisPort,
      lazyConnect: true,
      enableAutoPipelining: options.autoPipelining === true,
    });
    await redis.connect();
  }
  const prefix = `bench:${randomUUID().slice(0, 8)}:`;
  const server = serverFor(variant, options.keyBy, redis, prefix);
  return {
    server,
    close: async () => {
      if (redis !== undefined) await redis.quit();
    },
  };
}

function serverFor(
  variant: Variant,
  keyBy: ServerOptions['keyBy'],
  redis: Redis | undefined,
  prefix: string,
) {
  switch (variant.framework) {
    case 'node':
      return nodeServer(variant, keyBy, redis, prefix);
    case 'express':
      return createServer(expressApp(variant, keyBy, redis, prefix));
    case 'koa':
      return createServer(koaApp(variant, keyBy, redis, prefix).callback());
  }
}

function tollgateStore(redis: Redis | undefined, prefix: string) {
  return redis === undefined ? new MemoryStore() : new RedisStore({ client: redis, prefix });
}

function rlf(redis: Redis | undefined, prefix: string): RateLimiterAbstract {
  return redis === undefined
    ? new RateLimiterMemory({ points: HUGE, duration: WINDOW_MS / 1000 })
    : new RateLimiterRedis({
        storeClient: redis,
        points: HUGE,
        duration: WINDOW_MS / 1000,
        keyPrefix: prefix,
      });
}

// ---------------------------------------------------------------------------------------------
// node:http

function ok(res: ServerResponse): void {
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end('ok');
}

function nodeServer(
  variant: Variant,
  keyBy: ServerOptions['keyBy'],
  redis: Redis | undefined,
  prefix: string,
) {
  if (variant.limiter === 'bare') return createServer((_req, res) => ok(res));
  if (variant.limiter === 'rlf') {
    const limiter = rlf(redis, prefix);
    return createServer((req, res) => {
      const key = keyBy === 'ip' ? req.socket.remoteAddress! : (req.headers[KEY_HEADER] as string);
      limiter.consume(key).then(
        () => ok(res),
        () => {
          res.statusCode = 429;
          res.end();
        },
      );
    });
  }
  const byKey = coreByHeader(KEY_HEADER);
  const handle = coreRateLimit<RequestView>({
    policies: { limit: HUGE, window: '1m' },
    store: tollgateStore(redis, prefix),
    // The handler passes the view as the framework request, so key callbacks get the view.
    ...(keyBy === 'header' ? { key: byKey } : {}),
  });
  const respond = (res: ServerResponse, result: HttpResult) => {
    if (result.action === 'error') {
      res.statusCode = 500;
      return void res.end();
    }
    writeHeaders(res, result.headers);
    if (result.action === 'limit') {
      res.statusCode = result.status!;
      return void res.end(result.body);
    }
    ok(res);
  };
  return createServer((req, res) => {
    const view = new NodeRequestView(req, res);
    // `decide` answers synchronously with the MemoryStore, with a promise with Redis.
    const result = handle.decide(view, view);
    if (result instanceof Promise) result.then((r) => respond(res, r));
    else respond(res, result);
  });
}

// ---------------------------------------------------------------------------------------------
// Express 5

function expressApp(
  variant: Variant,
  keyBy: ServerOptions['keyBy'],
  redis: Redis | undefined,
  prefix: string,
) {
  const app = express();
  const headerKey = (req: express.Request) => req.headers[KEY_HEADER] as string;
  if (variant.limiter === 'tollgate') {
    app.use(
      expressRateLimit({
        policies: { limit: HUGE, window: '1m' },
        store: tollgateStore(redis, prefix),
        ...(keyBy === 'header' ? { key: expressByHeader(KEY_HEADER) } : {}),
      }),
    );
  } else if (variant.limiter === 'erl') {
    app.use(
      erl({
        windowMs: WINDOW_MS,
        limit: HUGE,
        ...(keyBy === 'header' ? { keyGenerator: headerKey } : {}),
        ...(redis === undefined
          ? {}
          : {
              store: new ErlRedisStore({
                sendCommand: (command: string, ...args: string[]) =>
                  redis.call(command, ...args) as Promise<number>,
                prefix,
              }),
            }),
      }),
    );
  } else if (variant.limiter === 'rlf') {
    const limiter = rlf(redis, prefix);
    app.use((req, res, next) => {
      limiter.consume(keyBy === 'ip' ? req.ip! : headerKey(req)).then(
        () => next(),
        () => void res.status(429).send('Too Many Requests'),
      );
    });
  }
  app.get('/', (_req, res) => {
    res.send('ok');
  });
  return app;
}

// ---------------------------------------------------------------------------------------------
// Koa 3

function koaApp(variant: Variant, keyBy: ServerOptions['keyBy'], redis: Redis | undefined, prefix: string) {
  const app = new Koa();
  // autocannon drops its pipelined connections at the end of a run: no stack trace per broken pipe.
  app.silent = true;
  if (variant.limiter === 'fields') {
    app.use((ctx, next) => {
      ctx.res.setHeader('ratelimit-limit', '1000000000');
      ctx.res.setHeader('ratelimit-remaining', '999999999');
      ctx.res.setHeader('ratelimit-reset', '60');
      ctx.res.setHeader('ratelimit-policy', '1000000000;w=60');
      return next();
    });
  } else if (variant.limiter === 'tollgate' || variant.limiter === 'quiet') {
    app.use(
      koaRateLimit({
        ...(variant.limiter === 'quiet' ? { headers: false as const } : {}),
        policies: { limit: HUGE, window: '1m' },
        store: tollgateStore(redis, prefix),
        ...(keyBy === 'header' ? { key: koaByHeader(KEY_HEADER) } : {}),
      }),
    );
  } else if (variant.limiter === 'koa-ratelimit') {
    app.use(
      koaRatelimit({
        driver: redis === undefined ? 'memory' : 'redis',
        db: redis ?? new Map(),
        max: HUGE,
        duration: WINDOW_MS,
        namespace: `${prefix}limit`,
        ...(keyBy === 'header' ? { id: (ctx: Koa.Context) => ctx.get(KEY_HEADER) } : {}),
      }),
    );
  }
  app.use((ctx) => {
    ctx.body = 'ok';
  });
  return app;
}
