import { configError } from './errors.js';
import type { DurationUnit } from './types.js';

/** Longest accepted window: the largest delay `setTimeout` honours (about 24.8 days). */
export const MAX_WINDOW_MS = 2 ** 31 - 1;

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
 */
export function parseDuration(value: unknown, option: string): number {
  let ms: number;
  if (typeof value === 'number') {
    ms = value;
  } else if (typeof value === 'string') {
    const match = PATTERN.exec(value);
    if (!match) throw configError(option, EXPECTED, value, hint(value));
    ms = Number(match[1]) * UNIT_MS[match[2] as DurationUnit];
  } else {
    throw configError(option, EXPECTED, value);
  }
  if (!Number.isInteger(ms) || ms <= 0) {
    throw configError(option, 'a positive whole number of milliseconds', value);
  }
  if (ms > MAX_WINDOW_MS) {
    throw configError(
      option,
      `at most ${MAX_WINDOW_MS} ms (about 24.8 days)`,
      value,
      'For longer quotas, use a shorter window with a proportional limit.',
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
function hint(value: string): string {
  // A bare number in a string (often from an environment variable) has no unit to guess.
  if (/^[0-9]+$/.test(value)) {
    return `A string needs a unit: '${value}s', '${value}m' or '${value}ms'; the number ${value} means ${value} ms.`;
  }
  const meant = guess(value);
  return meant === undefined ? '' : `Did you mean '${meant}'?`;
}

/**
 * The accepted spelling of what a rejected string most likely meant ('2 m' -> '2m', '1 minute' ->
 * '1m', '1.5s' -> '1500ms'), or undefined when there is no exact one. Only for the error message:
 * the parser itself never guesses.
 */
function guess(value: string): string | undefined {
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
  if (ms <= 0 || ms > MAX_WINDOW_MS) return undefined;
  return ms % UNIT_MS[unit] === 0 ? `${ms / UNIT_MS[unit]}${unit}` : formatDuration(ms);
}
