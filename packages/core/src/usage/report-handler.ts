import { checkFunction, checkOptions } from '../check-options.js';
import { configError } from '../errors.js';
import { PERIODS, type UsagePeriod } from './model.js';
import { isUsageRecorder, type Usage } from './usage.js';

/** Options of the `usageReport()` handlers. */
export interface UsageReportOptions<Req> {
  /** The usage to report, the one given to `rateLimit({ usage })`. */
  usage: Usage<Req>;
  /**
   * The caller's own tenant. By default, the tenant usage records this request under: mount the
   * handler after the rate limiter, whose key (`req.rateLimit.key`, `ctx.state.rateLimit.key`)
   * goes through the usage's `tenant` function. A request with no tenant gets 403.
   * @default the tenant the limiter's key maps to
   */
  tenant?: (req: Req) => string | undefined | Promise<string | undefined>;
  /**
   * Whether the caller may read any tenant's usage (`?tenant=<tenant>`) and all tenants together
   * with a per-tenant list (`?tenant=*`). Without it, `?tenant=` answers 403: callers see their
   * own usage only.
   * @default nobody may
   * @example (req) => req.user?.role === 'admin'
   */
  admin?: (req: Req) => boolean | Promise<boolean>;
}

/** What a `usageReport()` handler answers: status, headers, JSON body. */
export interface UsageReportAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * The framework-free usage report: from the request, its query string and the key the limiter
 * counted it under (if it ran), the answer. `?period=hour|day|week|month` (default `day`),
 * `?tenant=` for admins (`*`: all tenants).
 */
export type UsageReporter<Req> = (
  req: Req,
  query: URLSearchParams,
  key: string | undefined,
) => Promise<UsageReportAnswer>;

/** Validates the options once and returns the reporter the adapters call per request. */
export function usageReporter<Req>(options: UsageReportOptions<Req>): UsageReporter<Req> {
  checkOptions(options, ['usage', 'tenant', 'admin'], '`usageReport()` options');
  const { usage, tenant, admin } = options;
  if (!isUsageRecorder(usage)) throw configError('usage', 'a usage made by `createUsage()`', usage);
  checkFunction(tenant, 'tenant');
  checkFunction(admin, 'admin');
  const own = usage.options.tenant;
  const callerTenant = async (req: Req, key: string | undefined): Promise<string | undefined> => {
    if (tenant !== undefined) return (await tenant(req)) || undefined;
    if (key === undefined) return undefined;
    return (own === undefined ? undefined : own(req, key)) || key;
  };
  return async function usageReport(req, query, key) {
    const period = query.get('period') ?? 'day';
    if (!(period in PERIODS)) {
      return problem(400, 'Bad period', `period must be hour, day, week or month; got '${period}'.`);
    }
    const asked = query.get('tenant');
    let subject: string | undefined;
    if (asked !== null) {
      if (admin === undefined || !(await admin(req))) {
        return problem(403, 'Forbidden', "Only admins may read another tenant's usage.");
      }
      subject = asked === '*' ? undefined : asked;
    } else {
      subject = await callerTenant(req, key);
      if (subject === undefined) {
        return problem(403, 'Forbidden', 'This request has no tenant to report usage for.');
      }
    }
    const report = await usage.report({ period: period as UsagePeriod, tenant: subject });
    return {
      status: 200,
      headers: { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' },
      body: JSON.stringify(report),
    };
  };
}

function problem(status: number, title: string, detail: string): UsageReportAnswer {
  return {
    status,
    headers: { 'Content-Type': 'application/problem+json; charset=utf-8', 'Cache-Control': 'no-store' },
    body: JSON.stringify({ type: 'about:blank', title, status, detail }),
  };
}
