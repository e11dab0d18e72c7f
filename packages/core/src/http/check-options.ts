import { ConfigError, configError } from '../errors.js';

/** Rejects anything but a plain object whose keys are all in `known`; `what` names it in messages. */
export function checkOptions(value: unknown, known: readonly string[], what: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw configError(what, 'an object', value);
  }
  for (const option of Object.keys(value)) {
    if (!known.includes(option)) {
      throw new ConfigError(
        `Unknown option \`${option}\` in ${what}. It takes ${known.map((k) => `\`${k}\``).join(', ')}.`,
      );
    }
  }
}

/** Rejects a value that is neither `undefined` nor a function. */
export function checkFunction(value: unknown, option: string): void {
  if (value !== undefined && typeof value !== 'function') throw configError(option, 'a function', value);
}
