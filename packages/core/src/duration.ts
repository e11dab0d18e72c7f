import { configError } from './errors.js';
import type { DurationUnit } from './types.js';

/**
 * Longest accepted duration of an option that becomes a timer (`timeoutMs`, `sweepIntervalMs`,
 * `probeIntervalMs`): the largest delay `setTimeout` honours, 2^31 - 1 ms (about 24.8 days).
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Longest accepted rolling window, 2^51 ms (about 71 000 years): no timer waits for a window; the
 * algorithms add it (sliding-window twice) to time stamps in ms, and those sums stay exact integers
 * in doubles (and in Redis Lua) below 2^53. Whether `limit` times the window stays exact too is
 * checked per algorithm when a policy is resolved.
 */
export const MAX_WINDOW_MS = 2 ** 51;

const UNIT_MS: Record<DurationUnit, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/**
 * The whole grammar, the same as the `DurationString` type: a whole number without leading zeros
 * and a unit, no spaces, no fractions, no exponent.
 */
const PATTERN = /^(0|[1-9][0-9]*)(ms|s|m|h|d)$/;
const EXPECTED =
  "milliseconds as a number or a string of a whole number and a unit with no space: `'500ms'`, `'10s'`, `'1m'`, `'1h'` or `'1d'`";

/**
 * Parses `'500ms' | '10s' | '1m' | '1h' | '1d'` or a number of milliseconds into a positive
 * integer number of milliseconds, or throws a ConfigError naming `option`. Takes `unknown` so that
 * a string from configuration (an environment variable) is checked here, with a clear message.
 * `max` is the longest accepted: by default that of a timer, 2^31 - 1 ms (about 24.8 days); a
 * policy's window takes up to 2^51 ms.
 */
export function parseDuration(value: unknown, option: string, max: number = MAX_TIMER_MS): number {
  let ms: number;
  if (typeof value === 'number') {
    ms = value;
  } else if (typeof value === 'string') {
    const match = PATTERN.exec(value);
    if (!match) throw configError(option, EXPECTED, value, hint(value, max));
    ms = Number(match[1]) * UNIT_MS[match[2] as DurationUnit];
  } else {
    throw configError(option, EXPECTED, value);
  }
  if (!Number.isInteger(ms) || ms <= 0) {
    throw configError(option, 'a positive whole number of milliseconds', value);
  }
  if (ms > max) {
    throw configError(
      option,
      max === MAX_TIMER_MS ? `at most ${max} ms (about 24.8 days, the longest timer)` : `at most ${max} ms`,
      value,
    );
  }
  return ms;
}

/** 1000 -> '1s', 90_000 -> '90s', 3_600_000 -> '1h': the shortest exact spelling. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}

const SPELLED: Record<string, DurationUnit> = {
  millisecond: 'ms',
  milliseconds: 'ms',
  msec: 'ms',
  sec: 's',
  secs: 's',
  second: 's',
  seconds: 's',
  min: 'm',
  mins: 'm',
  minute: 'm',
  minutes: 'm',
  hr: 'h',
  hrs: 'h',
  hour: 'h',
  hours: 'h',
  day: 'd',
  days: 'd',
};

/** What to write instead of a refused string, when that can be told: a sentence, or ''. */
function hint(value: string, max: number): string {
  // A bare number in a string (often from an environment variable) has no unit to guess.
  if (/^[0-9]+$/.test(value)) {
    return `A string needs a unit: '${value}s', '${value}m' or '${value}ms'; the number ${value} means ${value} ms.`;
  }
  const meant = guess(value, max);
  return meant === undefined ? '' : `Did you mean '${meant}'?`;
}

/**
 * The accepted spelling of what a rejected string most likely meant ('2 m' -> '2m', '1 minute' ->
 * '1m', '1.5s' -> '1500ms'), or undefined when there is no exact one. Only for the error message:
 * the parser itself never guesses.
 */
function guess(value: string, max: number): string | undefined {
  const loose = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i.exec(value);
  if (!loose) return undefined;
  const word = loose[2]!.toLowerCase();
  const unit = Object.hasOwn(UNIT_MS, word)
    ? (word as DurationUnit)
    : Object.hasOwn(SPELLED, word)
      ? SPELLED[word]
      : undefined;
  if (unit === undefined) return undefined;
  // Counted in thousandths of the unit, so '1.5s' is exact; more fraction digits than that are
  // no spelling anyone means.
  const [whole, fraction = ''] = loose[1]!.split('.');
  if (fraction.length > 3) return undefined;
  const scaled = (Number(whole) * 1000 + Number(fraction.padEnd(3, '0'))) * UNIT_MS[unit];
  if (!Number.isSafeInteger(scaled) || scaled % 1000 !== 0) return undefined;
  const ms = scaled / 1000;
  if (ms <= 0 || ms > max) return undefined;
  return ms % UNIT_MS[unit] === 0 ? `${ms / UNIT_MS[unit]}${unit}` : formatDuration(ms);
}
