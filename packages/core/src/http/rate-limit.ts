import { CallbackError, describeValue, isConfigError } from '../errors.js';
import type { ConsumeOptions, Limiter } from '../limiter.js';
import { keepEstimate, type Reservation } from '../reservation.js';
import type { Decision, Policy, PolicySet } from '../types.js';
import { WARNINGS } from '../warnings.js';
import type { AccessLists } from './access-lists.js';
import { decisionHeaders, type HeaderMode } from './headers.js';
import { defaultKey, KeyCheck } from './keys.js';
import type { NodeResponse } from './node-response.js';
import {
  type RateLimitConfig,
  type RateLimitOptions,
  type RefundOptions,
  resolveOptions,
} from './options.js';
import { accessDeniedProblem, encodeBody, quotaExceededProblem, storeUnavailableProblem } from './problem.js';
import type { RequestView } from './request-view.js';
import { type LimiterStatus, limiterStatus } from './status.js';
import { isThenable, type Step, andThen as then } from './step.js';
import { recordOnClose } from './usage-recording.js';

/**
 * The decision as the request carries it (`req.rateLimit`, `ctx.state.rateLimit`, callbacks), with
 * what express-rate-limit users read besides `limit` and `remaining`.
 */
export interface RateLimitInfo extends Decision {
  /** Units used of the binding policy's limit: `limit - remaining`. */
  used: number;
  /** When the binding policy is back to its full quota: now plus `resetMs`. */
  resetTime: Date;
}

/** What an adapter does with a request; it copies this onto the response and nothing more. */
export interface HttpResult {
  /** `next`: go downstream (after `delayMs`); `limit`: answer with `status`, `headers`, `body`; `error`: hand `error` to the framework. */
  action: 'next' | 'limit' | 'error';
  /** For `req.rateLimit` / `ctx.state.rateLimit`: with stacked limiters, the most restrictive so far. */
  decision?: RateLimitInfo;
  status?: number;
  /** To set on the response as they are (nothing to set when the response had already started). */
  headers: Record<string, string>;
  body?: string | Uint8Array;
  /** leaky-bucket: hold the request this long before going downstream; skip it if the client leaves. */
  delayMs: number;
  /**
   * Refused by the `deny` list (status 403, no decision): no rate limit, so Express's `handler` is
   * not called for it, and Koa's `throw` throws it with the problem's detail.
   */
  denied?: boolean;
  error?: unknown;
  /**
   * Present when a refund may follow, usage records the request or a slot of a concurrency policy
   * is held: call it once the response has closed, with its final status, how the request ended and
   * the response (`writeResult` does; `refund.isFailure` receives the response). It releases the
   * slot whatever the ending. Later calls do nothing.
   */
  complete?: (statusCode: number, ending?: RequestEnding, response?: NodeResponse) => void;
}

/**
 * How a request ended, for refunds: its response `finished`; its client went away after it was
 * sent downstream (`aborted`: the handler ran, so it counts unless `refund.onAbort`); or before it
 * was (`unserved`: left while the limiter decided or a leaky bucket held it; a failure).
 */
export type RequestEnding = 'finished' | 'aborted' | 'unserved';

/** The framework-free limiter: one call per request. */
export interface HttpLimiter<Req> {
  (view: RequestView, req: Req): Promise<HttpResult>;
  /**
   * The same, without a promise when nothing asynchronous ran (a MemoryStore and synchronous
   * callbacks, the usual case): adapters call this to save the promise hops on every request.
   * Never throws: failures come back as `action: 'error'`.
   */
  decide(view: RequestView, req: Req): HttpResult | Promise<HttpResult>;
  /**
   * Resets the counters of the key this request maps to, for the policies it would be counted
   * under (its tier's): what `limiter.reset(req.ip)` does not do, since keys carry a prefix
   * (`ip:1.2.3.4`). Runs the `key` and `policies` functions; their errors reject.
   */
  reset(view: RequestView, req: Req): Promise<void>;
  /**
   * This request's own limits, counting nothing (a peek): the key it maps to (or `key`, when
   * given), under the policies it would be counted under (its tier's). Runs the `key` and
   * `policies` functions; their errors reject. `rateLimitStatus()` answers with these.
   */
  status(view: RequestView, req: Req, key?: string): Promise<LimiterStatus>;
  /** The underlying limiter, e.g. to `peek` a key. */
  readonly limiter: Limiter;
}

