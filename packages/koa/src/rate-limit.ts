import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import {
  rateLimit as createHandler,
  type Decision,
  hold,
  type KeyHelpers,
  keyHelpers,
  type Limiter,
  type RateLimitOptions,
  type RequestView,
} from '@tollgate/core';
import type { Context } from 'koa';

declare module 'koa' {
  interface DefaultState {
    /** Set by `@tollgate/koa`: the decision for this request (with stacked limiters, the most restrictive). */
    rateLimit?: Decision;
  }
}

/** The parts of a Koa 2 or 3 context the middleware reads: typed loosely so both fit. */
export interface KoaContext {
  method: string;
  path: string;
  ip: string;
  headers: IncomingHttpHeaders;
  app: { proxy: boolean; maxIpsCount?: number };
  state: { rateLimit?: Decision };
  res: ServerResponse;
  headerSent: boolean;
  status: number;
  body: unknown;
  set(field: string, value: string): void;
}

export type RateLimitMiddleware = ((ctx: KoaContext, next: () => Promise<unknown>) => Promise<void>) & {
  readonly limiter: Limiter;
};

/**
 * A class, not an object literal with getters: literals with accessors, made per request, measured
 * twice the CPU per request on Koa (they were promoted to old space with the request they hold).
 */
class KoaView implements RequestView {
  constructor(private readonly ctx: KoaContext) {}
  get method(): string {
    return this.ctx.method;
  }
  get path(): string {
    return this.ctx.path;
  }
  header(name: string): string | undefined {
    const value = this.ctx.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }
  get ip(): string | undefined {
    return this.ctx.ip || undefined;
  }
  get trustProxy(): boolean {
    return this.ctx.app.proxy;
  }
  get trustAnyProxy(): boolean {
    return this.ctx.app.proxy && !this.ctx.app.maxIpsCount;
  }
  headersSent(): boolean {
    return this.ctx.headerSent;
  }
}

const viewOf = (ctx: KoaContext): RequestView => new KoaView(ctx);

/** Koa 2 and 3 rate-limit middleware. Callbacks receive Koa's `ctx`. */
export function rateLimit(options: RateLimitOptions<Context>): RateLimitMiddleware {
  const handle = createHandler<Context>(options);
  async function rateLimit(ctx: KoaContext, next: () => Promise<unknown>): Promise<void> {
    const result = await handle(viewOf(ctx), ctx as unknown as Context);
    if (result.action === 'error') throw result.error;
    if (result.decision !== undefined) ctx.state.rateLimit = result.decision;
    const { complete } = result;
    // On the Node response, so the final status counts (Koa's error handling included) and aborts do too.
    if (complete !== undefined)
      ctx.res.once('close', () => complete(ctx.res.statusCode, !ctx.res.writableFinished));
    if (!ctx.headerSent) {
      const { headers } = result;
      for (const name in headers) ctx.res.setHeader(name, headers[name]!);
    }
    if (result.action === 'limit') {
      if (ctx.headerSent) return void ctx.res.end();
      ctx.status = result.status!;
      ctx.body = result.body;
      return;
    }
    if (result.delayMs > 0 && !(await hold(result.delayMs, ctx.res))) return;
    await next();
  }
  return Object.assign(rateLimit, { limiter: handle.limiter });
}

const keys: KeyHelpers<Context> = keyHelpers<Context>(viewOf);
/** Counts by the client address Koa resolved (honouring its proxy settings); IPv6 per /56 network. */
export const byIp: KeyHelpers<Context>['byIp'] = keys.byIp;
/** Counts by a request header's value; mount the limiter after the authentication that sets it. */
export const byHeader: KeyHelpers<Context>['byHeader'] = keys.byHeader;
/** Counts by `Authorization: Bearer` or `X-API-Key`, stored as a SHA-256 digest. */
export const byApiKey: KeyHelpers<Context>['byApiKey'] = keys.byApiKey;
