// A fleet of pace() instances (one per "process") sharing one MemoryStore, against a simulated
// server that writes legacy `X-RateLimit-*` headers, on vitest's fake timers: the two cold
// reviews of the client's fleet pacing (packages/client/src/fleet-*-review.test.ts) drive it.
import { pace } from '@tollgate/client';
import { MemoryStore } from '@tollgate/core';
import { vi } from 'vitest';

/** One answer of the simulated server at `now` (epoch ms on the fake clock). */
export interface LegacyAnswer {
  status: number;
  remaining: number;
  /** Epoch ms the whole quota is back. */
  reset: number;
  /** For a 429: ms until a call fits (default: until the reset). */
  retryMs?: number;
}

export interface LegacyFleetOptions {
  /** The stated limit (`X-RateLimit-Limit`). */
  limit: number;
  /** Processes, and callers (loops) in each (default 2). */
  n: number;
  callers?: number;
  /** The fake clock's start, and how long the callers loop. */
  from: number;
  ms: number;
  /** Answers counted from this many ms on (default 0). */
  countFrom?: number;
  /** How long the calls still queued after `ms` may run (default 5 s). */
  tailMs?: number;
  /** `false`: each process paces alone (no `shareLearned`). */
  share?: boolean;
  store?: MemoryStore;
}

/**
 * Runs the fleet against `server`; returns the 429s and 200s answered from `countFrom` on, every
 * call sent, and each process's kind of quota at the end. Leaves the fake timers on (the caller's
 * `afterEach` restores the real ones).
 */
export async function legacyFleet(
  server: (now: number) => LegacyAnswer,
  o: LegacyFleetOptions,
): Promise<{ limited: number; ok: number; sent: number; kinds: string[] }> {
  vi.useFakeTimers({
    now: o.from,
    toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'],
  });
  const store = o.store ?? new MemoryStore({ clock: () => Date.now() });
  let limited = 0;
  let ok = 0;
  let sent = 0;
  const countFrom = o.from + (o.countFrom ?? 0);
  const fetchLike = async () => {
    await new Promise((resolve) => setTimeout(resolve, 2));
    const now = Date.now();
    const answer = server(now);
    sent += 1;
    if (now >= countFrom) {
      if (answer.status === 429) limited += 1;
      else if (answer.status === 200) ok += 1;
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
    const retryMs = answer.retryMs ?? answer.reset - now;
    return new Response('{}', {
      status: answer.status,
      headers: {
        Date: new Date(now).toUTCString(),
        'X-RateLimit-Limit': String(o.limit),
        'X-RateLimit-Remaining': String(answer.remaining),
        'X-RateLimit-Reset': String(Math.ceil(answer.reset / 1000)),
        ...(answer.status === 429 ? { 'Retry-After': String(Math.max(1, Math.ceil(retryMs / 1000))) } : {}),
      },
    });
  };
  const apis = Array.from({ length: o.n }, () =>
    pace(fetchLike, {
      retry: false,
      random: () => 0.5,
      ...(o.share === false ? {} : { store, shareLearned: true }),
    }),
  );
  let stop = false;
  for (const api of apis) {
    for (let i = 0; i < (o.callers ?? 2); i++) {
      void (async () => {
        while (!stop) await (await api('http://legacy.test/')).text();
      })();
    }
  }
  await vi.advanceTimersByTimeAsync(o.ms);
  stop = true;
  await vi.advanceTimersByTimeAsync(o.tailMs ?? 5000);
  const kinds = apis.map((api) => api.snapshot().budgets[0]?.quotas[0]?.kind ?? '-');
  store.close();
  return { limited, ok, sent, kinds };
}

/**
 * tollgate's fixed window of `L` per `W` ms (a window opens at the key's first request and lasts W). `restartAt`:
 * the server loses its state then (a restart, a MemoryStore behind a deploy). `failEvery`: every
 * n-th allowed call fails (500) and is refunded (`refund.onFailure`, express-rate-limit's
 * `skipFailedRequests`), the headers written before the refund as tollgate does.
 */
export function tollgateFixedWindow(
  L: number,
  W: number,
  o: { restartAt?: number; failEvery?: number } = {},
): (now: number) => LegacyAnswer {
  let start = Number.NEGATIVE_INFINITY;
  let count = 0;
  let restarted = false;
  let allowedCalls = 0;
  return (now: number): LegacyAnswer => {
    if (o.restartAt !== undefined && !restarted && now >= o.restartAt) {
      restarted = true;
      start = Number.NEGATIVE_INFINITY;
      count = 0;
    }
    if (now >= start + W) {
      start = now;
      count = 0;
    }
    if (count >= L) return { status: 429, remaining: 0, reset: start + W };
    count += 1;
    allowedCalls += 1;
    const answer = { status: 200, remaining: L - count, reset: start + W };
    if (o.failEvery !== undefined && allowedCalls % o.failEvery === 0) {
      count -= 1;
      return { ...answer, status: 500 };
    }
    return answer;
  };
}
