import { type Calendar, NOMINAL_MS, resolveCalendar } from './algorithms/fixed-window/calendar.js';
import { REGISTRY, STEPS } from './algorithms/index.js';
import { checkOptions } from './check-options.js';
import { formatDuration, MAX_WINDOW_MS, parseDuration } from './duration.js';
import { ConfigError, configError, describeValue } from './errors.js';
import type { Algorithm, Policy, PolicyMode, PolicySet, ResolvedBan, ResolvedPolicy } from './types.js';
import { WARNINGS, type Warner } from './warnings.js';

export const ALGORITHMS: readonly Algorithm[] = REGISTRY.map((a) => a.name);
export const DEFAULT_ALGORITHM: Algorithm = 'sliding-window';

const POLICY_KEYS = ['name', 'algorithm', 'limit', 'window', 'burst', 'delay', 'mode', 'maxDebt', 'lease'];
const MODES: readonly PolicyMode[] = ['enforce', 'shadow'];
const NAME_PATTERN = /^[A-Za-z0-9._:/-]{1,64}$/;

/** Whether `burst` applies: the algorithm reads it (the buckets). */
const isBucket = (algorithm: Algorithm) => STEPS[algorithm].params.includes('B');
/** Whether the algorithm holds requests in flight (concurrency): `lease` instead of `window`. */
const holds = (algorithm: Algorithm) => STEPS[algorithm].holds !== undefined;
/** Whether `delay` applies (leaky-bucket). */
const delays = (algorithm: Algorithm) => STEPS[algorithm].params.includes('D');
/** Whether a calendar period may be the window: the algorithm reads the period's start (fixed-window). */
const takesCalendar = (algorithm: Algorithm) => STEPS[algorithm].params.includes('S');
const listOf = (test: (algorithm: Algorithm) => boolean) =>
  ALGORITHMS.filter(test)
    .map((a) => `'${a}'`)
    .join(' and ');

const DAY_MS = 86_400_000;

/** The largest limit: RateLimit header fields are RFC 9651 Integers, at most 15 digits (§3.3.1). */
export const MAX_LIMIT = 999_999_999_999_999;

function positiveInteger(value: unknown, option: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw configError(option, 'a positive integer', value);
  }
  if (value > MAX_LIMIT) {
    throw configError(
      option,
      `at most ${MAX_LIMIT} (15 digits, the most an RFC 9651 header Integer holds)`,
      value,
    );
  }
  return value;
}

/**
 * Validates one policy and fills in its defaults. `at` names it in messages, e.g. `policies[1]`;
 * `warner` (the limiter's) hears of soft mistakes.
 */