const PASS: HttpResult = Object.freeze({ action: 'next', headers: Object.freeze({}), delayMs: 0 });
const isPreflight = (view: RequestView) =>
  view.method === 'OPTIONS' && view.header('access-control-request-method') !== undefined;
/** Whether a decision took units from a store (a fail-open decision took none: nothing to refund). */
const tookUnits = (decision: Decision) => decision.allowed && decision.reason !== 'store-error';

/**
 * Per request, the decision whose headers went out, so stacked limiters show the most restrictive.
 * A symbol property on the request, not a WeakMap: cheaper per request (BENCHMARKS.md,
 * "Measurements behind code choices").
 */
const SHOWN = Symbol('tollgate.shown');
type Marked = { [SHOWN]?: RateLimitInfo } & Record<symbol, unknown>;

/** Of this decision and the one shown by a limiter before it on this request, the one with less left. */
function mostRestrictive(req: Marked, decision: RateLimitInfo): RateLimitInfo {
  const prior = req[SHOWN];
  const visible = prior !== undefined && prior.remaining < decision.remaining ? prior : decision;
  req[SHOWN] = visible;
  return visible;
}

/** Per store, one mark per set of counters (a PolicySet id names the namespace and the policies). */
const countedMarks = new WeakMap<object, Map<string, symbol>>();

/**
 * The request property marking a request counted on `limiter`'s counters: one symbol for every
 * limiter with the same store, name and policies, so two instances that share counters see each
 * other's marks.
 */
function countedMark(limiter: Limiter): symbol {
  let marks = countedMarks.get(limiter.store);
  if (marks === undefined) {
    marks = new Map();
    countedMarks.set(limiter.store, marks);
  }
  // A tier limiter's marks are per namespace; a set's id always has a policy after the `|`.
  const id = limiter.policies?.id ?? `${limiter.name}|`;
  let mark = marks.get(id);
  if (mark === undefined) {
    mark = Symbol(`tollgate.counted ${id}`);
    marks.set(id, mark);
  }
  return mark;
}

/** What one request consumed, to give it back. */
interface Grant {
  key: string;
  cost: number;
  policies: Policy | readonly Policy[] | undefined;
  /** With `settle`: the reservation of `cost`, settled or released when the response closes. */
  reservation?: Reservation;
}

/**
 * Parses `options` once and returns the per-request handler adapters call with their request view
 * and their framework's own request object (passed to the user's callbacks). `adapterOptions`: the
 * option names the adapter handles itself.
 */
