import { createHash } from 'node:crypto';
import { Breaker, type BreakerState } from './breaker.js';
import { Budget, type Budget as BudgetClass, type BudgetSnapshot, type Cost } from './budget.js';
import { configError } from './errors.js';
import { limitedChannel, retriedChannel, sentChannel } from './events.js';
import { type CallInfo, type LocalQuota, type ResolvedRule, ruleScope } from './limits.js';
import { type CallOptions, type PaceOptions, type ResolvedRetry, resolveOptions } from './options.js';
import { readHeaders } from './read-headers.js';
import { ServerClock } from './server-clock.js';
import { type FleetQuestion, SharedBudgets, SharedPacing, type SharedSpend } from './shared.js';
import { setLongTimeout, sleep } from './sleep.js';
import { readUsage } from './usage.js';

/** A `fetch`, or anything with its signature (undici's, node-fetch's, a test double). */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** `RequestInit` plus this package's per-call options under `pace`. */
export type PaceInit = RequestInit & { pace?: CallOptions };

/** What a paced fetch knows, from `snapshot()`: for metrics and debugging. */
export interface PaceSnapshot {
  /** One entry per origin and credential the client has called. */
  budgets: BudgetSnapshot[];
  /** Retries the retry budget allows right now. */
  retryTokens: number;
  /** Each origin's circuit breaker (with the `breaker` option); per model with `perModel`. */
  breakers: Array<{ origin: string; model?: string; state: BreakerState }>;
}

/** The function `pace()` returns: call it as `fetch`; `snapshot()` shows what it knows. */
export interface PacedFetch {
  (input: string | URL | Request, init?: PaceInit): Promise<Response>;
  snapshot(): PaceSnapshot;
}

/** Budgets kept at most; idle ones beyond this are forgotten, least recently used first. */
const MAX_BUDGETS = 1000;

/**
 * Wraps `fetch` so that calls to each origin (and credential) are paced by what the server's
 * answers say about the quota, retried with backoff when they fail, and queued meanwhile.
 *
 * @example
 * const api = pace(fetch);
 * const res = await api('https://api.example.com/items'); // a fetch, paced
 * api.snapshot().budgets[0].quotas; // [{ key: 'policy:100;w=60', available: 99, ... }]
 */
