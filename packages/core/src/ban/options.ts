import { checkOptions } from '../check-options.js';
import { MAX_WINDOW_MS, parseDuration } from '../duration.js';
import { ConfigError, configError } from '../errors.js';
import type { BanOptions, ResolvedBan } from '../types.js';

const OPTIONS = ['after', 'within', 'for', 'escalate', 'recheck'];
const ESCALATE_OPTIONS = ['factor', 'max'];
/** The largest `factor`: the ban then reaches `max` in a few offences anyway. */
const MAX_FACTOR = 1000;
const DEFAULT_RECHECK_MS = 1000;

/** The `ban` option, validated: what the stores run (`ban`) and how long a process trusts a ban. */
export interface BanConfig {
  readonly ban: ResolvedBan;
  /** ms; Infinity for `recheck: false`. */
  readonly recheckMs: number;
}

/** Validates `ban` (of `createLimiter()` or `rateLimit()`); every message names the option. */
export function resolveBan(input: BanOptions, option = 'ban'): BanConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw configError(option, "an object such as `{ after: 5, within: '1m', for: '15m' }`", input);
  }
  checkOptions(input, OPTIONS, `\`${option}\``);
  const automatic = [input.after, input.within, input.for].filter((v) => v !== undefined).length;
  if (automatic !== 0 && automatic !== 3) {
    throw new ConfigError(
      `\`${option}\` needs \`after\`, \`within\` and \`for\` together (the \`after\`-th denial within \`within\` bans for \`for\`), or none of them for bans made by \`limiter.ban()\` only. Got ${['after', 'within', 'for'].filter((k) => input[k as keyof BanOptions] !== undefined).join(', ')}.`,
    );
  }
  let after = 0;
  let within = 0;
  let length = 0;
  if (automatic === 3) {
    after = input.after!;
    if (typeof after !== 'number' || !Number.isInteger(after) || after < 1 || after > 1_000_000) {
      throw configError(`${option}.after`, 'a whole number of denials from 1 to 1000000', input.after);
    }
    within = parseDuration(input.within, `${option}.within`, MAX_WINDOW_MS);
    length = parseDuration(input.for, `${option}.for`, MAX_WINDOW_MS);
  }
  let factor = 1;
  let max = length;
  let memory = 0;
  if (input.escalate !== undefined) {
    const at = `${option}.escalate`;
    if (automatic === 0) {
      throw new ConfigError(
        `\`${at}\` needs automatic bans to escalate: give \`${option}.after\`, \`within\` and \`for\`, or remove \`escalate\`.`,
      );
    }
    const escalate = input.escalate;
    if (typeof escalate !== 'object' || escalate === null || Array.isArray(escalate)) {
      throw configError(at, "an object such as `{ factor: 2, max: '1d' }`", escalate);
    }
    checkOptions(escalate, ESCALATE_OPTIONS, `\`${at}\``);
    factor = escalate.factor ?? 2;
    if (typeof factor !== 'number' || !Number.isFinite(factor) || factor <= 1 || factor > MAX_FACTOR) {
      throw configError(`${at}.factor`, `a number above 1 and at most ${MAX_FACTOR}`, escalate.factor);
    }
    if (escalate.max === undefined) {
      throw configError(`${at}.max`, "the longest ban, e.g. `'1d'`", undefined);
    }
    max = parseDuration(escalate.max, `${at}.max`, MAX_WINDOW_MS);
    if (max < length) {
      throw configError(
        `${at}.max`,
        `at least \`${option}.for\` (${length} ms)`,
        escalate.max,
        'It is the longest a ban grows to.',
      );
    }
    memory = max;
  }
  let recheckMs = DEFAULT_RECHECK_MS;
  if (input.recheck === false) recheckMs = Number.POSITIVE_INFINITY;
  else if (input.recheck !== undefined) recheckMs = parseDuration(input.recheck, `${option}.recheck`);
  const ban: ResolvedBan = Object.freeze({ after, within, for: length, factor, max, memory });
  return Object.freeze({ ban, recheckMs });
}
