import { ConfigError, configError } from './errors.js';

/** What `limits[].match` and the token estimate see of a call, before it is sent. */
export interface CallInfo {
  url: URL;
  /** Upper case. */
  method: string;
  headers: Headers;
  /** The JSON body's `model`, when the body is a JSON string naming one. */
  model: string | undefined;
  /** The body parsed as JSON when it is a string holding JSON, else undefined. */
  json: unknown;
}

/**
 * A budget you configure beside the ones learned from headers: for an API that states no limits,
 * or whose stated limits are not all of yours (a provider's per-model tables). Every call the rule
 * matches spends from it; a call waits while any budget it spends from is out.
 */
export interface LimitRule {
  /**
   * Which calls: a URL prefix (`'https://api.openai.com/'`), a RegExp tested on the whole URL, or
   * a function of the call.
   */
  match: string | RegExp | ((call: CallInfo) => boolean);
  /**
   * Only calls for this model (the JSON body's `model`): a name, a RegExp, or `'*'` for one budget
   * per model (the way providers count). Without it the rule's calls share one budget.
   */
  model?: string | RegExp;
  /** Shown in `snapshot()` and in errors. @default `limits[i]` */
  name?: string;
  /** Requests per minute. */
  rpm?: number;
  /** Requests per hour. */
  rph?: number;
  /** Requests per day. */
  rpd?: number;
  /** Tokens per minute: each call spends its estimate, settled to its usage once it is known. */
  tpm?: number;
  /** Tokens per day, like `tpm`. */
  tpd?: number;
  /** Requests per any window: `{ limit: 20, window: '2s' }` (window in ms or `'500ms'`, `'2s'`, `'1m'`, `'1h'`, `'1d'`). */
  requests?: { limit: number; window: number | string };
  /** Tokens per any window, like `requests`. */
  tokens?: { limit: number; window: number | string };
}

/** One configured budget as `snapshot()` shows it. */
export interface LimitSnapshot {
  /** The rule's name, the unit and window, and the model when the rule keeps one per model. */
  key: string;
  unit: 'requests' | 'tokens';
  limit: number;
  windowMs: number;
  /** What may be spent now (negative while a settled call used more than its estimate). */
  available: number;
}

export interface ResolvedRule {
  name: string;
  test: (call: CallInfo) => boolean;
  model: string | RegExp | undefined;
  windows: ReadonlyArray<{ unit: 'requests' | 'tokens'; label: string; limit: number; windowMs: number }>;
}

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const FIELDS = [
  ['rpm', 'requests', MINUTE],
  ['rph', 'requests', HOUR],
  ['rpd', 'requests', DAY],
  ['tpm', 'tokens', MINUTE],
  ['tpd', 'tokens', DAY],
] as const;

export function resolveLimits(value: unknown): ResolvedRule[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw configError('limits', 'an array of `{ match, rpm?, tpm?, ... }`', value);
  return value.map((entry, i) => resolveRule(entry, `limits[${i}]`));
}

