import { writeHeaders } from './headers.js';
import { type Closable, hold } from './hold.js';
import type { HttpResult } from './rate-limit.js';

/** The parts of a `node:http` `ServerResponse` the writer uses (Express's `res` and Koa's `ctx.res` are one). */
export interface NodeResponse extends Closable {
  statusCode: number;
  readonly headersSent: boolean;
  readonly writableFinished: boolean;
  setHeader(name: string, value: string): unknown;
  end(body?: string | Uint8Array): unknown;
}

/**
 * Sends a denial's status and body to `target` (what the caller passed to `writeResult`); Koa sets
 * `ctx.status` and `ctx.body` instead, so its own middleware sees them.
 */
export type Answer<Target> = (status: number, body: string | Uint8Array, target: Target) => void;

/** The default answer: status and body straight onto Node's response. */
const endResponse: Answer<NodeResponse> = (status, body, response) => {
  response.statusCode = status;
  response.end(body);
};

/**
 * Applies the limiter's result for one request to Node's response, the one sequence every adapter
 * and plain `node:http` server shares:
 * - a client that left while the limiter decided (an asynchronous store or callback) gets nothing,
 *   its request goes nowhere, and its ending is reported at once (its `close` has passed);
 * - the refund, if one may follow, is armed on the response's `close`, so it sees the final status
 *   and whether the response finished, was abandoned downstream, or never went downstream;
 * - headers are set unless the response has started (no ERR_HTTP_HEADERS_SENT);
 * - a denial is answered (or, over a response that has started, the response is ended);
 * - an admitted request is held for a leaky bucket's delay, and dropped if its client leaves.
 *
 * A module-level `answer` and its `target` rather than a closure: no function made per request.
 * Returns whether the request goes downstream: now (`true`), never (`false`), or after a hold (a
 * promise). A result with `action: 'error'` is the caller's to hand to its framework: this throws it.
 */
export function writeResult(result: HttpResult, response: NodeResponse): boolean | Promise<boolean>;
export function writeResult<Target>(
  result: HttpResult,
  response: NodeResponse,
  answer: Answer<Target>,
  target: Target,
): boolean | Promise<boolean>;
export function writeResult(
  result: HttpResult,
  response: NodeResponse,
  answer: Answer<unknown> = endResponse as Answer<unknown>,
  target: unknown = response,
): boolean | Promise<boolean> {
  if (result.action === 'error') throw result.error;
  if (response.destroyed) {
    result.complete?.(response.statusCode, 'unserved', response);
    return false;
  }
  let downstream = false;
  completeOnClose(result, response, () => downstream);
  if (!response.headersSent) writeHeaders(response, result.headers);
  if (result.action === 'limit') {
    if (response.headersSent) response.end();
    else answer(result.status!, result.body!, target);
    return false;
  }
  if (result.delayMs > 0) {
    return hold(result.delayMs, response).then((go) => {
      downstream = go;
      return go;
    });
  }
  downstream = true;
  return true;
}

/**
 * Calls the result's `complete` (refund, usage recording) once the response has closed, with how
 * it ended. `wentDownstream` tells whether the request was sent on (an unfinished response is then
 * `aborted`, else `unserved`); answers that never go downstream (Koa's thrown denial) leave it out.
 */
export function completeOnClose(
  result: HttpResult,
  response: NodeResponse,
  wentDownstream: () => boolean = () => false,
): void {
  const { complete } = result;
  if (complete === undefined) return;
  if (response.destroyed) {
    complete(response.statusCode, 'unserved', response);
    return;
  }
  response.once('close', () =>
    complete(
      response.statusCode,
      response.writableFinished ? 'finished' : wentDownstream() ? 'aborted' : 'unserved',
      response,
    ),
  );
}
