import type { Clock } from './types.js';

const origin = Math.floor(performance.timeOrigin);

/**
 * Milliseconds on a monotonic clock that reads like epoch time: it starts at the process's start
 * time and only moves forward, so a wall-clock jump neither refills buckets nor locks clients out.
 */
export const monotonicClock: Clock = () => origin + Math.floor(performance.now());