export function resolvePolicy(input: Policy, at = 'policy', warner?: Warner): ResolvedPolicy {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw configError(at, "an object such as `{ limit: 10, window: '1s' }`", input);
  }
  checkOptions(input, POLICY_KEYS, `\`${at}\``);
  const periodic = typeof input.window === 'object' && input.window !== null;
  // A calendar window implies the one algorithm that counts it; another one named is refused below.
  const algorithm = input.algorithm ?? (periodic ? ALGORITHMS.find(takesCalendar)! : DEFAULT_ALGORITHM);
  if (!ALGORITHMS.includes(algorithm)) {
    throw configError(`${at}.algorithm`, `one of ${ALGORITHMS.map((a) => `'${a}'`).join(', ')}`, algorithm);
  }
  const limit = positiveInteger(input.limit, `${at}.limit`);
  let calendar: Calendar | undefined;
  let window: number;
  if (periodic && !holds(algorithm)) {
    if (!takesCalendar(algorithm)) {
      throw new ConfigError(
        `\`${at}.window\` is a calendar period, which only ${listOf(takesCalendar)} counts (a quota that resets on the calendar), not '${algorithm}'. Set \`${at}.algorithm\` to ${listOf(takesCalendar)}, or give a rolling window such as '30d'.`,
      );
    }
    calendar = resolveCalendar(input.window as object, at);
    window = NOMINAL_MS[calendar.unit];
  } else {
    window = windowOf(input, algorithm, at);
  }

  let burst = limit;
  if (input.burst !== undefined) {
    if (!isBucket(algorithm)) {
      throw new ConfigError(
        `\`${at}.burst\` only applies to ${listOf(isBucket)}, not '${algorithm}'. Remove it or change \`${at}.algorithm\`.`,
      );
    }
    burst = positiveInteger(input.burst, `${at}.burst`);
  }
  let delay = false;
  if (input.delay !== undefined) {
    if (!delays(algorithm)) {
      throw new ConfigError(`\`${at}.delay\` only applies to ${listOf(delays)}, not '${algorithm}'.`);
    }
    if (typeof input.delay !== 'boolean') throw configError(`${at}.delay`, 'a boolean', input.delay);
    delay = input.delay;
  } else {
    delay = delays(algorithm);
  }
  // The algorithms count in units of 1/window so that all arithmetic is exact integer arithmetic
  // in doubles (and in Redis Lua); that needs capacity * window to stay a safe integer. One that
  // counts whole units (fixed-window) never multiplies by the window.
  if (!STEPS[algorithm].wholeUnits && Math.max(limit, burst) * window > Number.MAX_SAFE_INTEGER) {
    throw new ConfigError(
      `\`${at}\`: limit (or burst) times window must not exceed ${Number.MAX_SAFE_INTEGER}, got ${Math.max(limit, burst)} x ${window} ms. Use a shorter window with a proportional limit.`,
    );
  }
  if (delay && Math.ceil(((burst - 1) * window) / limit) > 2 ** 31 - 1) {
    throw new ConfigError(
      `\`${at}\`: a full leaky bucket would hold a request for more than ${2 ** 31 - 1} ms. Lower \`burst\` or set \`delay: false\`.`,
    );
  }

  const mode = input.mode ?? 'enforce';
  if (!MODES.includes(mode)) {
    throw configError(
      `${at}.mode`,
      "`'enforce'` or `'shadow'`",
      mode,
      "Use 'shadow' to count a policy without letting it deny (see `shadowLimited` on the decision).",
    );
  }
  // Whole units (fixed-window) are never multiplied by the window: only the count must stay exact.
  if (holds(algorithm) && input.maxDebt !== undefined) {
    throw new ConfigError(
      `\`${at}.maxDebt\` does not apply to '${algorithm}': a settle counts units, never slots. Remove it.`,
    );
  }
  const maxDebt = resolveMaxDebt(
    input.maxDebt,
    Math.max(limit, burst),
    isBucket(algorithm) ? burst : limit,
    STEPS[algorithm].wholeUnits ? 1 : window,
    at,
  );

  if (mode === 'shadow' && holds(algorithm)) {
    throw new ConfigError(
      `\`${at}.mode\` is 'shadow', which a '${algorithm}' policy cannot be: its slots are held by the requests it admits, so it is always enforced. Remove \`${at}.mode\`.`,
    );
  }
  const name =
    input.name ??
    (holds(algorithm)
      ? `${limit}-in-flight`
      : `${limit}-per-${calendar === undefined ? formatDuration(window) : calendar.unit}`);
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw configError(`${at}.name`, 'a string of 1-64 letters, digits, `.`, `_`, `:`, `/` or `-`', name);
  }
  // Warned only of a policy that is otherwise valid: a rejected one says enough.
  const option = holds(algorithm) ? 'lease' : 'window';
  if (typeof input[option] === 'number' && window < 1000) {
    warner?.warn(
      WARNINGS.NUMERIC_WINDOW,
      `\`${at}.${option}\` is ${window}, a number, so ${window} ms. Did you mean '${window}s'? Write '${window}s', or '${window}ms' if milliseconds are meant.`,
    );
  }
  if (calendar === undefined && window % DAY_MS === 0 && window >= 28 * DAY_MS && window <= 31 * DAY_MS) {
    warner?.warn(
      WARNINGS.ROLLING_MONTH,
      `\`${at}.window\` is ${window / DAY_MS} days, a rolling window: ${algorithm === 'fixed-window' ? "it opens at each key's first request, so every key's month starts on another day and drifts from the calendar" : 'it counts the last days whatever the date, not the calendar month'}. For a monthly quota write \`window: { calendar: 'month' }\` (see startDay and timeZone); keep '${window / DAY_MS}d' if a rolling window is meant.`,
    );
  }
  const { tag } = STEPS[algorithm];
  const id =
    calendar !== undefined
      ? `${tag}:${limit}:${calendar.unit}:${calendar.timeZone}:${calendar.startDay}`
      : isBucket(algorithm)
        ? `${tag}:${limit}:${window}:${burst}`
        : `${tag}:${limit}:${window}`;
  const resolved: ResolvedPolicy = { name, algorithm, limit, window, burst, delay, mode, maxDebt, id };
  return Object.freeze(calendar === undefined ? resolved : { ...resolved, calendar });
}

/**
 * `maxDebt`: a non-negative integer; by default the capacity. The algorithms count debt in the same
 * scaled units as the rest (x window), so (largest of limit and burst + maxDebt) x window must stay a
 * safe integer for the arithmetic to stay exact: the default shrinks to fit, a given value must.
 */
