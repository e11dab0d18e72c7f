import { configError } from '../errors.js';
import type { Decision, PolicyStatus } from '../types.js';

/**
 * Which rate-limit headers to send. The three drafts are revisions of the IETF httpapi
 * RateLimit header fields; `legacy` is the `X-RateLimit-*` trio many clients still read.
 * - `draft-6`: `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, `RateLimit-Policy`
 * - `draft-7`: `RateLimit: limit=10, remaining=9, reset=1` and `RateLimit-Policy`
 * - `draft-8` (same syntax in -09 and -10): `RateLimit-Policy: "name";q=10;w=1` and
 *   `RateLimit: "name";r=9;t=1`, one item per policy
 * - `legacy`: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (epoch seconds)
 */
export type HeaderMode = 'draft-6' | 'draft-7' | 'draft-8' | 'legacy';

export const HEADER_MODES: readonly HeaderMode[] = ['draft-6', 'draft-7', 'draft-8', 'legacy'];

/** Validates the `headers` option into a list of modes (empty for `false`). */
export function resolveHeaderModes(value: unknown): readonly HeaderMode[] {
  if (value === undefined) return ['draft-6'];
  if (value === false) return [];
  const list: unknown[] = Array.isArray(value) ? value : [value];
  const expected = `${HEADER_MODES.map((m) => `'${m}'`).join(', ')}, \`false\` or an array of those`;
  const modes = new Set<HeaderMode>();
  for (const mode of list) {
    if (!HEADER_MODES.includes(mode as HeaderMode)) throw configError('headers', expected, mode);
    modes.add(mode as HeaderMode);
  }
  if (modes.has('draft-8') && (modes.has('draft-6') || modes.has('draft-7'))) {
    throw configError(
      'headers',
      expected,
      list.join(', '),
      "'draft-8' gives `RateLimit-Policy` a different syntax than 'draft-6' and 'draft-7': pick one of them.",
    );
  }
  return [...modes];
}

/** Whole seconds for a header, rounded up: a client that waits this long never comes too early. */
export const ceilSeconds = (ms: number): number => Math.ceil(ms / 1000);

/** `Retry-After` in integer delta-seconds, rounded up and at least 1; `undefined` when no wait helps. */
export function retryAfterSeconds(ms: number): number | undefined {
  return Number.isFinite(ms) ? Math.max(1, ceilSeconds(ms)) : undefined;
}

/**
 * A policy's window in seconds as a client should read it: the time to go from empty to full
 * quota. For the buckets that is burst / rate, so quota and window together state both. The drafts
 * define `w` as an Integer, so a window that is not a whole number of seconds is rounded up: the
 * stated rate is then lower than the real one, never higher (3 per 500 ms reads `3;w=1`), and a
 * client that paces itself by it is never throttled. A calendar window states the period in force
 * (`windowMs`: a month of 28 to 31 days, a day of 23 to 25 hours), whose end `reset` counts to.
 */
export function windowSeconds(status: PolicyStatus): string {
  const { policy } = status;
  // Windows (capacity = limit) need no product, which for a long fixed window may not be exact.
  const ms =
    status.windowMs ??
    (status.limit === policy.limit ? policy.window : (status.limit * policy.window) / policy.limit);
  return String(Math.max(1, Math.ceil(ms / 1000)));
}

/**
 * The headers for a decision: the rate-limit fields of every mode, and `Retry-After` on a denial
 * that waiting can fix (a cost larger than the capacity gets none). `now` is epoch milliseconds,
 * used by `legacy` only. Shadow policies are left out unless `shadow` (the `shadowHeaders`
 * option): a decision of shadow policies only then gets no rate-limit fields at all.
 */
