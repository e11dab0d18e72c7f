/**
 * @tollgate/client against the hand-configured queues Node users reach for (bottleneck, p-queue):
 *   pnpm bench:client [--rounds 3] [--windows 4] [--overhead-ms 300]
 *
 * 1. Quota use against a tollgate server on 127.0.0.1 (Express, 20 per 2 s, fixed window and
 *    token bucket, draft-7 headers), eight callers in a loop for `--windows` windows: the share of
 *    the quota used after the first window, and the share of calls answered 429. `pace(fetch)` is
 *    given nothing; bottleneck and p-queue are given the server's numbers by hand (reservoir 20
 *    refilled every 2 s; intervalCap 20 per 2 s), as their users must. Plain `fetch` shows what no
 *    pacing costs. Subjects take turns, round by round.
 * 2. Overhead per call: each wraps, with no limit given, a fetch that answers at once and runs
 *    calls back to back; rounds interleave; the median calls/s and the ratio to pace().
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { pace } from '@tollgate/client';
import type { RateAlgorithm } from '@tollgate/core';
import { rateLimit } from '@tollgate/express';
import Bottleneck from 'bottleneck';
import express from 'express';
import PQueue from 'p-queue';
import { formatRate, formatRatio, median, percent } from './lib/stats.ts';
import { table } from './lib/table.ts';

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    windows: { type: 'string', default: '4' },
    'overhead-ms': { type: 'string', default: '300' },
  },
});
const ROUNDS = Number(flags.rounds);
const WINDOWS = Number(flags.windows);
const OVERHEAD_MS = Number(flags['overhead-ms']);
const LIMIT = 20;
const WINDOW = 2000;
const CALLERS = 8;

type Call = (url: string) => Promise<Response>;
interface Subject {
  name: string;
  /** A fresh caller for one run (its own budget, queue or reservoir), given the server's numbers. */
  make(fetch: Call): Call;
  /** The same without a limit: what the wrapper itself costs per call. */
  free(fetch: Call): Call;
}

const SUBJECTS: Subject[] = [
  {
    name: '@tollgate/client pace()',
    make: (f) => pace((input) => f(String(input)), { retry: false }),
    free: (f) => pace((input) => f(String(input)), { retry: false }),
  },
  {
    name: 'bottleneck',
    make: (f) => {
      const limiter = new Bottleneck({
        reservoir: LIMIT,
        reservoirRefreshAmount: LIMIT,
        reservoirRefreshInterval: WINDOW,
        maxConcurrent: CALLERS,
      });
      return (url) => limiter.schedule(() => f(url));
    },
    free: (f) => {
      const limiter = new Bottleneck({ maxConcurrent: CALLERS });
      return (url) => limiter.schedule(() => f(url));
    },
  },
  {
    name: 'p-queue',
    make: (f) => {
      const queue = new PQueue({ concurrency: CALLERS, intervalCap: LIMIT, interval: WINDOW });
      return (url) => queue.add(() => f(url)) as Promise<Response>;
    },
    free: (f) => {
      const queue = new PQueue({ concurrency: CALLERS });
      return (url) => queue.add(() => f(url)) as Promise<Response>;
    },
  },
  { name: 'fetch (no pacing)', make: (f) => f, free: (f) => f },
];

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`),
    );
  });
}

/** One run: a fresh tollgate server, eight callers for WINDOWS windows. */
async function quotaRun(
  subject: Subject,
  algorithm: RateAlgorithm,
): Promise<{ used: number; limited: number }> {
  const statuses: number[] = [];
  const allowedAt: number[] = [];
  const app = express();
  app.use((_req, res, next) => {
    res.on('finish', () => {
      statuses.push(res.statusCode);
      if (res.statusCode < 400) allowedAt.push(Date.now());
    });
    next();
  });
  app.use(rateLimit({ policies: { limit: LIMIT, window: WINDOW, algorithm }, headers: 'draft-7' }));
  app.get('/', (_req, res) => {
    res.json({ ok: true });
  });
  const server = createServer(app);
  const url = await listen(server);
  try {
    const call = subject.make((u) => fetch(u));
    const start = Date.now();
    const end = start + WINDOWS * WINDOW;
    const caller = async () => {
      while (Date.now() < end) {
        const response = await call(url).catch(() => undefined);
        await response?.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: CALLERS }, caller));
    const allowed = allowedAt.filter((t) => t >= start + WINDOW && t < end).length;
    return {
      used: allowed / (LIMIT * (WINDOWS - 1)),
      limited: statuses.filter((s) => s === 429).length / Math.max(1, statuses.length),
    };
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** Calls per second through `subject` over a fetch that answers at once. */
async function overheadRun(subject: Subject): Promise<number> {
  const instant: Call = async () => new Response(null, { status: 204 });
  const call = subject.free(instant);
  let n = 0;
  const until = performance.now() + OVERHEAD_MS;
  const started = performance.now();
  while (performance.now() < until) {
    for (let i = 0; i < 100; i++) await call('http://127.0.0.1:1/');
    n += 100;
  }
  return n / ((performance.now() - started) / 1000);
}

const rotate = <T>(items: readonly T[], by: number): T[] =>
  items.map((_, i) => items[(i + by) % items.length]!);
const log = (line = '') => console.log(line);

log(`bench:client: ${ROUNDS} rounds, ${WINDOWS} windows of ${WINDOW} ms, ${CALLERS} callers, limit ${LIMIT}`);
for (const algorithm of ['fixed-window', 'token-bucket'] as RateAlgorithm[]) {
  const used = new Map<string, number[]>();
  const limited = new Map<string, number[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const subject of rotate(SUBJECTS, round)) {
      const result = await quotaRun(subject, algorithm);
      (used.get(subject.name) ?? used.set(subject.name, []).get(subject.name)!).push(result.used);
      (limited.get(subject.name) ?? limited.set(subject.name, []).get(subject.name)!).push(result.limited);
    }
  }
  log();
  log(
    `Quota use against tollgate (${algorithm}, ${LIMIT} per ${WINDOW / 1000} s; bottleneck and p-queue given those numbers by hand), median of ${ROUNDS} runs:`,
  );
  log(
    table(
      ['subject', 'quota used after window 1', 'min-max', 'calls answered 429'],
      SUBJECTS.map((s) => {
        const u = used.get(s.name)!;
        return [
          s.name,
          percent(median(u)),
          `${percent(Math.min(...u))}-${percent(Math.max(...u))}`,
          percent(median(limited.get(s.name)!)),
        ];
      }),
    ),
  );
}

const rates = new Map<string, number[]>(SUBJECTS.map((s) => [s.name, []]));
for (const subject of SUBJECTS) await overheadRun(subject); // warm-up
for (let round = 0; round < Math.max(5, ROUNDS); round++) {
  for (const subject of rotate(SUBJECTS, round)) rates.get(subject.name)!.push(await overheadRun(subject));
}
const paceRates = rates.get(SUBJECTS[0]!.name)!;
log();
log(
  `Overhead per call (no limit given; a fetch that answers at once, calls back to back), median of ${paceRates.length} rounds:`,
);
log(
  table(
    ['subject', 'calls/s', 'pace() / subject (per round)'],
    SUBJECTS.map((s) => {
      const r = rates.get(s.name)!;
      return [s.name, formatRate(median(r)), formatRatio(median(paceRates.map((p, i) => p / r[i]!)))];
    }),
  ),
);
