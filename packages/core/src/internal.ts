/**
 * `@tollgate/core/internal`: what sibling packages (`@tollgate/redis`, the adapters), the benches and
 * the tests share. No stability promise and not documented for users: the public names are in
 * `./index.ts`, re-exported here so that one import serves a test.
 */

export type {
  AlgorithmDefinition,
  AlgorithmName,
  AlgorithmStep,
  Holding,
  Kernel,
  LeaseSet,
  LuaParam,
  State,
  StepResult,
} from './algorithms/index.js';
export {
  concurrency,
  fixedWindow,
  leakyBucket,
  newOutcome,
  REGISTRY,
  STEPS,
  slidingWindow,
  tokenBucket,
} from './algorithms/index.js';
export {
  BAN_WIDTH,
  banExpiresAt,
  banLeft,
  banLength,
  bannedOutcomes,
  countDenial,
  setBan,
} from './ban/kernel.js';
export { BAN_ARGS, BAN_COUNT_LUA, BAN_END_LUA } from './ban/lua.js';
export { type BanConfig, resolveBan } from './ban/options.js';
export { checkFunction, checkOptions, durationOption } from './check-options.js';
export { monotonicClock } from './clock.js';
export type { DashboardHandler } from './dashboard/index.js';
export { createDashboard } from './dashboard/index.js';
export { openDecision, toDecision } from './decision.js';
export { MAX_WINDOW_MS } from './duration.js';
export { configError, describeValue } from './errors.js';
export type { Evaluation } from './evaluate.js';
export {
  ALLOWED,
  applyBanned,
  banStates,
  COUNTED,
  DENIED,
  evaluate,
  peekOutcomes,
  refundStates,
  settleStates,
  takeSlot,
  unbanStates,
} from './evaluate.js';
export {
  channels,
  DECISION_RESULTS,
  decisionResult,
  publishBan,
  publishDecision,
  publishStoreCall,
  publishStoreError,
  publishStoreRecovered,
} from './events.js';
export type {
  Answer,
  Closable,
  EncodedBody,
  IpRange,
  KeyHelpers,
  NodeRequestLike,
  NodeResponse,
  NodeResponseLike,
  RateLimitConfig,
  RefundOptions as HttpRefundOptions,
} from './http/index.js';
export {
  accessDeniedProblem,
  ceilSeconds,
  completeOnClose,
  decisionHeaders,
  encodeBody,
  firstOverlap,
  HEADER_MODES,
  hold,
  ipBucket,
  isPrivateAddress,
  keyHelpers,
  limiterStatus,
  parseAddress,
  parseRange,
  quotaExceededProblem,
  RangeSet,
  readAddress,
  resolveHeaderModes,
  resolveOptions,
  retryAfterSeconds,
  statusHandler,
  storeUnavailableProblem,
  windowSeconds,
  writeHeaders,
} from './http/index.js';
export * from './index.js';
export { keyDigest } from './key-digest.js';
export {
  ALGORITHMS,
  capacityOf,
  DEFAULT_ALGORITHM,
  resolveNamespace,
  resolvePolicy,
  resolvePolicySet,
} from './policy.js';
export type { Grain, UsageReportAnswer, UsageReporter } from './usage/index.js';
export {
  BATCH_MEMORY_MS,
  bucketName,
  FIELDS as USAGE_FIELDS,
  GRAINS,
  isUsageRecorder,
  OTHER,
  PERIODS,
  UNMATCHED,
  USAGE_ADD_LUA,
  USAGE_READ_LUA,
  USAGE_RESULTS,
  UsageRecorder,
  usageLabel,
  usageReporter,
  worseResult,
} from './usage/index.js';
export { Warner } from './warnings.js';
