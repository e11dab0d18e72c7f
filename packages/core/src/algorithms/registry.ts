import { concurrency } from './concurrency/index.js';
import { fixedWindow } from './fixed-window/index.js';
import { leakyBucket } from './leaky-bucket/index.js';
import { slidingWindow } from './sliding-window/index.js';
import { tokenBucket } from './token-bucket/index.js';
import type { AlgorithmDefinition } from './types.js';

/**
 * Every algorithm, one line each: adding one is a folder (kernel, Lua body, tests) and a line here.
 * The order is the one error messages list them in and the Redis scripts' codes (1, 2, ...).
 */
export const REGISTRY = [fixedWindow, slidingWindow, tokenBucket, leakyBucket, concurrency] as const;

/** The name of an algorithm, as a policy's `algorithm` gives it. */
export type AlgorithmName = (typeof REGISTRY)[number]['name'];

/** The algorithms by name. */
export const STEPS = Object.fromEntries(REGISTRY.map((a) => [a.name, a])) as Record<
  AlgorithmName,
  AlgorithmDefinition<AlgorithmName>
>;
