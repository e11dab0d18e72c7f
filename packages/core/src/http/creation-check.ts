/**
 * Whether the code creating a limiter runs inside an Express or Koa request (express-rate-limit's
 * `creationStack` check): a limiter made per request counts each request on fresh counters and
 * limits nothing. Read from the call stack's file names (Express 4's router layer, Express 5's
 * `router` package, koa-compose), so only a synchronous creation in a handler is seen.
 */
const REQUEST_FRAMES =
  /[/\\](?:express[/\\]lib[/\\]router[/\\]layer|router[/\\]lib[/\\]layer|koa-compose[/\\]index)\.js:/;

export function createdInRequest(): boolean {
  const stack = new Error().stack;
  return stack !== undefined && REQUEST_FRAMES.test(stack);
}
