import { configError } from './errors.js';
import type { Duration } from './types.js';

/** Longest accepted window: the largest delay `setTimeout` honours (about 24.8 days). */
export const MAX_WINDOW_MS = 2 ** 31 - 1;

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/;

/**
 * Parses `'500ms' | '10s' | '1m' | '1h' | '1d'` or a number of milliseconds into a positive
 * integer number of milliseconds, or throws a ConfigError naming `option`.
 */
export function parseDuration(value: Duration, option: string): number {
  let ms: number;
  if (typeof value === 'number') {
    ms = value;
  } else if (typeof value === 'string') {
    const match = PATTERN.exec(value);
    if (!match) {
      throw configError(
        option,
        "a duration such as `'500ms'`, `'10s'`, `'1m'`, `'1h'`, `'1d'` or milliseconds",
        value,
      );
    }
    ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
    // '1.5s' is 1500 ms; float noise such as 0.1 * 1000 must not reject it.
    const rounded = Math.round(ms);
    if (Math.abs(ms - rounded) < 1e-6) ms = rounded;
  } else {
    throw configError(option, "a duration (milliseconds or a string such as `'10s'`)", value);
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
