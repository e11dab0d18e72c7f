// `@tollgate/core`: what users call. Every name here is documented where it is declared and listed in
// the README's "API" section; what sibling packages, benches and tests share is in `./internal.ts`.

// Stores, and what a store of your own implements.
export { liftId } from './ban/lift.js';
// The live dashboard's options (the page itself is served by the adapters' `dashboard()`).
export type { DashboardOptions } from './dashboard/index.js';
export { formatDuration, parseDuration } from './duration.js';
// Errors and warnings.
export type { StoreErrorScope } from './errors.js';
export {
  CallbackError,
  ConfigError,
  isCallbackError,
  isConfigError,
  isStoreError,
  isTollgateError,
  StoreError,
  TollgateError,
} from './errors.js';
// Events on `node:diagnostics_channel` (observers: metrics, dashboards).
export type {
  BanMessage,
  DecisionMessage,
  DecisionResult,
  StoreCallMessage,
  StoreErrorMessage,
  StoreRecoveredMessage,
} from './events.js';
export {
  BAN_CHANNEL,
  DECISION_CHANNEL,
  STORE_CALL_CHANNEL,
  STORE_ERROR_CHANNEL,
  STORE_RECOVERED_CHANNEL,
} from './events.js';
// The framework-free HTTP layer (any server without an adapter, `node:http`).
export type {
  AccessDeniedProblem,
  AccessEntry,
  ByIpOptions,
  FallbackOptions,
  HeaderMode,
  HttpLimiter,
  HttpResult,
  KeyFunction,
  LimiterStatus,
  PolicyStatusBody,
  QuotaExceededProblem,
  RateLimitInfo,
  RateLimitOptions,
  RateLimitStatusBody,
  RateLimitStatusOptions,
  RefundOptions as RateLimitRefundOptions,
  RequestEnding,
  RequestView,
  StatusAnswer,
  StoreUnavailableProblem,
  TierFunction,
} from './http/index.js';
export {
  ACCESS_DENIED_TYPE,
  byApiKey,
  byHeader,
  byIp,
  NodeRequestView,
  QUOTA_EXCEEDED_TYPE,
  rateLimit,
  rateLimitStatus,
  writeResult,
} from './http/index.js';
// Limiters and their decisions.
export type { ConsumeOptions, Limiter, LimiterOptions, RefundOptions } from './limiter.js';
export { createLimiter } from './limiter.js';
export type { MemoryStoreOptions } from './memory-store.js';
export { MemoryStore } from './memory-store.js';
export type { Reservation } from './reservation.js';
export type {
  Algorithm,
  BanOptions,
  CalendarUnit,
  CalendarWindow,
  Clock,
  ConcurrencyPolicy,
  ConsumeInfo,
  Decision,
  DecisionReason,
  Duration,
  DurationString,
  DurationUnit,
  LiftListener,
  Logger,
  Outcome,
  Policy,
  PolicySet,
  PolicyStatus,
  RateAlgorithm,
  RatePolicy,
  ResolvedBan,
  ResolvedCalendar,
  ResolvedPolicy,
  Settlement,
  Store,
} from './types.js';
// Usage recording and reports.
export type {
  RouteUsage,
  TenantUsage,
  Usage,
  UsageAddContext,
  UsageCounts,
  UsageEntry,
  UsageEvent,
  UsageFunctions,
  UsageOptions,
  UsagePeriod,
  UsageQuery,
  UsageReport,
  UsageReportOptions,
  UsageResult,
  UsageStore,
} from './usage/index.js';
export { createUsage, MemoryUsageStore } from './usage/index.js';
export type { WarningCode } from './warnings.js';
export { WARNINGS } from './warnings.js';