export function rateLimit<Req extends object>(
  options: RateLimitOptions<Req>,
  adapterOptions?: readonly string[],
): HttpLimiter<Req> {
  const config = resolveOptions(options, adapterOptions);
  const { limiter, warner } = config;
  // Marks the requests counted on this limiter's counters (DOUBLE_COUNT), with who counted them.
  const COUNTED = countedMark(limiter);
  const self = {};
  const tiers = new TierCheck(config);
  const keys = new KeyCheck(warner, limiter.name);

  /**
   * One request, as a chain of steps each of which may answer synchronously: `then` runs the next
   * step at once on a plain value and only waits on a promise. With a MemoryStore and synchronous
   * callbacks the whole decision is made without a single promise.
   */
  function decide(view: RequestView, req: Req): HttpResult | Promise<HttpResult> {
    try {
      const result = screen(view, req);
      return isThenable(result) ? Promise.resolve(result).then(undefined, failed) : result;
    } catch (error) {
      return failed(error);
    }
  }

  /** The deny and allow lists first: a denied client is refused before anything else runs. */
  function screen(view: RequestView, req: Req): Step<HttpResult> {
    const { lists } = config;
    if (lists === undefined) return pass(view, req);
    return then(lists.check(view, req), (verdict) => {
      if (verdict === undefined) return pass(view, req);
      return verdict === 'deny' ? refuse(view) : allowListed(view, req, lists);
    });
  }

  /** A client on the deny list: 403, no store call, no rate-limit headers. */
  function refuse(view: RequestView): HttpResult {
    const { body, contentType } = encodeBody(accessDeniedProblem(), true);
    const headers: Record<string, string> = view.headersSent?.() ? {} : { 'Content-Type': contentType };
    return { action: 'limit', status: 403, headers, body, delayMs: 0, denied: true };
  }

  /** A client on the allow list: through, uncounted, without headers; an enforced decision in view stays. */
  function allowListed(view: RequestView, req: Req, lists: AccessLists<Req>): HttpResult {
    const decision = (req as unknown as Marked)[SHOWN] ?? withUsage(lists.allowed(view));
    return { action: 'next', decision, headers: {}, delayMs: 0 };
  }

  /** Lets preflights, requests already counted on these counters and skipped ones pass uncounted. */
  function pass(view: RequestView, req: Req): Step<HttpResult> {
    if (isPreflight(view)) return PASS;
    const counter = (req as unknown as Marked)[COUNTED];
    if (counter !== undefined) {
      warner.warn(
        WARNINGS.DOUBLE_COUNT,
        counter === self
          ? `Limiter '${limiter.name}' ran twice for one request (${view.method} ${view.path}); it counted it once. Mount it once per route.`
          : `Two limiters share the counters of limiter '${limiter.name}' (one store, one name, the same policies) and both ran for one request (${view.method} ${view.path}); it was counted once. Mount one of them, or give them different names for separate budgets.`,
      );
      return PASS;
    }
    if (config.skip === undefined) return findKey(view, req);
    return then(config.skip(req), (skip) => (skip ? PASS : findKey(view, req)));
  }

  /** The key and the cost, synchronously when nothing asynchronous is involved (the default byIp()). */
  function findKey(view: RequestView, req: Req): Step<HttpResult> {
    (req as unknown as Marked)[COUNTED] = self;
    const found = config.key === undefined ? defaultKey(view) : config.key(req);
    const key = isThenable(found)
      ? Promise.resolve(found).then((k) => keys.check(view, k))
      : keys.check(view, found);
    const { cost } = config;
    if (typeof key === 'string' && typeof cost === 'number') return choosePolicies(view, req, key, cost);
    return then(key, (k) =>
      then(typeof cost === 'number' ? cost : cost(req), (c) => choosePolicies(view, req, k, checkCost(c))),
    );
  }

  function checkCost(cost: unknown): number {
    if (typeof cost === 'number' && Number.isInteger(cost) && cost >= 0) return cost;
    throw new CallbackError(
      'cost',
      `Expected the \`cost\` function of limiter '${config.limiter.name}' to return a non-negative integer, got ${describeValue(cost)}.`,
    );
  }

  /** The limiter's policies, or the tier's. */
  function choosePolicies(view: RequestView, req: Req, key: string, cost: number): Step<HttpResult> {
    if (config.tiers === undefined) {
      return consume(view, req, { key, cost, policies: undefined }, cost === 1 ? COST_1 : { cost });
    }
    return then(tiers.choose(req, key), (policies) =>
      consume(view, req, { key, cost, policies }, { cost, policies }),
    );
  }

  function consume(view: RequestView, req: Req, grant: Grant, options: ConsumeOptions): Step<HttpResult> {
    if (config.settle !== undefined) {
      // The cost is an estimate, settled with what `settle` reads when the response closes.
      return limiter.reserve(grant.key, options).then((reservation) => {
        grant.reservation = reservation;
        return report(view, req, withUsage(reservation.decision), grant);
      });
    }
    const decision = limiter.decide(grant.key, options);
    return isThenable(decision)
      ? decision.then((d) => report(view, req, withUsage(d), grant))
      : report(view, req, withUsage(decision), grant);
  }

  /**
   * Tells `onDecision`, then answers. From here on the request counted: if a callback fails, it is
   * given back (errors never cost quota).
   */
  function report(view: RequestView, req: Req, decision: RateLimitInfo, grant: Grant): Step<HttpResult> {
    try {
      const result =
        config.onDecision === undefined
          ? answer(view, req, decision, grant)
          : then(config.onDecision(req, decision), () => answer(view, req, decision, grant));
      return isThenable(result)
        ? Promise.resolve(result).then(undefined, (error: unknown) => giveBackAndFail(error, decision, grant))
        : result;
    } catch (error) {
      return giveBackAndFail(error, decision, grant);
    }
  }

  function giveBackAndFail(error: unknown, decision: Decision, grant: Grant): Promise<HttpResult> {
    // The request goes nowhere: its slot, if it holds one, is free at once.
    if (decision.release !== undefined) void decision.release();
    return (tookUnits(decision) ? giveBack(grant, decision) : Promise.resolve()).then(() => failed(error));
  }

  function answer(view: RequestView, req: Req, decision: RateLimitInfo, grant: Grant): Step<HttpResult> {
    const result = decision.allowed ? admit(view, req, decision, grant) : deny(view, req, decision);
    const { usage } = config;
    if (usage === undefined) return result;
    return then(result, (r) => recordOnClose(usage, r, view, req, decision, config.logger));
  }

  function admit(view: RequestView, req: Req, decision: RateLimitInfo, grant: Grant): HttpResult {
    const result: HttpResult = { action: 'next', decision, headers: {}, delayMs: decision.delayMs };
    if (decision.reason !== 'store-error') {
      // A decision of shadow policies only limits nothing: it shows only when asked (shadowHeaders),
      // and gives way to an enforced limiter's decision on the same request.
      const shows = config.shadowHeaders || decision.policy.mode !== 'shadow';
      const marked = req as unknown as Marked;
      const visible = shows ? mostRestrictive(marked, decision) : (marked[SHOWN] ?? decision);
      result.decision = visible;
      result.headers = shows ? headersOf(view, visible, config.modes) : {};
    }
    const { refund } = config;
    if (grant.reservation !== undefined) {
      if (tookUnits(decision)) result.complete = settleOnClose(req, grant, decision, grant.reservation);
    } else if (refund !== undefined && grant.cost > 0 && tookUnits(decision)) {
      result.complete = refundOnClose(refund, req, grant, decision);
    }
    if (decision.release !== undefined) result.complete = releaseOnClose(decision, result.complete);
    return result;
  }

  /** The slot of a concurrency policy is released when the response closes, whatever the ending. */
  function releaseOnClose(
    decision: Decision,
    complete: HttpResult['complete'],
  ): NonNullable<HttpResult['complete']> {
    return (statusCode, ending, response) => {
      void decision.release!();
      complete?.(statusCode, ending, response);
    };
  }

  /**
   * With `settle`: once the response has closed, its actual cost settles the reservation; when
   * `settle` gives none, the refund rules decide between giving the estimate back and keeping it.
   */
  function settleOnClose(
    req: Req,
    grant: Grant,
    decision: Decision,
    reservation: Reservation,
  ): NonNullable<HttpResult['complete']> {
    const otherwise = refundOnClose(config.refund, req, grant, decision, () => keepEstimate(reservation));
    const failed = (error: unknown) => {
      config.logger.error(`[tollgate] settle of limiter '${limiter.name}' failed: ${describe(error)}`);
    };
    let done = false;
    return (statusCode, ending = 'finished', response) => {
      if (done) return;
      done = true;
      const settleWith = (actual: number | undefined) => {
        if (actual === undefined) return otherwise(statusCode, ending, response);
        if (typeof actual !== 'number' || !Number.isSafeInteger(actual) || actual < 0) {
          failed(
            new CallbackError(
              'settle',
              `Expected the \`settle\` function of limiter '${limiter.name}' to return a non-negative integer or undefined, got ${describeValue(actual)}; the estimate stands.`,
            ),
          );
          return otherwise(statusCode, ending, response);
        }
        reservation.settle(actual).catch(failed);
      };
      try {
        const settled = then(config.settle!(req, response as NodeResponse), settleWith);
        if (isThenable(settled)) {
          Promise.resolve(settled).catch((error: unknown) => {
            failed(error);
            otherwise(statusCode, ending, response);
          });
        }
      } catch (error) {
        failed(error);
        otherwise(statusCode, ending, response);
      }
    };
  }

  /**
   * The refund a request's ending decides, given at most once (issue 9: an abort is no failure);
   * `keep` runs when it decides to give nothing back (no `refund` option: never).
   */
  function refundOnClose(
    refund: Required<RefundOptions<Req>> | undefined,
    req: Req,
    grant: Grant,
    decision: Decision,
    keep?: () => void,
  ): NonNullable<HttpResult['complete']> {
    let done = false;
    const decide = (back: boolean) => {
      if (back) void giveBack(grant, decision);
      else keep?.();
    };
    return (statusCode, ending = 'finished', response) => {
      if (done) return;
      done = true;
      if (refund === undefined) return decide(false);
      if (ending !== 'finished') {
        decide(ending === 'aborted' ? refund.onAbort : refund.onFailure || refund.onAbort);
        return;
      }
      // Both outcomes alike: no need to ask (an asynchronous isFailure may be costly). The response
      // is the one `writeResult` was given; only a caller of `complete` without one passes none.
      if (refund.onFailure === refund.onSuccess) return decide(refund.onFailure);
      const failed = (error: unknown) => {
        config.logger.error(
          `[tollgate] refund.isFailure of limiter '${limiter.name}' failed: ${describe(error)}`,
        );
        decide(false);
      };
      try {
        const judged = then(refund.isFailure(statusCode, req, response as NodeResponse), (failure) =>
          decide(failure ? refund.onFailure : refund.onSuccess),
        );
        if (isThenable(judged)) Promise.resolve(judged).catch(failed);
      } catch (error) {
        failed(error);
      }
    };
  }

  function deny(view: RequestView, req: Req, decision: RateLimitInfo): Step<HttpResult> {
    if (decision.reason === 'store-error') {
      // onStoreError: 'deny'. Not the client's fault, so not a 429.
      const { body, contentType } = encodeBody(storeUnavailableProblem(decision), true);
      const headers = headersOf(view, decision, []);
      if (!view.headersSent?.()) headers['Content-Type'] = contentType;
      return { action: 'limit', decision, status: 503, headers, body, delayMs: 0 };
    }
    const limited = config.onLimited === undefined ? undefined : config.onLimited(req, decision);
    return then(limited, () => {
      const { body } = config;
      const status = Number.isFinite(decision.retryAfterMs) ? config.status : NEVER_FITS_STATUS;
      return then(typeof body === 'function' ? body(req, decision) : body, (custom) => {
        const encoded =
          custom === undefined
            ? encodeBody(quotaExceededProblem(decision, status), true)
            : encodeBody(custom);
        const headers = headersOf(view, decision, config.modes);
        if (!view.headersSent?.()) headers['Content-Type'] = encoded.contentType;
        return {
          action: 'limit',
          decision,
          status,
          headers,
          body: encoded.body,
          delayMs: 0,
        } satisfies HttpResult;
      });
    });
  }

  function headersOf(
    view: RequestView,
    decision: Decision,
    modes: readonly HeaderMode[],
  ): Record<string, string> {
    if (view.headersSent?.()) {
      warner.warn(
        WARNINGS.HEADERS_SENT,
        `The response to ${view.method} ${view.path} had already started when limiter '${limiter.name}' decided, so it set no headers${decision.allowed ? '' : ' and could not answer 429 (it ended the response)'}. Mount the limiter before anything that writes the response.`,
      );
      return {};
    }
    return decisionHeaders(decision, modes, undefined, config.shadowHeaders);
  }

  /** To the window or bucket that counted the request (`countedAt`), never to a later one. */
  async function giveBack(
    { key, cost, policies, reservation }: Grant,
    { countedAt }: Decision,
  ): Promise<void> {
    try {
      if (reservation !== undefined) await reservation.release();
      else await limiter.refund(key, cost, policies === undefined ? { countedAt } : { policies, countedAt });
    } catch (error) {
      config.logger.error(`[tollgate] Refund for limiter '${limiter.name}' failed: ${describe(error)}`);
    }
  }

  function handle(view: RequestView, req: Req): Promise<HttpResult> {
    const result = decide(view, req);
    return isThenable(result) ? result : Promise.resolve(result);
  }

  /**
   * The key `req` is counted under (`key` instead, when given) and the options that name its
   * tier's policies (undefined: the limiter's own).
   */
  async function caller(
    view: RequestView,
    req: Req,
    key?: string,
  ): Promise<[string, Pick<ConsumeOptions, 'policies'> | undefined]> {
    const found = keys.check(
      view,
      key ?? (await (config.key === undefined ? defaultKey(view) : config.key(req))),
    );
    const policies = config.tiers === undefined ? undefined : await tiers.choose(req, found);
    return [found, policies === undefined ? undefined : { policies }];
  }

  async function reset(view: RequestView, req: Req): Promise<void> {
    const [key, options] = await caller(view, req);
    await limiter.reset(key, options);
  }

  async function status(view: RequestView, req: Req, key?: string): Promise<LimiterStatus> {
    // The lists judge the caller's own address: a key looked up for someone else (an admin's
    // \`key\`) is answered from the store.
    if (key === undefined && config.lists !== undefined) {
      const verdict = await config.lists.check(view, req);
      if (verdict === 'deny') return { allowed: false, retryAfter: 0, reason: 'denied', policies: [] };
      if (verdict === 'allow') return { allowed: true, retryAfter: 0, reason: 'allowed', policies: [] };
    }
    const [found, options] = await caller(view, req, key);
    return limiterStatus(await limiter.peek(found, options), config.shadowHeaders);
  }

  return Object.assign(handle, { limiter, decide, reset, status });
}

