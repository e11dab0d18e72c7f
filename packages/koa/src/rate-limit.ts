import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import {
  accessDeniedProblem,
  completeOnClose,
  configError,
  createUsage as createCoreUsage,
  rateLimit as createHandler,
  type HttpLimiter,
  type HttpResult,
  type KeyHelpers,
  keyHelpers,
  type Limiter,
  quotaExceededProblem,
  type RateLimitInfo,
  type RateLimitOptions,
  type RateLimitStatusOptions,
  type RequestView,
  statusHandler,
  storeUnavailableProblem,
  type Usage,
  type UsageOptions,
  type UsageReportOptions,
  usageReporter,
  writeResult,
} from '@tollgate/core/internal';
import type { Context } from 'koa';

declare module 'koa' {
  interface DefaultState {
    /** Set by `@tollgate/koa`: the decision for this request (with stacked limiters, the most restrictive). */
    rateLimit?: RateLimitInfo;
  }
}

/** The parts of a Koa 2 or 3 context the middleware reads: typed loosely so both fit. */
export interface KoaContext {
  method: string;
  path: string;
  ip: string;
  headers: IncomingHttpHeaders;
  req: {
    method?: string | undefined;
    headers: IncomingHttpHeaders;
    socket: { remoteAddress?: string | undefined };
  };
  request: { ip: string };
  app: { proxy: boolean; maxIpsCount?: number };
  state: { rateLimit?: RateLimitInfo };
  res: ServerResponse;
  headerSent: boolean;
  status: number;
  body: unknown;
  set(field: string, value: string): void;
  throw(status: number, message: string, properties: object): never;
  /** @koa/router's documented matched route path (`/users/:id`), once a route matched. */
  routerPath?: unknown;
  querystring?: string;
}

/** The Koa middleware `rateLimit()` returns; `.limiter` is its limiter (peek, reset, refund). */
export type RateLimitMiddleware = ((ctx: KoaContext, next: () => Promise<unknown>) => Promise<void>) & {
  readonly limiter: Limiter;
  /**
   * Resets the counters of the key `ctx` maps to, for this limiter's policies (its tier's): e.g.
   * after a successful login. `limiter.reset(ctx.ip)` resets nothing: keys carry a prefix.
   */
  reset(ctx: KoaContext): Promise<void>;
};

/**
 * A class, not an object literal with getters: a literal with accessors made per request costs
 * far more (BENCHMARKS.md, "Measurements behind code choices").
 */
class KoaView implements RequestView {
  constructor(private readonly ctx: KoaContext) {}
  // Straight to Node's request and response where Koa's getters only forward to them: each Koa
  // accessor on `ctx` is two getter calls deep, and these run on every request.
  get method(): string {
    return this.ctx.req.method!;
  }
  get path(): string {
    return this.ctx.path;
  }
  header(name: string): string | undefined {
    const value = this.ctx.req.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }
  get ip(): string | undefined {
    // Koa's public getter: honours `app.proxy` and `maxIpsCount`, and an address set by the app.
    return this.ctx.request.ip || undefined;
  }
  get trustProxy(): boolean {
    return this.ctx.app.proxy;
  }
  get trustAnyProxy(): boolean {
    return this.ctx.app.proxy && !this.ctx.app.maxIpsCount;
  }
  headersSent(): boolean {
    return this.ctx.res.headersSent;
  }
  route(): string | undefined {
    const { routerPath } = this.ctx;
    return typeof routerPath === 'string' ? routerPath : undefined;
  }
}

const viewOf = (ctx: KoaContext): RequestView => new KoaView(ctx);

/** Options of the Koa `rateLimit()`: the core options plus `throw`. */
export interface KoaRateLimitOptions extends RateLimitOptions<Context> {
  /**
   * Throw a denial (and a store failure's 503) as an HttpError (`ctx.throw`: `status`, `expose`,
   * the rate-limit fields and `Retry-After` on `error.headers`, the decision on `error.rateLimit`)
   * so the app's central error handling answers it, as koa-ratelimit's `throw: true`.
   * @default false: the middleware answers with `ctx.status` and `ctx.body`
   */
  throw?: boolean;
}

/** Koa 2 and 3 rate-limit middleware. Callbacks receive Koa's `ctx`. */
export function rateLimit(options: KoaRateLimitOptions): RateLimitMiddleware {
  const handle = createHandler<Context>(options, ['throw']);
  const throws = options.throw ?? false;
  if (typeof throws !== 'boolean') throw configError('throw', 'a boolean', throws);
  // Not an async function: with a synchronous decision (the MemoryStore) the request goes
  // downstream without a promise hop, and `next()`'s own promise is what Koa waits on.
  function rateLimit(ctx: KoaContext, next: () => Promise<unknown>): Promise<void> {
    try {
      const result = handle.decide(new KoaView(ctx), ctx as unknown as Context);
      return isPromise(result)
        ? result.then((r) => apply(r, ctx, next, throws))
        : apply(result, ctx, next, throws);
    } catch (error) {
      return Promise.reject(error);
    }
  }
  const reset = (ctx: KoaContext) => handle.reset(new KoaView(ctx), ctx as unknown as Context);
  const middleware = Object.assign(rateLimit, { limiter: handle.limiter, reset });
  handles.set(middleware, handle);
  return middleware;
}

/** The framework-free limiter behind each middleware, for `rateLimitStatus()`: nothing else sees it. */
const handles = new WeakMap<object, HttpLimiter<Context>>();

/** Options of the Koa `rateLimitStatus()`: the middleware to report, and optionally whose key and tier. */
export type KoaRateLimitStatusOptions = RateLimitStatusOptions<Context, RateLimitMiddleware>;

