export type {
  ByIpOptions,
  DashboardOptions,
  Decision,
  FallbackOptions,
  HeaderMode,
  KeyFunction,
  Limiter,
  LimiterStatus,
  Logger,
  Policy,
  PolicyStatus,
  PolicyStatusBody,
  QuotaExceededProblem,
  RateLimitInfo,
  RateLimitOptions,
  RateLimitRefundOptions,
  RateLimitStatusBody,
  RefundOptions,
  Store,
  TierFunction,
} from '@tollgate/core';
export { MemoryStore, WARNINGS } from '@tollgate/core';
export type { DashboardMiddleware } from './dashboard.js';
export { dashboard } from './dashboard.js';
export type {
  ExpressRateLimitOptions,
  ExpressRateLimitStatusOptions,
  ExpressRequest,
  LimitHandler,
  RateLimitMiddleware,
} from './rate-limit.js';
export { byApiKey, byHeader, byIp, rateLimit, rateLimitStatus } from './rate-limit.js';
