export { concurrency } from './concurrency/index.js';
export { fixedWindow } from './fixed-window/index.js';
export { leakyBucket } from './leaky-bucket/index.js';
export { type AlgorithmName, REGISTRY, STEPS } from './registry.js';
export { slidingWindow } from './sliding-window/index.js';
export { tokenBucket } from './token-bucket/index.js';
export type {
  AlgorithmDefinition,
  AlgorithmStep,
  Charge,
  Holding,
  Kernel,
  LeaseSet,
  LuaParam,
  State,
  StepResult,
} from './types.js';
export { newOutcome } from './types.js';