export function pace(fetch: FetchLike = globalThis.fetch, options?: PaceOptions): PacedFetch {
  if (typeof fetch !== 'function') throw configError('fetch', 'a fetch-compatible function', fetch);
  const config = resolveOptions(options);
  const { now, random, retry } = config;
  const budgets = new Map<string, BudgetClass>();
  const clocks = new Map<string, ServerClock>();
  const breakers = new Map<string, Breaker>();
  const breakerFor = (origin: string, model: string | undefined): Breaker | undefined => {
    if (config.breaker === undefined) return undefined;
    const scope = config.breaker.perModel ? model : undefined;
    const key = scope === undefined ? origin : `${origin} ${scope}`;
    let breaker = breakers.get(key);
    if (breaker === undefined) {
      // Bounded like the budgets: a closed breaker with no failures holds nothing worth keeping.
      if (breakers.size >= MAX_BUDGETS) {
        for (const [o, b] of breakers) if (b.state === 'closed') breakers.delete(o);
      }
      breaker = new Breaker(origin, scope, config.breaker);
      breakers.set(key, breaker);
    }
    return breaker;
  };
  const retries = { tokens: retry?.reserve ?? 0 };
  const shared =
    config.store === undefined || config.limits.length === 0
      ? undefined
      : new SharedBudgets(config.store, config.limits);
  const fleet = config.shareLearned ? new SharedPacing(config.store, now) : undefined;

  function budgetFor(origin: string, credential: string | undefined): BudgetClass {
    const key = credential === undefined ? origin : `${origin} ${credential}`;
    let budget = budgets.get(key);
    if (budget !== undefined) {
      // Most recently used last, so eviction below finds the stalest first.
      budgets.delete(key);
      budgets.set(key, budget);
      return budget;
    }
    let clock = clocks.get(origin);
    if (clock === undefined) {
      clock = new ServerClock();
      clocks.set(origin, clock);
    }
    const fleetKey = `${origin} ${credential ?? '-'}`;
    const gate =
      fleet === undefined ? undefined : (question: FleetQuestion) => fleet.decide(fleetKey, question);
    budget = new Budget(origin, credential, clock, now, config.maxQueue, config.aimd, gate);
    budgets.set(key, budget);
    if (budgets.size > MAX_BUDGETS) {
      for (const [k, b] of budgets) {
        if (!b.idle) continue;
        budgets.delete(k);
        if (![...budgets.values()].some((other) => other.origin === b.origin)) clocks.delete(b.origin);
        break;
      }
    }
    return budget;
  }

  const paced = async function pacedFetch(input: string | URL | Request, init?: PaceInit): Promise<Response> {
    const call = callOptions(init?.pace);
    const rest = withoutPace(init);
    const request = input instanceof Request ? input : undefined;
    const url = new URL(request?.url ?? String(input));
    const method = (rest?.method ?? request?.method ?? 'GET').toUpperCase();
    const headers = new Headers(rest?.headers ?? request?.headers);
    const secret = config.credential(headers, url);
    const budget = budgetFor(url.origin, secret === undefined || secret === '' ? undefined : hash(secret));
    const signal = rest?.signal ?? request?.signal ?? undefined;
    const event = { origin: budget.origin, credential: budget.credential };
    const mayRetry = retry !== undefined && replayable(rest) && (call.retry ?? retry.methods.has(method));
    if (retry !== undefined)
      retries.tokens = Math.min(Math.max(retry.reserve, 1), retries.tokens + retry.ratio);
    const info = callInfo(url, method, headers, rest?.body);
    const scopes = scopesOf(info);
    const locals = shared === undefined ? localsFor(budget, scopes) : [];
    const cost: Cost = {};
    const estimate = call.tokens ?? (config.tokens === undefined ? undefined : config.tokens(info));
    if (estimate !== undefined) {
      if (typeof estimate !== 'number' || !Number.isFinite(estimate) || estimate < 0) {
        throw configError('tokens (the estimate of this call)', 'a finite number ≥ 0', estimate);
      }
      cost.tokens = Math.ceil(estimate);
    } else if (scopes.some(({ rule }) => rule.windows.some((w) => w.unit === 'tokens'))) {
      // Unknown cost against a token budget: a token at least, settled to the usage.
      cost.tokens = 1;
    }
    const tokens = cost.tokens;
    const sharedKey = `${budget.origin} ${budget.credential ?? '-'}`;
    const order = budget.nextOrder();

    const breaker = breakerFor(url.origin, info.model);
    const timeout = config.breaker?.timeout;
    for (let attempt = 0; ; attempt++) {
      // Checked before queueing (fail fast) and again when the turn comes (it may have opened since).
      breaker?.admit(now());
      let seq: number;
      let spent: SharedSpend | undefined;
      try {
        // Only awaited when there is one: a call queues synchronously otherwise (its \`queued\`
        // event is out before \`pace()\`'s promise returns).
        if (shared !== undefined) {
          spent = await shared.spend(scopes, sharedKey, budget.origin, tokens, signal, call.deadline, now);
        }
        seq = await budget.acquire(cost, call.priority, signal, call.deadline, order, locals);
      } catch (error) {
        breaker?.release();
        await spent?.cancel();
        throw error;
      }
      /** This attempt's tokens are known (undefined: keep the estimate). */
      const settle = (actual: number | undefined) => {
        if (tokens === undefined) return;
        budget.settle(locals, tokens, actual);
        spent?.settle(actual).catch(() => {});
      };
      const sentAt = now();
      if (sentChannel.hasSubscribers) sentChannel.publish({ ...event, attempt, method, url: url.href });
      let response: Response;
      try {
        // A Request's body can be read once: each attempt sends a copy.
        const target = request && mayRetry ? request.clone() : input;
        response = await (timeout === undefined
          ? fetch(target, rest)
          : fetchWithin(fetch, target, rest, signal, timeout));
      } catch (error) {
        // Sent or not, the server may have served it: the estimate stands.
        settle(undefined);
        budget.unanswered(seq);
        if (signal?.aborted) breaker?.release();
        else breaker?.record(false, now());
        if (!mayRetry || attempt >= retry.limit || signal?.aborted || !takeRetry()) throw error;
        const delay = backoff(retry, attempt);
        publishRetry(event, attempt, delay, 'network');
        await sleep(delay, signal);
        continue;
      }
      const receivedAt = now();
      const reading = readHeaders(response.headers);
      const clock = clocks.get(budget.origin)!;
      clock.observe(reading.date, receivedAt);
      const { status } = response;
      breaker?.record(!breaker.isFailure(status), receivedAt);
      const limited = status === 429 || status === 503;
      let delay: number | undefined;
      if (limited) {
        delay =
          reading.retryAfter === undefined
            ? backoff(retry, attempt)
            : Math.max(0, clock.toLocal(reading.retryAfter, sentAt, receivedAt).hi - receivedAt);
        // The quota is out (or the server overloaded) for every call of this budget, not just this one.
        budget.block(receivedAt + delay);
        if (limitedChannel.hasSubscribers) {
          limitedChannel.publish({ ...event, status, retryAfterMs: reading.retryAfter ? delay : undefined });
        }
      }
      budget.answer(seq, reading, sentAt, receivedAt, status);
      if (!mayRetry || !retry.statuses.has(status) || attempt >= retry.limit) {
        if (tokens === undefined) return response;
        if (limited) {
          settle(0);
          return response;
        }
        // The caller reads the answer; a copy of it is read here for the usage it states. An
        // error answer that states none used nothing.
        const fallback = status < 400 ? undefined : 0;
        readUsage(response.clone(), config.usage).then(
          (actual) => settle(actual ?? fallback),
          () => settle(fallback),
        );
        return response;
      }
      // Not returned: retried. A refused or failed call used nothing.
      settle(0);
      delay ??= reading.retryAfter
        ? Math.max(0, clock.toLocal(reading.retryAfter, sentAt, receivedAt).hi - receivedAt)
        : backoff(retry, attempt);
      if (delay > retry.maxRetryAfter || !takeRetry()) return response;
      publishRetry(event, attempt, delay, String(status));
      await response.body?.cancel();
      // A 429/503 holds the whole budget (the queue waits); other failures wait on their own.
      if (!limited) await sleep(delay, signal);
    }
  } as PacedFetch;

  /** The configured rules a call spends from, each with its model scope ('' for one budget). */
  function scopesOf(info: CallInfo): Array<{ rule: ResolvedRule; scope: string }> {
    const out: Array<{ rule: ResolvedRule; scope: string }> = [];
    for (const rule of config.limits) {
      const scope = ruleScope(rule, info);
      if (scope !== undefined) out.push({ rule, scope });
    }
    return out;
  }

  /** The in-memory configured budgets of `scopes`, in this budget (origin, credential). */
  function localsFor(
    budget: BudgetClass,
    scopes: ReadonlyArray<{ rule: ResolvedRule; scope: string }>,
  ): LocalQuota[] {
    const out: LocalQuota[] = [];
    for (const { rule, scope } of scopes) {
      for (const w of rule.windows) {
        const key = `${rule.name}:${w.label}${scope === '' ? '' : `:${scope}`}`;
        out.push(budget.local(key, w.unit, w.limit, w.windowMs));
      }
    }
    return out;
  }

  function takeRetry(): boolean {
    if (retries.tokens < 1) return false;
    retries.tokens -= 1;
    return true;
  }

  /** Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): uniform in [0, cap). */
  function backoff(options: ResolvedRetry | undefined, attempt: number): number {
    if (options === undefined) return 1000 * 2 ** attempt * random();
    return Math.floor(random() * Math.min(options.maxDelay, options.baseDelay * 2 ** attempt));
  }

  paced.snapshot = () => {
    const at = now();
    return {
      budgets: [...budgets.values()].map((b) => b.snapshot(at)),
      retryTokens: Math.floor(retries.tokens),
      breakers: [...breakers.values()].map((b) => ({
        origin: b.origin,
        ...(b.model === undefined ? {} : { model: b.model }),
        state: b.state,
      })),
    };
  };
  return paced;
}

