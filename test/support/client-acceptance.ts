// What the two halves of issue 15's pacing acceptance share (test/client-acceptance.test.ts, one
// client; test/client-acceptance-fleet.test.ts, four processes): the servers' policy, the cases,
// and how a run is measured.
import type { HeaderMode, RateAlgorithm } from '@tollgate/core';
import type { Running } from './client-servers.js';

export const LIMIT = 20;
export const WINDOW = 2000;
/** Windows a run lasts; the first is not measured (the client learns the quota in it). */
export const WINDOWS = 4;
export const ALGORITHMS: RateAlgorithm[] = ['fixed-window', 'sliding-window', 'token-bucket', 'leaky-bucket'];
export const MODES: HeaderMode[] = ['draft-6', 'draft-7', 'draft-8', 'legacy'];

/** A run from `start`: the share of the quota used after the first window, and the 429s of it all. */
export function measure(server: Running, start: number): { used: number; limited: number; calls: number } {
  const end = start + WINDOWS * WINDOW;
  const allowed = server.allowedAt.filter((t) => t >= start + WINDOW && t < end).length;
  return {
    used: allowed / (LIMIT * (WINDOWS - 1)),
    limited: server.statuses.filter((s) => s === 429).length,
    calls: server.statuses.length,
  };
}
