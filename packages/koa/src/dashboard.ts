import { createDashboard, type DashboardOptions } from '@tollgate/core/internal';
import type { Context } from 'koa';
import type { KoaContext } from './rate-limit.js';

/** The Koa middleware `dashboard()` returns. */
export type DashboardMiddleware = ((ctx: KoaContext, next: () => Promise<unknown>) => Promise<unknown>) & {
  /** Live streams (open pages) now. */
  readonly clients: number;
  /** Ends the open pages' streams and stops listening to the limiters; then it serves nothing. */
  close(): void;
};

/**
 * The live dashboard on Koa 2 and 3: `app.use(dashboard({ guard }))` serves the page at `/tollgate`,
 * its event stream at `/tollgate/events`. The guard receives Koa's `ctx`.
 */
export function dashboard(options: DashboardOptions<Context>): DashboardMiddleware {
  const handler = createDashboard<Context>(options);
  function dashboard(ctx: KoaContext, next: () => Promise<unknown>): Promise<unknown> {
    const served = handler.serve(ctx.path, ctx.method, ctx as unknown as Context, ctx.res);
    if (served === false) return next();
    // Answered on Node's response (a stream stays open): Koa must not answer it again.
    return served.then(() => {
      (ctx as unknown as Context).respond = false;
    });
  }
  return Object.defineProperties(dashboard as DashboardMiddleware, {
    clients: { get: () => handler.clients },
    close: { value: () => handler.close() },
  });
}
