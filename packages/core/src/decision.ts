import { capacityOf } from './policy.js';
import type {
  Decision,
  DecisionReason,
  Outcome,
  PolicySet,
  PolicyStatus,
  ResolvedCalendar,
  ResolvedPolicy,
} from './types.js';

/**
 * Turns per-policy outcomes into a Decision, choosing the binding policy among the enforced ones:
 * a shadow policy only reports (`shadowLimited`), so the decision is what the enforced policies
 * alone would give. With shadow policies only, the request is allowed and the one with least
 * remaining stands as the binding policy.
 */
export function toDecision(
  key: string,
  set: PolicySet,
  outcomes: readonly Outcome[],
  reason?: DecisionReason,
): Decision {
  const { policies } = set;
  if (policies.length === 1 && reason === undefined && policies[0]!.mode === 'enforce') {
    return single(key, policies[0]!, outcomes[0]!);
  }
  const statuses: PolicyStatus[] = new Array(policies.length);
  let allowed = true;
  let binding = -1;
  let delayMs = 0;
  let shadowLimited: string[] | undefined;
  for (let i = 0; i < policies.length; i++) {
    const policy = policies[i]!;
    const o = outcomes[i]!;
    statuses[i] = {
      name: policy.name,
      limit: capacityOf(policy),
      policy,
      allowed: o.allowed,
      remaining: o.remaining,
      resetMs: o.resetMs,
      retryAfterMs: o.retryAfterMs,
      delayMs: o.delayMs,
      windowMs: o.windowMs,
    };
    if (policy.mode === 'shadow') {
      if (!o.allowed) {
        if (shadowLimited === undefined) shadowLimited = [policy.name];
        else shadowLimited.push(policy.name);
      }
      continue;
    }
    if (o.delayMs > delayMs) delayMs = o.delayMs;
    if (!o.allowed) {
      // The denial that lasts longest binds; between equal waits, the one with less left.
      const b = outcomes[binding]!;
      if (
        allowed ||
        o.retryAfterMs > b.retryAfterMs ||
        (o.retryAfterMs === b.retryAfterMs && o.remaining < b.remaining)
      ) {
        binding = i;
      }
      allowed = false;
    } else if (allowed && (binding === -1 || o.remaining < outcomes[binding]!.remaining)) {
      binding = i;
    }
  }
  if (binding === -1) binding = leastRemaining(outcomes);
  const b = statuses[binding]!;
  const decision: Decision = {
    allowed,
    key,
    limit: b.limit,
    remaining: b.remaining,
    resetMs: b.resetMs,
    retryAfterMs: allowed ? 0 : b.retryAfterMs,
    delayMs: allowed ? delayMs : 0,
    policy: b.policy,
    policies: statuses,
  };
  if (reason !== undefined) decision.reason = reason;
  if (shadowLimited !== undefined) decision.shadowLimited = shadowLimited;
  return decision;
}

/** Every policy is a shadow one: the one with least remaining (the first of equals). */
function leastRemaining(outcomes: readonly Outcome[]): number {
  let least = 0;
  for (let i = 1; i < outcomes.length; i++) {
    if (outcomes[i]!.remaining < outcomes[least]!.remaining) least = i;
  }
  return least;
}

/** A decision that lets the request through without a store (fail-open, skipped). */
export function openDecision(key: string, set: PolicySet, reason: DecisionReason): Decision {
  return toDecision(
    key,
    set,
    set.policies.map((p) => ({
      allowed: true,
      remaining: capacityOf(p),
      resetMs: 0,
      retryAfterMs: 0,
      delayMs: 0,
      // No store told the period: this machine's clock does.
      windowMs: p.calendar === undefined ? undefined : periodLength(p.calendar, Date.now()),
    })),
    reason,
  );
}

/** The common case, one policy, without the loop: this runs on every request. */
function single(key: string, policy: ResolvedPolicy, o: Outcome): Decision {
  const limit = capacityOf(policy);
  return {
    allowed: o.allowed,
    key,
    limit,
    remaining: o.remaining,
    resetMs: o.resetMs,
    retryAfterMs: o.retryAfterMs,
    delayMs: o.delayMs,
    policy,
    policies: [
      {
        name: policy.name,
        limit,
        policy,
        allowed: o.allowed,
        remaining: o.remaining,
        resetMs: o.resetMs,
        retryAfterMs: o.retryAfterMs,
        delayMs: o.delayMs,
        windowMs: o.windowMs,
      },
    ],
  };
}

/** The length of the calendar period in force at `at`, in ms. */
export function periodLength(calendar: ResolvedCalendar, at: number): number {
  const { start, end } = calendar.periodAt(at);
  return end - start;
}
