/**
 * What the HTTP layer needs to know about a request, whatever the framework. Adapters build one per
 * request from Express's `req` or Koa's `ctx`; nothing in it is parsed by tollgate itself.
 */
export interface RequestView {
  /** Upper-case method, e.g. `'GET'`. */
  readonly method: string;
  readonly path: string;
  /** A request header by lower-case name; repeated headers joined with `', '`; `undefined` when absent. */
  header(name: string): string | undefined;
  /**
   * The client address as the framework resolved it (Express `req.ip`, Koa `ctx.ip`): it honours the
   * app's proxy settings, so tollgate never reads `X-Forwarded-For` itself.
   */
  readonly ip: string | undefined;
  /** Whether the app takes the client address from `X-Forwarded-For` (Express `trust proxy`, Koa `app.proxy`). */
  readonly trustProxy: boolean;
  /**
   * Whether it trusts every hop of `X-Forwarded-For`, so that any client can claim any address
   * (Express `trust proxy: true`, Koa `app.proxy` with `maxIpsCount` 0).
   */
  readonly trustAnyProxy?: boolean;
  /** Whether the response has already started, so its status and headers can no longer change. */
  headersSent?(): boolean;
  /**
   * The route template the framework matched (`/users/:id`), read when the response has finished
   * (for usage); `undefined` when no route matched. Never the raw URL.
   */
  route?(): string | undefined;
}
