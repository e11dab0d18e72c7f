/**
 * What the limiter tells observers, on `node:diagnostics_channel` (issue 14): one channel per kind of
 * event, published only while someone subscribes, so a limiter nobody watches pays one
 * `hasSubscribers` read per call and builds no message. Channels are global by name, so a
 * subscriber sees every copy of `@tollgate/core` loaded in the process (ESM and CommonJS alike).
 */
import { channel } from 'node:diagnostics_channel';
import type { StoreErrorScope } from './errors.js';
import type { Decision } from './types.js';

/** Channel of every decision a limiter makes (`consume`/`decide`; `peek` makes none): a {@link DecisionMessage}. */
export const DECISION_CHANNEL = 'tollgate:decision';
/** Channel of every failed store call the limiter absorbed (`consume`, `peek`): a {@link StoreErrorMessage}. */
export const STORE_ERROR_CHANNEL = 'tollgate:store-error';
/** Channel of a failing store that answers again (no part of it failing any more): a {@link StoreRecoveredMessage}. */
export const STORE_RECOVERED_CHANNEL = 'tollgate:store-recovered';
/** Channel of bans given and lifted: a {@link BanMessage}. */
export const BAN_CHANNEL = 'tollgate:ban';
/** Channel of every call to a limiter's store, timed: a {@link StoreCallMessage}. */
export const STORE_CALL_CHANNEL = 'tollgate:store-call';

/**
 * What a decision amounted to, one word per outcome a dashboard counts: `banned` (reason
 * `'banned'`), `store_error` (no store answered; reason `'store-error'`, allowed or 503 as
 * `onStoreError` says), `fallback` (the fallback store decided, allowed or not), `limited` (denied),
 * `shadow_limited` (allowed, but a shadow policy would have denied), else `allowed`.
 */
export type DecisionResult = 'allowed' | 'limited' | 'shadow_limited' | 'banned' | 'store_error' | 'fallback';

/** Every `DecisionResult`, in the order of the definition above (metrics and the dashboard keep counts in it). */
export const DECISION_RESULTS: readonly DecisionResult[] = Object.freeze([
  'allowed',
  'limited',
  'shadow_limited',
  'banned',
  'store_error',
  'fallback',
]);

/** Published on `tollgate:decision` for each decision. */
export interface DecisionMessage {
  /** The limiter's `name`. */
  limiter: string;
  /** The key the request was counted under (a user's id or address: never put it in a metric label). */
  key: string;
  /** The decision itself, as the caller received it: read it, do not change it. */
  decision: Decision;
  result: DecisionResult;
  /** Units the request cost. */
  cost: number;
}

/** Published on `tollgate:store-error` for each failed store call the limiter answered without the store. */
export interface StoreErrorMessage {
  limiter: string;
  /** A `StoreError` (its `cause` is what the store threw). */
  error: Error;
  /** What failed: the whole store, one shard (a Redis Cluster master), or one key's value. */
  scope: StoreErrorScope;
}

/** Published on `tollgate:store-recovered` when a failing store answers again. */
export interface StoreRecoveredMessage {
  limiter: string;
  /** How long the store had been failing, in ms (from its first failure to this answer). */
  downMs: number;
}

/** Published on `tollgate:ban` when a key is banned or unbanned. */
export interface BanMessage {
  limiter: string;
  key: string;
  action: 'ban' | 'unban';
  /** The ban's length in ms (0 for an unban). */
  durationMs: number;
  /** When the ban ends, in the store's time (ms). */
  until: number;
  /** Which ban of this key this is (1 for the first; escalation grows with it). */
  offence: number;
  /** Given or lifted by `limiter.ban()` / `limiter.unban()` rather than by the `ban` option. */
  manual: boolean;
}

/** Published on `tollgate:store-call` after each call to the limiter's store (not the fallback's). */
export interface StoreCallMessage {
  limiter: string;
  operation: 'consume' | 'peek' | 'refund' | 'settle' | 'reset' | 'ban' | 'unban';
  /** Wall time of the call in ms (`performance.now()`), fractional. */
  durationMs: number;
  /** False when the call threw or rejected. */
  ok: boolean;
}

/** The channel objects, created once: `hasSubscribers` is read on them per call. */
export const channels = {
  decision: channel(DECISION_CHANNEL),
  storeError: channel(STORE_ERROR_CHANNEL),
  storeRecovered: channel(STORE_RECOVERED_CHANNEL),
  ban: channel(BAN_CHANNEL),
  storeCall: channel(STORE_CALL_CHANNEL),
};

/** The reasons and fields other capabilities add to a Decision, read here without depending on them. */
interface ExtendedDecision {
  readonly reason?: string | undefined;
  readonly shadowLimited?: readonly string[] | undefined;
}

/** Classifies a decision for `DecisionMessage.result` (and the `tollgate.result` metric attribute). */
export function decisionResult(decision: Decision): DecisionResult {
  const { reason, shadowLimited } = decision as ExtendedDecision;
  if (reason === 'banned') return 'banned';
  if (reason === 'store-error') return 'store_error';
  if (reason === 'fallback') return 'fallback';
  if (!decision.allowed) return 'limited';
  if (shadowLimited !== undefined && shadowLimited.length > 0) return 'shadow_limited';
  return 'allowed';
}

/** Publishes a decision; the caller has checked `channels.decision.hasSubscribers`. */
export function publishDecision(limiter: string, key: string, decision: Decision, cost: number): void {
  const message: DecisionMessage = { limiter, key, decision, result: decisionResult(decision), cost };
  channels.decision.publish(message);
}

/** Publishes a failed store call, if anyone listens. */
export function publishStoreError(limiter: string, error: Error, scope: StoreErrorScope): void {
  if (!channels.storeError.hasSubscribers) return;
  const message: StoreErrorMessage = { limiter, error, scope };
  channels.storeError.publish(message);
}

/** Publishes a recovery, if anyone listens. */
export function publishStoreRecovered(limiter: string, downMs: number): void {
  if (!channels.storeRecovered.hasSubscribers) return;
  const message: StoreRecoveredMessage = { limiter, downMs };
  channels.storeRecovered.publish(message);
}

/** Publishes a ban or an unban, if anyone listens. */
export function publishBan(message: BanMessage): void {
  if (channels.ban.hasSubscribers) channels.ban.publish(message);
}

/** Publishes a timed store call; the caller has checked `channels.storeCall.hasSubscribers` before timing it. */
export function publishStoreCall(
  limiter: string,
  operation: StoreCallMessage['operation'],
  startedAt: number,
  ok: boolean,
): void {
  const message: StoreCallMessage = { limiter, operation, durationMs: performance.now() - startedAt, ok };
  channels.storeCall.publish(message);
}
