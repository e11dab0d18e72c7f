import { checkFunction, checkOptions } from '../check-options.js';
import { configError } from '../errors.js';
import { createLimiter, type Limiter } from '../limiter.js';
import type { BanOptions, Decision, Duration, Logger, Policy, Store } from '../types.js';
import { isUsageRecorder, type Usage, type UsageRecorder } from '../usage/usage.js';
import { WARNINGS, Warner, type WarningCode } from '../warnings.js';
import { type AccessEntry, AccessLists } from './access-lists.js';
import { createdInRequest } from './creation-check.js';
import { type HeaderMode, resolveHeaderModes } from './headers.js';
import type { KeyFunction } from './keys.js';
import type { NodeResponse } from './node-response.js';

/** Policies chosen per request, e.g. by the tenant's plan. Return objects defined once (see README). */
export type TierFunction<Req> = (
  req: Req,
  key: string,
) => Policy | readonly Policy[] | Promise<Policy | readonly Policy[]>;

/** The `refund` option of `rateLimit()`: which requests give their units back. */
export interface RefundOptions<Req = unknown> {
  /**
   * Give the request back when its response succeeded (express-rate-limit `skipSuccessfulRequests`).
   * @default false
   */
  onSuccess?: boolean;
  /**
   * Give the request back when its response failed (express-rate-limit `skipFailedRequests`), or
   * when its client went away before it was sent downstream (it was never served). A client that
   * goes away while the handler runs is no failure: see `onAbort`.
   * @default false
   */
  onFailure?: boolean;
  /**
   * Give the request back when its client went away while the handler ran, before the response
   * finished. Off by default: the handler did its work, and with refunds on abort a client could
   * run it without limit by hanging up every time.
   * @default false
   */
  onAbort?: boolean;
  /**
   * Whether a finished response counts as a failure: from its final status, or from the request
   * and response (the framework's request, Node's response), possibly asynchronously
   * (express-rate-limit's `requestWasSuccessful`, negated). A throw or rejection refunds nothing and
   * is logged.
   * @default (status) => status >= 400
   * @example (status) => status >= 500
   * @example async (_status, req, res) => !(await wasSuccessful(req, res))
   */
  isFailure?: (status: number, req: Req, res: NodeResponse) => boolean | Promise<boolean>;
}

/**
 * Options of `rateLimit()`. `Req` is the framework's own request (Express `req`, Koa `ctx`): every
 * callback receives it, so what your authentication put on it is at hand.
 */
