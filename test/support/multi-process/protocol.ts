/**
 * Messages between a test (the parent) and the consumer processes it forks (consumer.ts), sent over
 * the Node IPC channel. A run is two-phase so that the children's traffic overlaps: every child
 * first prepares (connects, builds its limiter) and says `ready`; only then does the parent send
 * `go` to all of them at once.
 */
import type { DecisionReason, Policy } from '@tollgate/core';

export interface StandaloneTarget {
  kind: 'standalone';
  port: number;
}

export interface ClusterTarget {
  kind: 'cluster';
  nodes: { host: string; port: number }[];
}

export type Target = StandaloneTarget | ClusterTarget;

export interface RunSpec {
  /** Where the child's own ioredis connection goes (one connection per target, reused across runs). */
  target: Target;
  /** RedisStore `prefix`. */
  prefix: string;
  /** The one limiter key every request uses. */
  key: string;
  policies: Policy | Policy[];
  /** Consumes this child fires at once on `go`. */
  requests: number;
  /** RedisStore `timeoutMs`. @default the store's default */
  timeoutMs?: number;
  /**
   * Once the requests have left for Redis, keep the event loop blocked this long (as a server
   * handling a burst does), so that the replies wait unread in the socket while the timeouts come
   * due. @default 0
   */
  busyMs?: number;
  /** Instead of `requests` consumes: reservations with random estimates, settled or released. */
  reservations?: ReservationSpec;
}

/** Reservations a child makes at once on `go` (issue 12), its randomness seeded per child. */
export interface ReservationSpec {
  count: number;
  seed: number;
  /** Estimates are 1 .. this. */
  maxEstimate: number;
  /** Actuals are 0 .. this. */
  maxActual: number;
  /** The share released instead of settled (the call did not happen). */
  releaseShare: number;
  /** Each is settled or released after a random wait of 0 .. this many ms. */
  maxWaitMs: number;
}

/** What became of one reservation. */
export interface ReservationRecord {
  estimate: number;
  /** The actual it was settled with; null when released. */
  actual: number | null;
  /** Its decision counted the estimate (allowed, from the store). */
  counted: boolean;
  /** Per policy, the units of the settle left uncharged (maxDebt). */
  uncharged: number[];
}

export type ParentMessage =
  | ({ type: 'prepare'; run: number } & RunSpec)
  | { type: 'go'; run: number }
  | { type: 'exit' };

export interface RunResult {
  allowed: number;
  denied: number;
  /** Decisions that carried a `reason`, counted by reason. */
  reasons: Partial<Record<DecisionReason, number>>;
  /** Rejected consume() calls (there should be none: the limiter answers store failures itself). */
  errors: string[];
  /** What the limiter logged (store errors are logged once as a warning). */
  logged: string[];
  /** Date.now() in the child when `go` arrived: shows the clock the child's app code sees. */
  childNow: number;
  /** With `reservations`: what became of each. */
  reservations?: ReservationRecord[];
}

export type ChildMessage =
  | {
      type: 'hello';
      pid: number;
      /** Date.now() in the child at start-up. */
      now: number;
      /** What `@tollgate/core` and `@tollgate/redis` resolved to in the child. */
      resolved: { core: string; redis: string };
    }
  | { type: 'ready'; run: number }
  | ({ type: 'done'; run: number } & RunResult)
  | { type: 'failed'; run: number; error: string };
