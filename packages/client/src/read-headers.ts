// What a response says about the caller's quota, in every dialect this package understands. Pure:
// no clock, no state; `quota-state.ts` turns a reading into local times.
import {
  parseGoDuration,
  parseHttpDate,
  parseRfc3339,
  readCount,
  readLegacyReset,
  readRetryAfter,
  type When,
} from './header-values.js';
import {
  isItem,
  type Member,
  nameOf,
  numberOf,
  tryDictionary,
  tryItem,
  tryList,
} from './structured-fields.js';

/** What a quota counts. Token quotas are charged by the call's token cost. */
export type QuotaUnit = 'requests' | 'tokens' | 'input-tokens' | 'output-tokens';

/** One quota as one response states it. */
export interface QuotaReading {
  /** Stable across responses: the draft-8 policy name, `10;w=1`, `openai:tokens`, and so on. */
  key: string;
  unit: QuotaUnit;
  limit: number | undefined;
  remaining: number;
  /** When the whole quota is back. */
  reset: When | undefined;
  /** The policy's window (`w`), when the server states it. */
  windowMs: number | undefined;
}

/** Everything one response says about the caller's quota. */
export interface HeaderReading {
  quotas: QuotaReading[];
  retryAfter: When | undefined;
  /** The server's `Date`, epoch ms (whole seconds). */
  date: number | undefined;
}

/** The headers of a fetch `Response` (or anything with `get`). */
export interface HeaderSource {
  get(name: string): string | null;
}

/**
 * Reads the rate-limit headers of one response, in every dialect `pace()` understands: what it
 * learns from, for your own logs or pacing.
 */
export function readHeaders(headers: HeaderSource): HeaderReading {
  const quotas: QuotaReading[] = [];
  const policies = readPolicies(headers.get('ratelimit-policy'));
  if (!readDraft8(headers, policies, quotas)) {
    readDraft7(headers, policies, quotas) || readDraft6(headers, policies, quotas);
  }
  readLegacy(headers, quotas);
  readOpenAi(headers, quotas);
  readAnthropic(headers, quotas);
  const date = headers.get('date');
  return {
    quotas,
    retryAfter: readRetryAfter(headers.get('retry-after')),
    date: date === null ? undefined : parseHttpDate(date.trim()),
  };
}

interface PolicyItem {
  name: string | undefined;
  quota: number;
  windowMs: number | undefined;
  unit: string;
}

/** `RateLimit-Policy` in both syntaxes: `10;w=1, 1000;w=3600` and `"p";q=10;w=1`. */
function readPolicies(value: string | null): PolicyItem[] {
  const out: PolicyItem[] = [];
  for (const member of tryList(value) ?? []) {
    if (!isItem(member)) continue;
    const w = numberOf(member.params.get('w'));
    const windowMs = w !== undefined && w > 0 ? w * 1000 : undefined;
    const quantity = numberOf(member.value);
    if (quantity !== undefined) {
      out.push({ name: undefined, quota: quantity, windowMs, unit: 'requests' });
      continue;
    }
    const name = nameOf(member.value as never);
    const q = numberOf(member.params.get('q'));
    const qu = member.params.get('qu');
    if (name !== undefined && q !== undefined) {
      out.push({ name, quota: q, windowMs, unit: typeof qu === 'string' ? qu : 'requests' });
    }
  }
  return out;
}

/** draft-8+: `RateLimit: "p";r=9;t=2`, one item per policy, named as in `RateLimit-Policy`. */
function readDraft8(headers: HeaderSource, policies: PolicyItem[], quotas: QuotaReading[]): boolean {
  const list = tryList(headers.get('ratelimit'));
  if (
    list === undefined ||
    list.length === 0 ||
    !list.every((m) => isItem(m) && nameOf(m.value) !== undefined)
  ) {
    return false;
  }
  for (const member of list as Array<Member & { value: never }>) {
    if (!isItem(member)) continue;
    const name = nameOf(member.value)!;
    const r = numberOf(member.params.get('r'));
    const t = numberOf(member.params.get('t'));
    const policy = policies.find((p) => p.name === name);
    // Only quotas of requests can be paced by counting calls (content-bytes and concurrency are not).
    if (r === undefined || (policy !== undefined && policy.unit !== 'requests')) continue;
    quotas.push({
      key: `policy:${name}`,
      unit: 'requests',
      limit: policy?.quota,
      remaining: Math.max(0, r),
      reset: t === undefined ? undefined : { delta: t * 1000, grain: Number.isInteger(t) ? 1000 : 1 },
      windowMs: policy?.windowMs,
    });
  }
  return true;
}