export interface RateLimitOptions<Req> {
  /**
   * One policy, several (all must allow; none consumes when one denies), or a function choosing
   * them per request (tiers). Tier policies are validated once per object: define them once.
   * @example { limit: 100, window: '1m' }
   * @example [{ limit: 10, window: '1s' }, { limit: 1000, window: '1h' }]
   * @example (req) => TIERS[req.user.plan]
   */
  policies: Policy | readonly Policy[] | TierFunction<Req>;
  /**
   * What a request is counted under. Returning `undefined` or `''` counts it by IP address and
   * logs TOLLGATE_MISSING_KEY once.
   * @default byIp()
   */
  key?: KeyFunction<Req>;
  /** Where counters live. @default a new MemoryStore */
  store?: Store;
  /**
   * Separates the counters of limiters sharing one store (per-route limits).
   * @default 'default'
   */
  name?: string;
  /**
   * Units a request costs: a non-negative integer, or a function of the request.
   * @default 1
   */
  cost?: number | ((req: Req) => number | Promise<number>);
  /** Requests for which this returns true are neither counted nor given headers. */
  skip?: (req: Req) => boolean | Promise<boolean>;
  /**
   * Clients never limited: addresses and CIDR ranges (IPv4, IPv6; matched against the address the
   * framework trusts, as byIp() counts it) and predicates of the request. A match goes through
   * uncounted, with no store call and no rate-limit headers; its decision has `reason: 'allowed'`.
   * The deny list wins over it. Ranges are checked at construction (a ConfigError names the entry).
   * @example ['10.0.0.0/8', '2001:db8:1234::/48', (req) => req.headers['x-health-check'] === SECRET]
   */
  allow?: readonly AccessEntry<Req>[];
  /**
   * Clients refused outright: addresses, CIDR ranges and predicates, as in `allow`. A match is
   * answered 403 (an `application/problem+json` body of type `ACCESS_DENIED_TYPE`) before any store
   * call, whatever the allow list says.
   * @example ['198.51.100.0/24', '2001:db8:bad::/48']
   */
  deny?: readonly AccessEntry<Req>[];
  /** Give a request back after its response, depending on how it ended. At most once per request. */
  refund?: RefundOptions<Req>;
  /**
   * Reserve, then settle: `cost` is then an estimate, reserved when the request arrives
   * (`limiter.reserve`), and this reads the actual cost once the response has closed (tokens an LLM
   * call reported), from the framework's request and Node's response. The difference is charged on
   * every policy even past the limit (up to each policy's `maxDebt`) or given back. `undefined`
   * keeps the estimate, unless `refund` gives it back; a throw, a rejection or a value that is no
   * non-negative integer keeps it too, and is logged.
   * @example (req, res) => res.locals.usage?.total_tokens
   */
  settle?: (req: Req, res: NodeResponse) => number | undefined | Promise<number | undefined>;
  /**
   * Which rate-limit headers to send (see `HeaderMode`); `false` for none. `Retry-After` is sent on
   * every 429 regardless.
   * @default 'draft-6'
   */
  headers?: HeaderMode | false | readonly HeaderMode[];
  /**
   * Advertise shadow policies (`mode: 'shadow'`) in `RateLimit-Policy` and draft-8's `RateLimit`,
   * e.g. to announce a limit before it is enforced. Off, they never show in headers, and a limiter
   * whose policies are all shadow ones sends no rate-limit headers at all.
   * @default false
   */
  shadowHeaders?: boolean;
  /** Called for every denied request, before the 429 goes out. */
  onLimited?: (req: Req, decision: Decision) => void | Promise<void>;
  /** Called for every counted request, allowed or not. */
  onDecision?: (req: Req, decision: Decision) => void | Promise<void>;
  /**
   * When the store fails (and no `fallback` answers): let requests through, or answer 503.
   * @default 'allow'
   */
  onStoreError?: 'allow' | 'deny';
  /**
   * Status of a denied request's response (never used for store failures, which answer 503).
   * @default 429
   */
  status?: number;
  /**
   * Body of a denied request's response: a value (strings go out as text, bytes as they are, the
   * rest as JSON) or a function of the request and decision returning one. Returning `undefined`
   * keeps the default.
   * @default an RFC 9457 `application/problem+json` object (see `quotaExceededProblem`)
   */
  body?: unknown;
  /** A store (usually a MemoryStore) that decides while `store` fails. */
  fallback?: Store;
  /** Receives coded warnings and errors. @default console */
  logger?: Logger;
  /**
   * Turns coded warnings off: `false` for all, or one by code (`{ TOLLGATE_TRUST_PROXY: false }`).
   * An unknown code is a ConfigError. Errors are always logged.
   * @default every warning on
   */
  validate?: boolean | Partial<Record<WarningCode, boolean>>;
  /**
   * While the store fails, one request per this many ms tries it again: milliseconds or a duration
   * string (`'2s'`).
   * @default 1000
   */
  probeIntervalMs?: Duration;
  /**
   * Deny repeat requests of a denied key locally until its retry time.
   * @default true for remote stores (Redis), false for the MemoryStore
   */
  blockedCache?: boolean | number;
  /**
   * Records every counted request (tenant, route template, result) in a usage made by
   * `createUsage()`, when its response has finished. Several limiters may share one usage: a
   * request they all count is recorded once, with the most severe result.
   */
  usage?: Usage<Req>;
  /**
   * Bans (see `LimiterOptions.ban`): the `after`-th denial within `within` refuses the client for
   * `for` (429, `Retry-After` = the ban left, `reason: 'banned'`), growing by `escalate.factor` per
   * repeat offence up to `escalate.max`. Ban and unban through the middleware's `.limiter` with the
   * key the request is counted under (`ip:1.2.3.4`).
   * @example { after: 10, within: '1m', for: '15m', escalate: { factor: 2, max: '1d' } }
   */
  ban?: BanOptions;
}

/** The options after validation. */
export interface RateLimitConfig<Req> {
  readonly limiter: Limiter;
  readonly warner: Warner;
  readonly logger: Logger;
  readonly tiers: TierFunction<Req> | undefined;
  readonly key: KeyFunction<Req> | undefined;
  readonly cost: number | ((req: Req) => number | Promise<number>);
  readonly skip: ((req: Req) => boolean | Promise<boolean>) | undefined;
  /** `allow` and `deny`, or undefined when neither is given. */
  readonly lists: AccessLists<Req> | undefined;
  readonly refund: Required<RefundOptions<Req>> | undefined;
  readonly settle: RateLimitOptions<Req>['settle'];
  readonly modes: readonly HeaderMode[];
  readonly shadowHeaders: boolean;
  readonly onLimited: ((req: Req, decision: Decision) => void | Promise<void>) | undefined;
  readonly onDecision: ((req: Req, decision: Decision) => void | Promise<void>) | undefined;
  readonly status: number;
  readonly body: unknown;
  readonly usage: UsageRecorder<Req> | undefined;
}

const OPTIONS = [
  'policies',
  'key',
  'store',
  'name',
  'cost',
  'skip',
  'allow',
  'deny',
  'refund',
  'settle',
  'headers',
  'shadowHeaders',
  'onLimited',
  'onDecision',
  'onStoreError',
  'status',
  'body',
  'fallback',
  'logger',
  'probeIntervalMs',
  'blockedCache',
  'validate',
  'usage',
  'ban',
] as const;

const LIMITER_OPTIONS = [
  'store',
  'name',
  'onStoreError',
  'fallback',
  'logger',
  'probeIntervalMs',
  'blockedCache',
  'ban',
];

