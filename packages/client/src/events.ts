import { channel } from 'node:diagnostics_channel';

// Events on node:diagnostics_channel, as the server side publishes `tollgate:decision`: free when
// nobody subscribes. Every message names the budget (`origin`, and `credential`, a hash).

/** A call waits for its turn: `waitMs` is how long the budget expects it to wait. */
export const queuedChannel = channel('tollgate:client:queued');
/** A call (or a retry of it) is sent: `attempt` counts from 0. */
export const sentChannel = channel('tollgate:client:sent');
/** An answer said the quota is out or the server is overloaded (`status`, `retryAfterMs`). */
export const limitedChannel = channel('tollgate:client:limited');
/** A call will be retried after `delayMs` (`reason`: the status, or `network`). */
export const retriedChannel = channel('tollgate:client:retried');

/** An origin's circuit breaker changed `state`: 'open', 'half-open' or 'closed'. */
export const breakerChannel = channel('tollgate:client:breaker');

export interface BudgetEvent {
  origin: string;
  credential: string | undefined;
}
