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
