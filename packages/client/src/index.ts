export type { BreakerState } from './breaker.js';
export type { BudgetSnapshot, Cost } from './budget.js';
export {
  CircuitOpenError,
  ClientError,
  ConfigError,
  CostExceedsLimitError,
  DeadlineError,
  isClientError,
  QueueFullError,
} from './errors.js';
export type { CallInfo, LimitRule, LimitSnapshot } from './limits.js';
export type {
  AimdOptions,
  BreakerOptions,
  CallOptions,
  PaceOptions,
  RetryBudgetOptions,
  RetryOptions,
} from './options.js';
export type { FetchLike, PacedFetch, PaceInit, PaceSnapshot } from './pace.js';
export { pace } from './pace.js';
export { presets } from './presets.js';
export type { QuotaSnapshot } from './quota.js';
export type { HeaderReading, HeaderSource, QuotaReading, QuotaUnit } from './read-headers.js';
export { readHeaders } from './read-headers.js';
