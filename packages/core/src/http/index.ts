export type { AccessEntry } from './access-lists.js';
export type { HeaderMode } from './headers.js';
export {
  ceilSeconds,
  decisionHeaders,
  HEADER_MODES,
  resolveHeaderModes,
  retryAfterSeconds,
  windowSeconds,
  writeHeaders,
} from './headers.js';
export type { Closable } from './hold.js';
export { hold } from './hold.js';
export { ipBucket, parseAddress, readAddress } from './ip-address.js';
export type { IpRange } from './ip-ranges.js';
export { firstOverlap, isPrivateAddress, parseRange, RangeSet } from './ip-ranges.js';
export type { ByIpOptions, FallbackOptions, KeyFunction, KeyHelpers } from './keys.js';
export { byApiKey, byHeader, byIp, keyHelpers } from './keys.js';
export type { Answer, NodeResponse } from './node-response.js';
export { completeOnClose, writeResult } from './node-response.js';
export type { NodeRequestLike, NodeResponseLike } from './node-view.js';
export { NodeRequestView } from './node-view.js';
export type { RateLimitConfig, RateLimitOptions, RefundOptions, TierFunction } from './options.js';
export { resolveOptions } from './options.js';
export type {
  AccessDeniedProblem,
  EncodedBody,
  QuotaExceededProblem,
  StoreUnavailableProblem,
} from './problem.js';
export {
  ACCESS_DENIED_TYPE,
  accessDeniedProblem,
  encodeBody,
  QUOTA_EXCEEDED_TYPE,
  quotaExceededProblem,
  storeUnavailableProblem,
} from './problem.js';
export type { HttpLimiter, HttpResult, RateLimitInfo, RequestEnding } from './rate-limit.js';
export { rateLimit } from './rate-limit.js';
export type { RequestView } from './request-view.js';
export type {
  LimiterStatus,
  PolicyStatusBody,
  RateLimitStatusBody,
  RateLimitStatusOptions,
  StatusAnswer,
} from './status.js';
export { limiterStatus, rateLimitStatus, statusHandler } from './status.js';