function resolveMaxDebt(
  input: unknown,
  largest: number,
  capacity: number,
  window: number,
  at: string,
): number {
  const most = Math.floor(Number.MAX_SAFE_INTEGER / window) - largest;
  if (input === undefined) return Math.max(0, Math.min(capacity, most));
  if (typeof input !== 'number' || !Number.isInteger(input) || input < 0) {
    throw configError(`${at}.maxDebt`, 'a non-negative integer (units over the capacity)', input);
  }
  if (input > most) {
    throw new ConfigError(
      `\`${at}.maxDebt\` is ${input}, but (limit or burst + maxDebt) times window must not exceed ${Number.MAX_SAFE_INTEGER}: at most ${Math.max(0, most)} here. Lower \`maxDebt\` or use a shorter window with a proportional limit.`,
    );
  }
  return input;
}

/** A rate policy's `window`, or a concurrency policy's `lease`, in ms: each only where it applies. */
function windowOf(input: Policy, algorithm: Algorithm, at: string): number {
  if (!holds(algorithm)) {
    if (input.lease !== undefined) {
      throw new ConfigError(
        `\`${at}.lease\` only applies to ${listOf(holds)}, not '${algorithm}'. Remove it, or set \`${at}.algorithm\` to 'concurrency' to cap requests in flight.`,
      );
    }
    return parseDuration(input.window, `${at}.window`, MAX_WINDOW_MS);
  }
  if (input.window !== undefined) {
    throw new ConfigError(
      `\`${at}.window\` does not apply to '${algorithm}', which counts requests in flight, not requests per window. Remove it and give \`${at}.lease\`: the longest a request holds its slot without a release, e.g. '30s'.`,
    );
  }
  if (input.lease === undefined) {
    throw new ConfigError(
      `\`${at}\` is a '${algorithm}' policy without \`lease\`: give the longest a request may hold its slot before the slot is freed without a release (a crashed process's slots come back then), longer than your slowest request, e.g. \`lease: '30s'\`.`,
    );
  }
  return parseDuration(input.lease, `${at}.lease`);
}

/** Validates a limiter or store `name` (the namespace of its counters). */
export function resolveNamespace(name: unknown, option = 'name'): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw configError(option, 'a string of 1-64 letters, digits, `.`, `_`, `:`, `/` or `-`', name);
  }
  return name;
}

/**
 * Validates `policies` (one or several) into a frozen PolicySet; `ban` (the limiter's, validated)
 * gives it a ban slot.
 */
export function resolvePolicySet(
  input: Policy | readonly Policy[],
  namespace: string,
  option = 'policies',
  warner?: Warner,
  ban?: ResolvedBan,
): PolicySet {
  const list = Array.isArray(input) ? (input as readonly Policy[]) : [input as Policy];
  if (list.length === 0) {
    throw new ConfigError(`Expected \`${option}\` to hold at least one policy, got an empty array.`);
  }
  const policies = list.map((p, i) =>
    resolvePolicy(p, Array.isArray(input) ? `${option}[${i}]` : option, warner),
  );
  const seen = new Map<string, number>();
  policies.forEach((p, i) => {
    const first = seen.get(p.name);
    if (first !== undefined) {
      throw new ConfigError(
        `\`${option}[${i}]\` has the name ${describeValue(p.name)}, already used by \`${option}[${first}]\`. Give each policy a distinct \`name\`.`,
      );
    }
    seen.set(p.name, i);
  });
  const holders = policies.flatMap((p, i) => (holds(p.algorithm) ? [i] : []));
  if (holders.length > 1) {
    throw new ConfigError(
      `\`${option}[${holders[1]}]\` is a second 'concurrency' policy, after \`${option}[${holders[0]}]\`: one set holds at most one (a request holds one lease). Keep one.`,
    );
  }
  const holder = holders[0] ?? -1;
  const id = `${namespace}|${policies.map((p) => p.id).join(',')}`;
  // `|ban` marks the layout with a ban slot (its state never mixes with a set's without one); the
  // ban's numbers are not in it, so changing them keeps counts and bans.
  if (ban === undefined) return Object.freeze({ namespace, policies: Object.freeze(policies), id, holder });
  return Object.freeze({ namespace, policies: Object.freeze(policies), id: `${id}|ban`, ban, holder });
}

/** The capacity shown as a policy's limit in decisions and headers. */
export const capacityOf = (policy: ResolvedPolicy): number =>
  isBucket(policy.algorithm) ? policy.burst : policy.limit;
