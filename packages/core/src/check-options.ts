import { parseDuration } from './duration.js';
import { ConfigError, configError, describeValue } from './errors.js';

/**
 * The one check of every options object (createLimiter, the stores, rateLimit, the key helpers, a
 * policy): a plain object whose keys are all in `known`. An unknown name is told the nearest known
 * one (a typo, a different case, an express-rate-limit name), then the whole list. `what` names the
 * object in messages.
 */
export function checkOptions(value: unknown, known: readonly string[], what: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`Expected ${what} to be an object, got ${describeValue(value)}.`);
  }
  for (const option of Object.keys(value)) {
    if (!known.includes(option)) {
      const near = nearest(option, known);
      const suggestion = near === undefined ? '' : ` Did you mean \`${near}\`?`;
      throw new ConfigError(
        `Unknown option \`${option}\` in ${what}.${suggestion} It takes ${known.map((k) => `\`${k}\``).join(', ')}.`,
      );
    }
  }
}

/** Rejects a value that is neither `undefined` nor a function. */
export function checkFunction(value: unknown, option: string): void {
  if (value !== undefined && typeof value !== 'function') throw configError(option, 'a function', value);
}

/**
 * A time option (`timeoutMs`, `probeIntervalMs`, `sweepIntervalMs`): milliseconds as a number or a
 * duration string (`'500ms'`, `'2s'`), checked by the one duration parser; `fallback` when absent.
 */
export function durationOption(value: unknown, option: string, fallback: number): number {
  return value === undefined ? fallback : parseDuration(value, option);
}

/** The known name closest to `name`: the same ignoring case, or at most a third of it edited. */
function nearest(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(name.length / 3)) + 1;
  for (const candidate of known) {
    const d = candidate.toLowerCase() === lower ? 0 : distance(lower, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance: insertions, deletions and substitutions. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        previous[j]! + 1,
        row[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = row;
  }
  return previous[b.length]!;
}
