import { decisionResult } from '../events.js';
import type { Decision, Logger } from '../types.js';
import { UNMATCHED, type UsageResult, worseResult } from '../usage/model.js';
import type { UsageRecorder } from '../usage/usage.js';
import { WARNINGS } from '../warnings.js';
import type { HttpResult } from './rate-limit.js';
import type { RequestView } from './request-view.js';

/** One request's record in one usage, shared by the limiters that count it. */
interface Slot {
  readonly tenant: string;
  /** When the first limiter decided: the request's minute, however long its response takes. */
  readonly at: number;
  result: UsageResult;
  recorded: boolean;
}

/**
 * Arms `result` to record the request in `usage` once its response has closed (the route is
 * known then), in the minute the limiter decided it. The first limiter of a request with this usage arms it; later ones only make its
 * result more severe (a request a second limiter denied is recorded as limited, once).
 */
export function recordOnClose<Req>(
  usage: UsageRecorder<Req>,
  result: HttpResult,
  view: RequestView,
  req: Req,
  decision: Decision,
  logger: Logger,
): HttpResult {
  const marked = req as unknown as Record<symbol, Slot | undefined>;
  const outcome = decisionResult(decision);
  const slot = marked[usage.mark];
  if (slot !== undefined) {
    slot.result = worseResult(slot.result, outcome);
    return result;
  }
  const own: Slot = {
    tenant: tenantOf(usage, req, decision.key, logger),
    at: usage.now(),
    result: outcome,
    recorded: false,
  };
  marked[usage.mark] = own;
  const refund = result.complete;
  result.complete = (status, ending, response) => {
    refund?.(status, ending, response);
    if (own.recorded) return;
    own.recorded = true;
    const route = routeOf(usage, req, view, logger);
    if (
      route === UNMATCHED &&
      (own.result === 'limited' || own.result === 'banned') &&
      usage.options.route === undefined
    ) {
      usage.warner.warn(
        WARNINGS.USAGE_UNROUTED_DENIAL,
        `Usage: a denied request (${view.method} ${view.path}) matched no route, because the limiter runs before routing: its denials are all recorded as '(unmatched)'. Mount the limiter on the routes (app.get(path, limiter, handler)), or give createUsage({ route }).`,
      );
    }
    usage.recordChecked(own.tenant, route, own.result, own.at);
  };
  return result;
}

/** The usage's `tenant(req, key)`, or the key; a failing or empty answer falls back to the key. */
function tenantOf<Req>(usage: UsageRecorder<Req>, req: Req, key: string, logger: Logger): string {
  const { tenant } = usage.options;
  if (tenant === undefined) return key;
  try {
    const found = tenant(req, key);
    if (typeof found === 'string' && found !== '') return found;
    if (found !== undefined && found !== '') {
      logger.error(
        `[tollgate] usage: \`tenant\` returned ${typeof found}, not a string; recorded under the key.`,
      );
    }
  } catch (error) {
    logger.error(`[tollgate] usage: \`tenant\` threw (recorded under the key): ${describe(error)}`);
  }
  return key;
}

/** The usage's `route(req)`, or the method and the framework's route template, or `(unmatched)`. */
function routeOf<Req>(usage: UsageRecorder<Req>, req: Req, view: RequestView, logger: Logger): string {
  const { route } = usage.options;
  if (route !== undefined) {
    try {
      const found = route(req);
      if (typeof found === 'string' && found !== '') return found;
    } catch (error) {
      logger.error(`[tollgate] usage: \`route\` threw (the framework's route is used): ${describe(error)}`);
    }
  }
  const template = view.route?.();
  return template === undefined ? UNMATCHED : `${view.method} ${template}`;
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error));