function resolveRule(entry: unknown, at: string): ResolvedRule {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw configError(at, "an object such as `{ match: 'https://api.example.com/', rpm: 60 }`", entry);
  }
  const rule = entry as Record<string, unknown>;
  const known = ['match', 'model', 'name', ...FIELDS.map(([f]) => f), 'requests', 'tokens'];
  for (const key of Object.keys(rule)) {
    if (!known.includes(key))
      throw new ConfigError(`Unknown option \`${at}.${key}\`; known: ${known.join(', ')}.`);
  }
  const { match, model, name } = rule;
  let test: (call: CallInfo) => boolean;
  if (typeof match === 'string') {
    let prefix: string;
    try {
      prefix = new URL(match).href;
    } catch {
      throw configError(`${at}.match`, "an absolute URL prefix such as 'https://api.openai.com/'", match);
    }
    // `new URL('https://a.com')` is 'https://a.com/': a bare origin matches everything on it.
    test = (call) => call.url.href.startsWith(prefix);
  } else if (match instanceof RegExp) {
    test = (call) => {
      match.lastIndex = 0;
      return match.test(call.url.href);
    };
  } else if (typeof match === 'function') {
    test = match as (call: CallInfo) => boolean;
  } else {
    throw configError(`${at}.match`, 'a URL prefix, a RegExp or a function of the call', match);
  }
  if (model !== undefined && typeof model !== 'string' && !(model instanceof RegExp)) {
    throw configError(`${at}.model`, "a model name, a RegExp or '*'", model);
  }
  if (name !== undefined && (typeof name !== 'string' || name === '')) {
    throw configError(`${at}.name`, 'a non-empty string', name);
  }
  const windows = [];
  for (const [field, unit, windowMs] of FIELDS) {
    const limit = rule[field];
    if (limit === undefined) continue;
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) {
      throw configError(`${at}.${field}`, 'a positive integer', limit);
    }
    windows.push({ unit, label: field, limit, windowMs });
  }
  for (const unit of ['requests', 'tokens'] as const) {
    const given = rule[unit];
    if (given === undefined) continue;
    const example = `{ limit: 20, window: '2s' }`;
    if (typeof given !== 'object' || given === null) throw configError(`${at}.${unit}`, example, given);
    const { limit, window } = given as { limit?: unknown; window?: unknown };
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) {
      throw configError(`${at}.${unit}.limit`, 'a positive integer', limit);
    }
    windows.push({ unit, label: unit, limit, windowMs: duration(window, `${at}.${unit}.window`) });
  }
  if (windows.length === 0) {
    throw new ConfigError(
      `\`${at}\` states no budget: give it at least one of rpm, rph, rpd, tpm, tpd, requests, tokens.`,
    );
  }
  return { name: (name as string | undefined) ?? at, test, model, windows };
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: MINUTE, h: HOUR, d: DAY };

/** A window: positive ms, or a whole number and a unit (`'500ms'`, `'2s'`, `'1m'`, `'1h'`, `'1d'`). */
function duration(value: unknown, option: string): number {
  const match = typeof value === 'string' ? /^([1-9]\d*)(ms|s|m|h|d)$/.exec(value) : null;
  const ms = match ? Number(match[1]) * UNITS[match[2]!]! : value;
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 1) {
    throw configError(option, "a window in ms or a duration such as '2s', '1m', '1d'", value);
  }
  return ms;
}

/** Whether `rule` applies to `call`, and under which model label ('' for one shared budget). */
export function ruleScope(rule: ResolvedRule, call: CallInfo): string | undefined {
  if (!rule.test(call)) return undefined;
  const { model } = rule;
  if (model === undefined) return '';
  if (call.model === undefined) return undefined;
  if (model === '*') return call.model;
  if (typeof model === 'string') return model === call.model ? '' : undefined;
  model.lastIndex = 0;
  return model.test(call.model) ? '' : undefined;
}

/**
 * A configured budget: a token bucket holding `limit` units that refill at `limit` per window,
 * starting full. A call spends its estimate when it is sent; `settle` charges the difference to
 * its actual use once known, past zero if need be (the debt holds later calls until it refills),
 * so what the bucket charged is exactly what the calls used.
 */
export class LocalQuota {
  private tokens: number;
  private at: number;

  constructor(
    readonly key: string,
    readonly unit: 'requests' | 'tokens',
    readonly limit: number,
    readonly windowMs: number,
    now: number,
  ) {
    this.tokens = limit;
    this.at = now;
  }

  private refill(now: number): void {
    if (now > this.at) {
      this.tokens = Math.min(this.limit, this.tokens + ((now - this.at) * this.limit) / this.windowMs);
      this.at = now;
    }
  }

  /** The earliest time a call costing `cost` may go; `Infinity` when it can never fit. */
  readyAt(now: number, cost: number): number {
    if (cost > this.limit) return Number.POSITIVE_INFINITY;
    this.refill(now);
    if (this.tokens >= cost) return Number.NEGATIVE_INFINITY;
    return now + ((cost - this.tokens) * this.windowMs) / this.limit;
  }

  spend(cost: number, now: number): void {
    this.refill(now);
    this.tokens -= cost;
  }

  /** Charges `delta` more (a refund when negative), past zero if need be. */
  settle(delta: number, now: number): void {
    this.refill(now);
    this.tokens = Math.min(this.limit, this.tokens - delta);
  }

  /** Full again and nothing owed: the bucket can be forgotten. */
  idle(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.limit;
  }

  snapshot(now: number): LimitSnapshot {
    this.refill(now);
    return {
      key: this.key,
      unit: this.unit,
      limit: this.limit,
      windowMs: this.windowMs,
      available: Math.floor(this.tokens),
    };
  }
}