function publishRetry(event: object, attempt: number, delayMs: number, reason: string): void {
  if (retriedChannel.hasSubscribers) retriedChannel.publish({ ...event, attempt, delayMs, reason });
}

const hash = (secret: string): string => createHash('sha256').update(secret).digest('base64url').slice(0, 22);

function callOptions(value: unknown): Required<Pick<CallOptions, 'priority'>> & CallOptions {
  if (value === undefined) return { priority: 0 };
  if (typeof value !== 'object' || value === null) throw configError('pace', 'an object', value);
  const { priority = 0, deadline, retry, tokens } = value as CallOptions;
  if (tokens !== undefined && (typeof tokens !== 'number' || !Number.isFinite(tokens) || tokens < 0)) {
    throw configError('pace.tokens', 'a finite number ≥ 0', tokens);
  }
  if (typeof priority !== 'number' || !Number.isFinite(priority)) {
    throw configError('pace.priority', 'a finite number', priority);
  }
  if (deadline !== undefined && (typeof deadline !== 'number' || Number.isNaN(deadline))) {
    throw configError('pace.deadline', 'epoch milliseconds', deadline);
  }
  if (retry !== undefined && typeof retry !== 'boolean') throw configError('pace.retry', 'a boolean', retry);
  return {
    priority,
    ...(deadline === undefined ? {} : { deadline }),
    ...(retry === undefined ? {} : { retry }),
    ...(tokens === undefined ? {} : { tokens }),
  };
}

