/** A value now, or later. */
export type Step<T> = T | PromiseLike<T>;

export const isThenable = <T>(value: Step<T>): value is PromiseLike<T> =>
  typeof (value as PromiseLike<T> | null)?.then === 'function';

/**
 * Runs `next` on `value` at once when it is a plain value, after it settles when it is a promise.
 * (Not exported as `then`: a module exporting `then` is itself a thenable to `await import()`.)
 */
export function andThen<T, U>(value: Step<T>, next: (value: T) => Step<U>): Step<U> {
  return isThenable(value) ? Promise.resolve(value).then(next) : next(value);
}