/** Validates what a `policies` function returns, and warns when it returns fresh copies each time. */
class TierCheck<Req> {
  private readonly objects = new WeakSet<object>();
  private readonly ids = new Set<string>();
  private warned = false;

  constructor(private readonly config: RateLimitConfig<Req>) {}

  choose(req: Req, key: string): Step<Policy | readonly Policy[]> {
    return then(this.config.tiers!(req, key), (policies) => this.check(policies));
  }

  private check(policies: Policy | readonly Policy[]): Policy | readonly Policy[] {
    if (typeof policies !== 'object' || policies === null) {
      // Per request, so it reaches the framework's error path (a 500): a CallbackError names the
      // option, where a TypeError from deeper down would not.
      throw new CallbackError(
        'policies',
        `Expected the \`policies\` function of limiter '${this.config.limiter.name}' to return a policy or an array of policies for every request, got ${describeValue(policies)}. Return a default tier rather than nothing, e.g. \`(req) => TIERS[req.user?.plan] ?? TIERS.free\`.`,
      );
    }
    // Validates (once per object: the limiter caches resolved sets by identity).
    let set: PolicySet;
    try {
      set = this.config.limiter.resolve(policies);
    } catch (error) {
      if (!isConfigError(error)) throw error;
      throw new CallbackError(
        'policies',
        `The \`policies\` function of limiter '${this.config.limiter.name}' returned an invalid policy: ${error.message}`,
        { cause: error },
      );
    }
    if (!this.warned && !this.objects.has(policies)) {
      this.objects.add(policies);
      if (this.ids.has(set.id)) {
        this.warned = true;
        this.config.warner.warn(
          WARNINGS.UNSTABLE_POLICIES,
          `The \`policies\` function of limiter '${this.config.limiter.name}' returns new objects for the same policies, so they are validated again on every request. Define each tier's policies once, outside the function.`,
        );
      } else if (this.ids.size < 1000) {
        this.ids.add(set.id);
      }
    }
    return policies;
  }
}

/** Adds `used` and `resetTime` to a decision the limiter just made (a fresh object: no copy). */
function withUsage(decision: Decision): RateLimitInfo {
  const info = decision as RateLimitInfo;
  info.used = decision.limit - decision.remaining;
  info.resetTime = new Date(Date.now() + decision.resetMs);
  return info;
}

/** What a failure before the response is decided becomes: the adapter hands it to the framework. */
const failed = (error: unknown): HttpResult => ({ action: 'error', error, headers: {}, delayMs: 0 });

/**
 * The status of a request whose cost exceeds a policy's capacity: no wait lets it through, so no
 * status a client retries (ky: 408, 413, 429, 5xx, reading `Retry-After` or `RateLimit-Reset` as the
 * delay; axios-retry: 429, 5xx). RFC 9110 §15.5.4: the client SHOULD NOT repeat the request with
 * the same credentials (a larger plan may allow it).
 */
const NEVER_FITS_STATUS = 403;

const COST_1: ConsumeOptions = Object.freeze({ cost: 1 });

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
