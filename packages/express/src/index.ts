export type {
  ByIpOptions,
  DashboardOptions,
  Decision,
  FallbackOptions,
  HeaderMode,
  KeyFunction,
  Limiter,
  Logger,
  Policy,
  PolicyStatus,
  QuotaExceededProblem,
  RateLimitInfo,
  RateLimitOptions,
  RateLimitRefundOptions,
  RefundOptions,
  Store,
  TierFunction,
} from '@tollgate/core';
export { MemoryStore, WARNINGS } from '@tollgate/core';
export type { DashboardMiddleware } from './dashboard.js';
export { dashboard } from './dashboard.js';
export type {
  ExpressRateLimitOptions,
  ExpressRequest,
  LimitHandler,
  RateLimitMiddleware,
} from './rate-limit.js';
export { byApiKey, byHeader, byIp, rateLimit } from './rate-limit.js';