export function decisionHeaders(
  decision: Decision,
  modes: readonly HeaderMode[],
  now?: number,
  shadow = false,
): Record<string, string> {
  // The binding policy is a shadow one only when every policy is: nothing enforced to advertise.
  if (!shadow && decision.policy.mode === 'shadow') return {};
  // The default on an allowed request, on every request: one literal, built with its final shape.
  if (decision.allowed && modes.length === 1 && modes[0] === 'draft-6') {
    return {
      'RateLimit-Limit': String(decision.limit),
      'RateLimit-Remaining': String(decision.remaining),
      'RateLimit-Reset': String(ceilSeconds(decision.resetMs)),
      'RateLimit-Policy': policyField(decision, shadow).quota,
    };
  }
  const headers: Record<string, string> = {};
  const reset = String(ceilSeconds(decision.resetMs));
  for (const mode of modes) {
    if (mode === 'draft-6') {
      headers['RateLimit-Limit'] = String(decision.limit);
      headers['RateLimit-Remaining'] = String(decision.remaining);
      headers['RateLimit-Reset'] = reset;
      headers['RateLimit-Policy'] = policyField(decision, shadow).quota;
    } else if (mode === 'draft-7') {
      headers.RateLimit = `limit=${decision.limit}, remaining=${decision.remaining}, reset=${reset}`;
      headers['RateLimit-Policy'] = policyField(decision, shadow).quota;
    } else if (mode === 'draft-8') {
      headers['RateLimit-Policy'] = policyField(decision, shadow).named;
      headers.RateLimit = shown(decision.policies, shadow)
        .map((p) => `"${p.name}";r=${p.remaining};t=${ceilSeconds(p.resetMs)}`)
        .join(', ');
    } else {
      headers['X-RateLimit-Limit'] = String(decision.limit);
      headers['X-RateLimit-Remaining'] = String(decision.remaining);
      headers['X-RateLimit-Reset'] = String(ceilSeconds((now ?? Date.now()) + decision.resetMs));
    }
  }
  if (!decision.allowed) {
    const retryAfter = retryAfterSeconds(decision.retryAfterMs);
    if (retryAfter !== undefined) headers['Retry-After'] = String(retryAfter);
  }
  return headers;
}

/** The policies headers advertise: the enforced ones, and the shadow ones too when `shadow`. */
const shown = (policies: readonly PolicyStatus[], shadow: boolean): readonly PolicyStatus[] =>
  shadow ? policies : policies.filter((p) => p.policy.mode !== 'shadow');

interface PolicyFields {
  quota: string;
  named: string;
  /** The calendar periods it states (see `periodsOf`): '' for a set without calendar windows. */
  periods: string;
}

/** The lengths of the calendar periods a decision speaks of, '' when it has none: they change `w`. */
function periodsOf(policies: readonly PolicyStatus[]): string {
  let periods = '';
  for (const p of policies) if (p.windowMs !== undefined) periods += `${p.windowMs},`;
  return periods;
}

/**
 * `RateLimit-Policy` depends only on the policy set (and on whether shadow policies show), so it is
 * built once per set, and again when a calendar period of another length begins (a month of 30 days
 * after one of 31). A resolved policy object belongs to exactly one set, so the first one stands for
 * the set.
 */
const policyFields = [new WeakMap<object, PolicyFields>(), new WeakMap<object, PolicyFields>()] as const;

/** The last set's fields: most limiters see one policy set, so this saves the WeakMap lookup. */
let lastFirst: object | undefined;
let lastShadow = false;
let lastField: PolicyFields | undefined;

function policyField(decision: Decision, shadow: boolean): PolicyFields {
  const first = decision.policies[0]!.policy;
  const periods = periodsOf(decision.policies);
  if (first === lastFirst && shadow === lastShadow && periods === lastField!.periods) return lastField!;
  const cache = policyFields[shadow ? 1 : 0];
  let field = cache.get(first);
  if (field === undefined || field.periods !== periods) {
    const policies = shown(decision.policies, shadow);
    field = {
      quota: policies.map((p) => `${p.limit};w=${windowSeconds(p)}`).join(', '),
      named: policies.map((p) => `"${p.name}";q=${p.limit};w=${windowSeconds(p)}`).join(', '),
      periods,
    };
    cache.set(first, field);
  }
  lastFirst = first;
  lastShadow = shadow;
  lastField = field;
  return field;
}

/**
 * The wire name of a field tollgate sets. Node's `setHeader` lower-cases every name it is given (a
 * new string per header per response) unless it already is lower case, and field names are
 * case-insensitive (RFC 9110), so adapters send them in lower case, as HTTP/2 does.
 */
function wireName(name: string): string {
  switch (name) {
    case 'RateLimit-Limit':
      return 'ratelimit-limit';
    case 'RateLimit-Remaining':
      return 'ratelimit-remaining';
    case 'RateLimit-Reset':
      return 'ratelimit-reset';
    case 'RateLimit-Policy':
      return 'ratelimit-policy';
    case 'RateLimit':
      return 'ratelimit';
    case 'X-RateLimit-Limit':
      return 'x-ratelimit-limit';
    case 'X-RateLimit-Remaining':
      return 'x-ratelimit-remaining';
    case 'X-RateLimit-Reset':
      return 'x-ratelimit-reset';
    case 'Retry-After':
      return 'retry-after';
    case 'Content-Type':
      return 'content-type';
    default:
      return name;
  }
}

/** Sets an `HttpResult`'s headers on a Node response (`res.setHeader`), names in lower case. */
export function writeHeaders(
  response: { setHeader(name: string, value: string): unknown },
  headers: Readonly<Record<string, string>>,
): void {
  for (const name in headers) response.setHeader(wireName(name), headers[name]!);
}
