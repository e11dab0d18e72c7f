import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import {
  configError,
  createUsage as createCoreUsage,
  rateLimit as createHandler,
  type HttpLimiter,
  type HttpResult,
  type KeyHelpers,
  keyHelpers,
  type Limiter,
  type RateLimitInfo,
  type RateLimitOptions,
  type RateLimitStatusOptions,
  type RequestView,
  statusHandler,
  type Usage,
  type UsageOptions,
  type UsageReportAnswer,
  type UsageReportOptions,
  usageReporter,
  writeHeaders,
  writeResult,
} from '@tollgate/core/internal';
import type { NextFunction, Request, Response } from 'express';

declare global {
  namespace Express {
    interface Request {
      /** Set by `@tollgate/express`: the decision for this request (with stacked limiters, the most restrictive). */
      rateLimit?: RateLimitInfo;
    }
  }
}

/** The parts of an Express 4 or 5 request the middleware reads: typed loosely so both fit. */
export interface ExpressRequest {
  method: string;
  path: string;
  readonly ip?: string | undefined;
  headers: IncomingHttpHeaders;
  app: { get(setting: string): unknown };
  rateLimit?: RateLimitInfo;
  /** The matched route (Express sets it on dispatch): its `path` is the template. */
  route?: unknown;
  /** The path the router handling the request is mounted on. */
  baseUrl?: string;
  originalUrl?: string;
  url?: string;
}