/** draft-7: `RateLimit: limit=10, remaining=9, reset=2` plus `RateLimit-Policy`. */
function readDraft7(headers: HeaderSource, policies: PolicyItem[], quotas: QuotaReading[]): boolean {
  const dict = tryDictionary(headers.get('ratelimit'));
  if (dict === undefined) return false;
  const field = (key: string) => {
    const member = dict.get(key);
    return isItem(member) ? numberOf(member.value) : undefined;
  };
  return pushUnnamed(quotas, policies, field('limit'), field('remaining'), field('reset'));
}

/** draft-6: `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, plus `RateLimit-Policy`. */
function readDraft6(headers: HeaderSource, policies: PolicyItem[], quotas: QuotaReading[]): boolean {
  // Early drafts let RateLimit-Limit carry policies too (`10, 10;w=1`): its first member is the limit.
  const limit = tryList(headers.get('ratelimit-limit'))?.[0];
  const remaining = tryItem(headers.get('ratelimit-remaining'));
  const reset = tryItem(headers.get('ratelimit-reset'));
  return pushUnnamed(
    quotas,
    policies,
    isItem(limit) ? numberOf(limit.value) : undefined,
    remaining && numberOf(remaining.value),
    reset && numberOf(reset.value),
  );
}

/** The key of a draft-6/7 policy, which has no name: its quota and window. */
const unnamedKey = (quota: number, windowMs: number): string => `policy:${quota};w=${windowMs / 1000}`;

/**
 * The window part of a draft-6/7 policy's key (see `unnamedKey`), alike for every quota of that
 * window; undefined for any other key.
 */
export function unnamedWindow(key: string): string | undefined {
  return /^policy:\d+(?:\.\d+)?;(w=.+)$/.exec(key)?.[1];
}

/**
 * draft-6/7 state one quota, the one closest to running out; the policy with that quota names it,
 * the slowest such policy when several share the quota, so the rate read from it is never too high.
 */
function pushUnnamed(
  quotas: QuotaReading[],
  policies: PolicyItem[],
  limit: number | undefined,
  remaining: number | undefined,
  reset: number | undefined,
): boolean {
  if (remaining === undefined) return false;
  let policy: PolicyItem | undefined;
  for (const p of policies) {
    if (p.quota !== limit || p.name !== undefined) continue;
    if (policy === undefined || (p.windowMs ?? 0) > (policy.windowMs ?? 0)) policy = p;
  }
  quotas.push({
    key: policy ? unnamedKey(policy.quota, policy.windowMs ?? 0) : `ratelimit:${limit ?? '?'}`,
    unit: 'requests',
    limit,
    remaining: Math.max(0, remaining),
    reset:
      reset === undefined ? undefined : { delta: reset * 1000, grain: Number.isInteger(reset) ? 1000 : 1 },
    windowMs: policy?.windowMs,
  });
  return true;
}

/** `X-RateLimit-Limit/Remaining/Reset` (GitHub, tollgate `legacy`, many gateways). */
function readLegacy(headers: HeaderSource, quotas: QuotaReading[]): void {
  const remaining = readCount(headers.get('x-ratelimit-remaining'));
  if (remaining === undefined) return;
  const resource = headers.get('x-ratelimit-resource');
  quotas.push({
    key: `legacy:${resource ?? ''}`,
    unit: 'requests',
    limit: readCount(headers.get('x-ratelimit-limit')),
    remaining,
    reset: readLegacyReset(headers.get('x-ratelimit-reset')),
    windowMs: undefined,
  });
}

/** OpenAI (and Groq, and OpenAI-compatible APIs): `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`. */
function readOpenAi(headers: HeaderSource, quotas: QuotaReading[]): void {
  for (const unit of ['requests', 'tokens'] as const) {
    const remaining = readCount(headers.get(`x-ratelimit-remaining-${unit}`));
    if (remaining === undefined) continue;
    const reset = parseGoDuration(headers.get(`x-ratelimit-reset-${unit}`));
    quotas.push({
      key: `openai:${unit}`,
      unit,
      limit: readCount(headers.get(`x-ratelimit-limit-${unit}`)),
      remaining,
      reset: reset === undefined ? undefined : { delta: reset, grain: 1 },
      windowMs: undefined,
    });
  }
}

/** Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`. */
function readAnthropic(headers: HeaderSource, quotas: QuotaReading[]): void {
  for (const unit of ['requests', 'tokens', 'input-tokens', 'output-tokens'] as const) {
    const remaining = readCount(headers.get(`anthropic-ratelimit-${unit}-remaining`));
    if (remaining === undefined) continue;
    quotas.push({
      key: `anthropic:${unit}`,
      unit,
      limit: readCount(headers.get(`anthropic-ratelimit-${unit}-limit`)),
      remaining,
      reset: parseRfc3339(headers.get(`anthropic-ratelimit-${unit}-reset`)),
      windowMs: undefined,
    });
  }
}