/** The longest string body read as JSON for `model` and the token estimate (4 M characters). */
const MAX_PARSED_BODY = 4 * 1024 * 1024;

/** What rules and estimates see of a call: a string body holding JSON is parsed once. */
function callInfo(url: URL, method: string, headers: Headers, body: unknown): CallInfo {
  let json: unknown;
  // A larger body (an upload) is not parsed on every call: no model, no estimate from it.
  if (typeof body === 'string' && body.length <= MAX_PARSED_BODY && /^\s*[{[]/.test(body)) {
    try {
      json = JSON.parse(body);
    } catch {
      json = undefined;
    }
  }
  const model =
    typeof json === 'object' && json !== null && typeof (json as { model?: unknown }).model === 'string'
      ? (json as { model: string }).model
      : undefined;
  return { url, method, headers, model, json };
}

function withoutPace(init: PaceInit | undefined): RequestInit | undefined {
  if (init === undefined || !('pace' in init)) return init;
  const { pace: _, ...rest } = init;
  return rest;
}

/** A streamed body is read by the first attempt: there is nothing left to send again. */
const replayable = (init: RequestInit | undefined): boolean =>
  !(init?.body instanceof ReadableStream) &&
  !(typeof init?.body === 'object' && init.body !== null && Symbol.asyncIterator in init.body);

/**
 * `fetch` that gives up after `ms` until the answer's headers (the breaker's `timeout`): rejects
 * with a `TimeoutError` DOMException, as `AbortSignal.timeout` would; the caller's `signal` still
 * aborts it.
 */
async function fetchWithin(
  fetch: FetchLike,
  input: string | URL | Request,
  init: RequestInit | undefined,
  signal: AbortSignal | null | undefined,
  ms: number,
): Promise<Response> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal!.reason);
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  const timer = setLongTimeout(
    () => controller.abort(new DOMException(`No answer within ${ms} ms`, 'TimeoutError')),
    ms,
  );
  try {
    return await fetch(input, { ...init, signal: controller.signal });
  } finally {
    timer.clear();
    signal?.removeEventListener('abort', onAbort);
  }
}
