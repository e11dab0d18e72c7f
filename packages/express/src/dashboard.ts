import type { ServerResponse } from 'node:http';
import { createDashboard, type DashboardOptions } from '@tollgate/core/internal';
import type { Request } from 'express';
import type { ExpressRequest } from './rate-limit.js';

/** The Express middleware `dashboard()` returns. */
export type DashboardMiddleware = ((
  req: ExpressRequest,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void) & {
  /** Live streams (open pages) now. */
  readonly clients: number;
  /** Ends the open pages' streams and stops listening to the limiters; then it serves nothing. */
  close(): void;
};

/**
 * The live dashboard on Express 4 and 5: `app.use(dashboard({ guard }))` serves the page at
 * `/tollgate` (relative to the mount), its event stream at `/tollgate/events`. The guard receives
 * Express's `req`.
 */
export function dashboard(options: DashboardOptions<Request>): DashboardMiddleware {
  const handler = createDashboard<Request>(options);
  function dashboard(req: ExpressRequest, res: ServerResponse, next: (error?: unknown) => void): void {
    const served = handler.serve(req.path, req.method, req as Request, res);
    if (served === false) next();
    else served.catch(next);
  }
  return Object.defineProperties(dashboard as DashboardMiddleware, {
    clients: { get: () => handler.clients },
    close: { value: () => handler.close() },
  });
}
