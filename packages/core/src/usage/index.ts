export { BATCH_MEMORY_MS, USAGE_ADD_LUA, USAGE_READ_LUA } from './lua.js';
export { MemoryUsageStore } from './memory-usage-store.js';
export type {
  Grain,
  UsageAddContext,
  UsageEntry,
  UsagePeriod,
  UsageResult,
  UsageStore,
} from './model.js';
export {
  bucketName,
  FIELDS,
  GRAINS,
  OTHER,
  PERIODS,
  UNMATCHED,
  USAGE_RESULTS,
  usageLabel,
  worseResult,
} from './model.js';
export type { RouteUsage, TenantUsage, UsageCounts, UsageReport } from './report.js';
export type {
  UsageReportAnswer,
  UsageReporter,
  UsageReportOptions,
} from './report-handler.js';
export { usageReporter } from './report-handler.js';
export type { Usage, UsageEvent, UsageFunctions, UsageOptions, UsageQuery } from './usage.js';
export { createUsage, isUsageRecorder, UsageRecorder } from './usage.js';