/** The Express middleware `rateLimit()` returns; `.limiter` is its limiter (peek, reset, refund). */
export type RateLimitMiddleware = ((
  req: ExpressRequest,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void) & {
  readonly limiter: Limiter;
  /**
   * Resets the counters of the key `req` maps to, for this limiter's policies (its tier's): e.g.
   * after a successful login. `limiter.reset(req.ip)` resets nothing: keys carry a prefix.
   */
  reset(req: ExpressRequest): Promise<void>;
};

/**
 * A class, not an object literal with getters: a literal with accessors made per request costs
 * far more (BENCHMARKS.md, "Measurements behind code choices").
 */
class ExpressView implements RequestView {
  constructor(
    private readonly req: ExpressRequest,
    private readonly res?: ServerResponse,
  ) {}
  get method(): string {
    return this.req.method;
  }
  get path(): string {
    return this.req.path;
  }
  header(name: string): string | undefined {
    const value = this.req.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }
  get ip(): string | undefined {
    return this.req.ip;
  }
  get trustProxy(): boolean {
    const trust = this.req.app.get('trust proxy');
    return trust !== undefined && trust !== false && trust !== 0;
  }
  get trustAnyProxy(): boolean {
    return this.req.app.get('trust proxy') === true;
  }
  headersSent(): boolean {
    return this.res?.headersSent === true;
  }
  route(): string | undefined {
    const path = (this.req.route as { path?: unknown } | undefined)?.path;
    if (path === undefined) return undefined;
    return (this.req.baseUrl ?? '') + (typeof path === 'string' ? path : String(path));
  }
}

const viewOf = (req: ExpressRequest, res?: ServerResponse): RequestView => new ExpressView(req, res);

/**
 * Answers a request over its limit one's own way (express-rate-limit's `handler`). The status is
 * already set (429, or 403 for a cost that can never fit) and so are the rate-limit headers and
 * `Retry-After`; `req.rateLimit` holds the decision. A throw or a rejection goes to `next`.
 */
export type LimitHandler = (
  req: Request,
  res: Response,
  next: NextFunction,
  decision: RateLimitInfo,
) => void | Promise<void>;

/** Options of the Express `rateLimit()`: the core options plus `handler`. */
export interface ExpressRateLimitOptions extends RateLimitOptions<Request> {
  /** Answers requests over the limit instead of the default body (never store failures, which answer 503). */
  handler?: LimitHandler;
}

/** Express 4 and 5 rate-limit middleware. Callbacks receive Express's `req`. */
export function rateLimit(options: ExpressRateLimitOptions): RateLimitMiddleware {
  const handle = createHandler<Request>(options, ['handler']);
  const { handler } = options;
  if (handler !== undefined && typeof handler !== 'function') {
    throw configError('handler', 'a function `(req, res, next, decision) => void`', handler);
  }
  function rateLimit(req: ExpressRequest, res: ServerResponse, next: (error?: unknown) => void): void {
    // With a synchronous decision (the MemoryStore) the request goes downstream at once, as with
    // any synchronous middleware; otherwise when the decision arrives.
    const result = handle.decide(new ExpressView(req, res), req as Request);
    if (result instanceof Promise) result.then((r) => apply(r, req, res, next, handler)).catch(next);
    else apply(result, req, res, next, handler);
  }
  const reset = (req: ExpressRequest) => handle.reset(new ExpressView(req), req as Request);
  const middleware = Object.assign(rateLimit, { limiter: handle.limiter, reset });
  handles.set(middleware, handle);
  return middleware;
}

/** The framework-free limiter behind each middleware, for `rateLimitStatus()`: nothing else sees it. */
const handles = new WeakMap<object, HttpLimiter<Request>>();

/** Options of the Express `rateLimitStatus()`: the middleware to report, and optionally whose key and tier. */
export type ExpressRateLimitStatusOptions = RateLimitStatusOptions<Request, RateLimitMiddleware>;

/**
 * An Express handler answering the caller's own limits on every limiter given (each policy's
 * limit, remaining, reset, window and algorithm; the tier where tiers apply) as JSON, counting
 * nothing: `app.get('/rate_limit', rateLimitStatus({ limiters: [api, search] }))`. A callback's
 * error goes to `next`.
 */
export function rateLimitStatus(
  options: ExpressRateLimitStatusOptions,
): (req: ExpressRequest, res: ServerResponse, next: (error?: unknown) => void) => void {
  const answer = statusHandler<Request, RateLimitMiddleware>(
    options,
    (item) => (typeof item === 'function' ? handles.get(item) : undefined),
    'a middleware returned by `rateLimit()` of `@tollgate/express`',
  );
  return function rateLimitStatus(req, res, next) {
    answer(new ExpressView(req, res), req as Request).then(({ status, headers, body }) => {
      res.statusCode = status;
      writeHeaders(res, headers);
      res.end(body);
    }, next);
  };
}

function apply(
  result: HttpResult,
  req: ExpressRequest,
  res: ServerResponse,
  next: (error?: unknown) => void,
  handler: LimitHandler | undefined,
) {
  if (result.action === 'error') return next(result.error);
  if (result.decision !== undefined) req.rateLimit = result.decision;
  const go =
    handler !== undefined &&
    result.action === 'limit' &&
    result.denied !== true &&
    result.decision?.reason !== 'store-error'
      ? writeResult(
          withoutBodyType(result),
          res,
          (status) => {
            res.statusCode = status;
            try {
              const done = handler(req as Request, res as Response, next, result.decision!);
              if (done instanceof Promise) done.catch(next);
            } catch (error) {
              next(error);
            }
          },
          undefined,
        )
      : writeResult(result, res);
  if (go === true) next();
  else if (go !== false) void go.then((held) => held && next());
}

/** The handler writes its own body: the default body's type must not stay on the response. */
function withoutBodyType(result: HttpResult): HttpResult {
  const { 'Content-Type': _, ...headers } = result.headers;
  return { ...result, headers };
}

const keys: KeyHelpers<Request> = keyHelpers<Request>((req) => viewOf(req));
/** Counts by the client address Express resolved (honouring its proxy settings); IPv6 per /56 network. */
export const byIp: KeyHelpers<Request>['byIp'] = keys.byIp;
/** Counts by a request header's value; mount the limiter after the authentication that sets it. */
export const byHeader: KeyHelpers<Request>['byHeader'] = keys.byHeader;
/** Counts by `Authorization: Bearer` or `X-API-Key`, stored as a SHA-256 digest. */
export const byApiKey: KeyHelpers<Request>['byApiKey'] = keys.byApiKey;

/**
 * Makes a usage recorder (`createUsage()` of `@tollgate/core`) whose `tenant` and `route`
 * functions receive Express's `req`: pass it to `rateLimit({ usage })` and `usageReport({ usage })`.
 */
export const createUsage: (options?: UsageOptions<Request>) => Usage<Request> = createCoreUsage;

/** The Express handler `usageReport()` returns. */
export type UsageReportHandler = (
  req: ExpressRequest,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;

/**
 * A handler answering the caller's usage as JSON (`?period=hour|day|week|month`, default `day`;
 * `?tenant=` for admins, `*` for all tenants): mount it after the rate limiter, or give `tenant`.
 * @example app.get('/usage', limiter, usageReport({ usage }))
 */
export function usageReport(options: UsageReportOptions<Request>): UsageReportHandler {
  const answer = usageReporter<Request>(options);
  return function usageReport(req, res, next) {
    answer(req as Request, queryOf(req.originalUrl ?? req.url), req.rateLimit?.key).then(
      (answered) => send(res, answered),
      next,
    );
  };
}

function queryOf(url: string | undefined): URLSearchParams {
  const at = url?.indexOf('?') ?? -1;
  return new URLSearchParams(at === -1 ? '' : url!.slice(at + 1));
}

function send(res: ServerResponse, { status, headers, body }: UsageReportAnswer): void {
  res.statusCode = status;
  writeHeaders(res, headers);
  res.end(body);
}
