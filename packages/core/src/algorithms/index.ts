import type { Algorithm } from '../types.js';
import { fixedWindow } from './fixed-window.js';
import { leakyBucket } from './leaky-bucket.js';
import { slidingWindow } from './sliding-window.js';
import { tokenBucket } from './token-bucket.js';
import type { AlgorithmStep } from './types.js';

export const STEPS: Record<Algorithm, AlgorithmStep> = {
  'fixed-window': fixedWindow,
  'sliding-window': slidingWindow,
  'token-bucket': tokenBucket,
  'leaky-bucket': leakyBucket,
};

export type { AlgorithmStep, Kernel, State, StepResult } from './types.js';
export { newOutcome } from './types.js';
export { fixedWindow, leakyBucket, slidingWindow, tokenBucket };