/**
 * Validates every option once, at construction, and builds the limiter. `adapterOptions` are the
 * names an adapter reads itself (Express `handler`, Koa `throw`): accepted here, checked there.
 */
export function resolveOptions<Req>(
  options: RateLimitOptions<Req>,
  adapterOptions: readonly string[] = [],
): RateLimitConfig<Req> {
  checkOptions(options, [...OPTIONS, ...adapterOptions], '`rateLimit()` options');
  if (options.policies === undefined) {
    throw configError(
      'policies',
      "a policy such as `{ limit: 100, window: '1m' }`, an array or a function",
      undefined,
    );
  }
  const tiers = typeof options.policies === 'function' ? options.policies : undefined;
  // Tiers: the limiter has no policies of its own; each request passes its tier's.
  const limiterOptions: Record<string, unknown> = tiers === undefined ? { policies: options.policies } : {};
  for (const option of LIMITER_OPTIONS) {
    const value = options[option as keyof RateLimitOptions<Req>];
    if (value !== undefined) limiterOptions[option] = value;
  }
  const logger = withValidation(options.logger ?? console, options.validate);
  limiterOptions.logger = logger;
  const limiter = createLimiter(limiterOptions as unknown as Parameters<typeof createLimiter>[0]);

  for (const option of ['key', 'skip', 'onLimited', 'onDecision', 'settle'] as const)
    checkFunction(options[option], option);
  const cost = options.cost ?? 1;
  if (typeof cost !== 'function' && (typeof cost !== 'number' || !Number.isInteger(cost) || cost < 0)) {
    throw configError('cost', 'a non-negative integer or a function returning one', cost);
  }
  const status = options.status ?? 429;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 400 || status > 599) {
    throw configError('status', 'an HTTP error status from 400 to 599', status);
  }
  const shadowHeaders = options.shadowHeaders ?? false;
  if (typeof shadowHeaders !== 'boolean') throw configError('shadowHeaders', 'a boolean', shadowHeaders);
  const { usage } = options;
  if (usage !== undefined && !isUsageRecorder(usage)) {
    throw configError('usage', 'a usage made by `createUsage()`', usage);
  }
  const warner = new Warner(logger);
  // Once per logger, not per limiter: each request would make a new limiter and a new warning.
  if (createdInRequest() && !warnedInRequest.has(options.logger ?? console)) {
    warnedInRequest.add(options.logger ?? console);
    warner.warn(
      WARNINGS.CREATED_IN_REQUEST,
      `Limiter '${limiter.name}' was created inside a request handler: a new limiter per request counts each request on fresh counters and limits nothing. Create it once, when the app starts, and mount it (app.use(limiter)).`,
    );
  }
  return {
    limiter,
    warner,
    logger,
    tiers,
    key: options.key,
    cost,
    skip: options.skip,
    lists: AccessLists.resolve<Req>(options.allow, options.deny, warner, limiter.name),
    refund: resolveRefund(options.refund),
    settle: options.settle,
    modes: resolveHeaderModes(options.headers),
    shadowHeaders,
    onLimited: options.onLimited,
    onDecision: options.onDecision,
    status,
    body: options.body,
    usage: usage as UsageRecorder<Req> | undefined,
  };
}

const CODES: readonly string[] = Object.values(WARNINGS);

/** The loggers (the user's, before `validate`) already told of a limiter created per request. */
const warnedInRequest = new WeakSet<Logger>();

/** `logger` without the warnings `validate` turns off (every warning starts with `[CODE]`). */
function withValidation(logger: Logger, validate: RateLimitOptions<unknown>['validate']): Logger {
  if (validate === undefined || validate === true) return logger;
  if (validate === false) return { warn: () => {}, error: (message) => logger.error(message) };
  checkOptions(validate, CODES, '`validate`');
  const off = new Set<string>();
  for (const [code, on] of Object.entries(validate)) {
    if (typeof on !== 'boolean') throw configError(`validate.${code}`, 'a boolean', on);
    if (!on) off.add(`[${code}]`);
  }
  if (off.size === 0) return logger;
  return {
    warn: (message) => {
      if (!off.has(message.slice(0, message.indexOf(']') + 1))) logger.warn(message);
    },
    error: (message) => logger.error(message),
  };
}

function resolveRefund<Req>(
  refund: RefundOptions<Req> | undefined,
): Required<RefundOptions<Req>> | undefined {
  if (refund === undefined) return undefined;
  checkOptions(refund, ['onSuccess', 'onFailure', 'onAbort', 'isFailure'], '`refund`');
  const {
    onSuccess = false,
    onFailure = false,
    onAbort = false,
    isFailure = (status: number) => status >= 400,
  } = refund;
  for (const [name, value] of [
    ['onSuccess', onSuccess],
    ['onFailure', onFailure],
    ['onAbort', onAbort],
  ] as const) {
    if (typeof value !== 'boolean') throw configError(`refund.${name}`, 'a boolean', value);
  }
  checkFunction(isFailure, 'refund.isFailure');
  return onSuccess || onFailure || onAbort ? { onSuccess, onFailure, onAbort, isFailure } : undefined;
}
