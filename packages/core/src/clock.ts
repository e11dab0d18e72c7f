import type { Clock } from './types.js';

const origin = Math.floor(performance.timeOrigin);

/**
 * Milliseconds on a monotonic clock that reads like epoch time: it starts at the process's start
 * time and only moves forward, so a wall-clock jump neither refills buckets nor locks clients out.
 */
export const monotonicClock: Clock = () =>
  // `performance` is looked up on every call, not kept: fake timers that replace it
  // (`vi.useFakeTimers()` does by default) then drive this clock, so apps can test their limits.
  origin + Math.floor(performance.now());
