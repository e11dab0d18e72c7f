/**
 * The longest delay `setTimeout` holds (2^31 - 1 ms, about 24.8 days). Node clamps a longer one
 * to 1 ms (with a TimeoutOverflowWarning): a reset a month away would become a busy loop.
 */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** A timer that may be cleared: `clear()` before it fires, and `fn` never runs. */
export interface Timer {
  clear(): void;
}

/**
 * Runs `fn` after `ms` (any length, Infinity never): a wait beyond MAX_TIMEOUT_MS is waited in
 * chunks of at most that, one timer at a time, so no CPU is spent while waiting. `unref`: the
 * timer does not keep the process alive.
 */
export function setLongTimeout(fn: () => void, ms: number, unref = false): Timer {
  let handle: ReturnType<typeof setTimeout> | undefined;
  let left = Number.isNaN(ms) ? 0 : Math.max(0, ms);
  const arm = () => {
    if (left === Number.POSITIVE_INFINITY) return;
    const step = Math.min(left, MAX_TIMEOUT_MS);
    left -= step;
    handle = setTimeout(() => {
      handle = undefined;
      if (left > 0) arm();
      else fn();
    }, step);
    if (unref) handle.unref?.();
  };
  arm();
  return {
    clear: () => {
      if (handle !== undefined) clearTimeout(handle);
      handle = undefined;
      left = 0;
    },
  };
}

/** Resolves after `ms` (any length); rejects with the signal's reason if it aborts first. */
export function sleep(ms: number, signal: AbortSignal | null | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const onAbort = () => {
      timer.clear();
      reject(signal!.reason);
    };
    const timer = setLongTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