/**
 * A Koa middleware answering the caller's own limits on every limiter given (each policy's limit,
 * remaining, reset, window and algorithm; the tier where tiers apply) as JSON, counting nothing:
 * `router.get('/rate_limit', rateLimitStatus({ limiters: [api, search] }))`. A callback's error
 * is thrown.
 */
export function rateLimitStatus(options: KoaRateLimitStatusOptions): (ctx: KoaContext) => Promise<void> {
  const answer = statusHandler<Context, RateLimitMiddleware>(
    options,
    (item) => (typeof item === 'function' ? handles.get(item) : undefined),
    'a middleware returned by `rateLimit()` of `@tollgate/koa`',
  );
  return async function rateLimitStatus(ctx) {
    const { status, headers, body } = await answer(new KoaView(ctx), ctx as unknown as Context);
    ctx.status = status;
    for (const name in headers) ctx.set(name, headers[name]!);
    ctx.body = body;
  };
}

const DONE: Promise<void> = Promise.resolve();
const isPromise = <T>(value: T | Promise<T>): value is Promise<T> => value instanceof Promise;

function apply(
  result: HttpResult,
  ctx: KoaContext,
  next: () => Promise<unknown>,
  throws: boolean,
): Promise<void> {
  if (result.action === 'error') return Promise.reject(result.error);
  if (result.decision !== undefined) ctx.state.rateLimit = result.decision;
  if (throws && result.action === 'limit') return throwDenial(result, ctx);
  const go = writeResult(result, ctx.res, answerWithKoa, ctx);
  if (go === true) return downstream(next, result.headers);
  if (go === false) return DONE;
  return go.then((held) => (held ? downstream(next, result.headers) : undefined));
}

/** Koa answers a denial itself from `ctx.status` and `ctx.body`, so upstream middleware sees them. */
const answerWithKoa = (status: number, body: string | Uint8Array, ctx: KoaContext) => {
  ctx.status = status;
  ctx.body = body;
};

/**
 * Runs the rest of the app. Koa's default error handler removes every header before it answers a
 * thrown error and then sets `error.headers`: the rate-limit fields go there too, so a 404 or 500
 * thrown downstream carries them, as it does on Express.
 */
function downstream(next: () => Promise<unknown>, headers: Readonly<Record<string, string>>): Promise<void> {
  const done = next() as Promise<void>;
  // Only when there are fields to carry (a loop that returns on the first one: no array per request).
  for (const _ in headers) return done.then(undefined, (error: unknown) => rethrowWith(error, headers));
  return done;
}

/**
 * A denial as the HttpError Koa's `ctx.throw` makes. Koa's error handler drops every header already
 * set and sends `error.headers`, so the fields go there and nowhere else; `expose` (true below 500)
 * lets it send the message.
 */
function throwDenial(result: HttpResult, ctx: KoaContext): Promise<void> {
  if (ctx.res.destroyed) return DONE;
  const decision = result.decision;
  const status = result.status!;
  const { 'Content-Type': _, ...headers } = result.headers;
  completeOnClose(result, ctx.res);
  const { detail } =
    decision === undefined
      ? accessDeniedProblem()
      : decision.reason === 'store-error'
        ? storeUnavailableProblem(decision)
        : quotaExceededProblem(decision, status);
  try {
    ctx.throw(status, detail, decision === undefined ? { headers } : { headers, rateLimit: decision });
  } catch (error) {
    return Promise.reject(error);
  }
  return DONE;
}

function rethrowWith(error: unknown, headers: Readonly<Record<string, string>>): never {
  if (typeof error === 'object' && error !== null && Object.isExtensible(error)) {
    const own = (error as { headers?: unknown }).headers;
    try {
      (error as { headers?: unknown }).headers =
        typeof own === 'object' && own !== null ? { ...headers, ...own } : { ...headers };
    } catch {
      // A read-only `headers` (a getter, a frozen property): Koa sends what it has.
    }
  }
  throw error;
}

const keys: KeyHelpers<Context> = keyHelpers<Context>(viewOf);
/** Counts by the client address Koa resolved (honouring its proxy settings); IPv6 per /56 network. */
export const byIp: KeyHelpers<Context>['byIp'] = keys.byIp;
/** Counts by a request header's value; mount the limiter after the authentication that sets it. */
export const byHeader: KeyHelpers<Context>['byHeader'] = keys.byHeader;
/** Counts by `Authorization: Bearer` or `X-API-Key`, stored as a SHA-256 digest. */
export const byApiKey: KeyHelpers<Context>['byApiKey'] = keys.byApiKey;

/**
 * Makes a usage recorder (`createUsage()` of `@tollgate/core`) whose `tenant` and `route`
 * functions receive Koa's `ctx`: pass it to `rateLimit({ usage })` and `usageReport({ usage })`.
 */
export const createUsage: (options?: UsageOptions<Context>) => Usage<Context> = createCoreUsage;

/** The Koa middleware `usageReport()` returns. */
export type UsageReportHandler = (ctx: KoaContext) => Promise<void>;

/**
 * Middleware answering the caller's usage as JSON (`?period=hour|day|week|month`, default `day`;
 * `?tenant=` for admins, `*` for all tenants): mount it after the rate limiter, or give `tenant`.
 * @example router.get('/usage', limiter, usageReport({ usage }))
 */
export function usageReport(options: UsageReportOptions<Context>): UsageReportHandler {
  const answer = usageReporter<Context>(options);
  return async function usageReport(ctx) {
    const { status, headers, body } = await answer(
      ctx as unknown as Context,
      new URLSearchParams(ctx.querystring ?? ''),
      ctx.state.rateLimit?.key,
    );
    ctx.status = status;
    // Before the body: Koa keeps a Content-Type already set.
    for (const [name, value] of Object.entries(headers)) ctx.set(name, value);
    ctx.body = body;
  };
}
