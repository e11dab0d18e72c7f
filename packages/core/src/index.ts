export type { AlgorithmStep, State, StepResult } from './algorithms/index.js';
export { fixedWindow, leakyBucket, STEPS, slidingWindow, tokenBucket } from './algorithms/index.js';
export { monotonicClock } from './clock.js';
export { openDecision, toDecision } from './decision.js';
export { formatDuration, MAX_WINDOW_MS, parseDuration } from './duration.js';
export type { StoreErrorScope } from './errors.js';
export {
  ConfigError,
  configError,
  isConfigError,
  isStoreError,
  isTollgateError,
  StoreError,
  TollgateError,
} from './errors.js';
export type { Evaluation } from './evaluate.js';
export { evaluate, peekOutcomes, refundStates } from './evaluate.js';
export * from './http/index.js';
export type { ConsumeOptions, Limiter, LimiterOptions, RefundOptions } from './limiter.js';
export { createLimiter } from './limiter.js';
export type { MemoryStoreOptions } from './memory-store.js';
export { MemoryStore } from './memory-store.js';
export {
  ALGORITHMS,
  capacityOf,
  DEFAULT_ALGORITHM,
  resolveNamespace,
  resolvePolicy,
  resolvePolicySet,
} from './policy.js';
export type {
  Algorithm,
  Clock,
  ConsumeInfo,
  Decision,
  DecisionReason,
  Duration,
  DurationString,
  DurationUnit,
  Logger,
  Outcome,
  Policy,
  PolicySet,
  PolicyStatus,
  ResolvedPolicy,
  Store,
} from './types.js';
export type { WarningCode } from './warnings.js';
export { WARNINGS, Warner } from './warnings.js';
