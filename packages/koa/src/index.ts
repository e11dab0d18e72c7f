export type {
  ByIpOptions,
  ConcurrencyPolicy,
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
  RatePolicy,
  RefundOptions,
  Store,
  TierFunction,
  Usage,
  UsageOptions,
  UsageReport,
  UsageReportOptions,
} from '@tollgate/core';
export { MemoryStore, MemoryUsageStore, WARNINGS } from '@tollgate/core';
export type { DashboardMiddleware } from './dashboard.js';
export { dashboard } from './dashboard.js';
export type {
  KoaContext,
  KoaRateLimitOptions,
  KoaRateLimitStatusOptions,
  RateLimitMiddleware,
  UsageReportHandler,
} from './rate-limit.js';
export {
  byApiKey,
  byHeader,
  byIp,
  createUsage,
  rateLimit,
  rateLimitStatus,
  usageReport,
} from './rate-limit.js';
