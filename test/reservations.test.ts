/**
 * Reserve, then settle (issue 12), on real Redis (standalone and the 3-master Cluster), with real
 * child processes:
 *
 * - 200 reservations at once from 4 processes, random estimates and actuals, settled or released
 *   after random waits: every policy's state ends holding exactly the sum of the actuals, less what
 *   each settle reported it could not charge (maxDebt); with a maxDebt that never binds, exactly the
 *   sum of the actuals;
 * - meanwhile, a poller reading the state and Redis TIME in one script never sees a policy more than
 *   its maxDebt over its limit;
 * - a key in debt is denied until the wait its decisions announce, then admitted (Redis time);
 * - a reservation dropped unsettled is reported (TOLLGATE_UNSETTLED) once it is collected.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createLimiter, type Policy, type PolicySet } from '@tollgate/core';
import { RedisStore } from '@tollgate/redis';
import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, test } from 'vitest';
import { type ConsumerPool, repoRoot, startConsumers } from './support/multi-process/pool.ts';
import type { ReservationRecord, RunResult, Target } from './support/multi-process/protocol.ts';
import { type Admin, TtlGuard } from './support/multi-process/redis-keys.ts';
import type { ClusterNode } from './support/redis-servers.ts';

const CHILDREN = 4;
const PER_CHILD = 50;
const quiet = { warn: () => undefined, error: () => undefined };

const guard = new TtlGuard();
let standalone: Redis;
let cluster: Cluster;
let clusterNodes: ClusterNode[];
let pool: ConsumerPool;

beforeAll(async () => {
  clusterNodes = inject('clusterNodes');
  standalone = new Redis({ host: '127.0.0.1', port: inject('redisPort'), lazyConnect: true });
  cluster = new Cluster(clusterNodes, { lazyConnect: true });
  await Promise.all([standalone.connect(), cluster.connect()]);
  pool = await startConsumers(CHILDREN);
}, 60_000);

afterAll(async () => {
  await pool?.close();
  await Promise.allSettled([standalone?.quit(), cluster?.quit()]);
});

afterEach(() => guard.verify());

const topologies = ['standalone', 'cluster'] as const;
const adminOf = (topology: (typeof topologies)[number]): Admin =>
  topology === 'standalone' ? standalone : cluster;
const targetOf = (topology: (typeof topologies)[number]): Target =>
  topology === 'standalone'
    ? { kind: 'standalone', port: inject('redisPort') }
    : { kind: 'cluster', nodes: clusterNodes };

/**
 * A tokens-per-hour quota three ways, with windows and a refill so long that nothing drains while
 * the test runs (the token bucket refills one unit a day), so every unit charged stays readable.
 */
const policies = (maxDebt: [number, number, number]): Policy[] => [
  { name: 'fixed', algorithm: 'fixed-window', limit: 3000, window: '1h', maxDebt: maxDebt[0] },
  { name: 'sliding', algorithm: 'sliding-window', limit: 4000, window: '1h', maxDebt: maxDebt[1] },
  { name: 'bucket', algorithm: 'token-bucket', limit: 1, window: '1d', burst: 5000, maxDebt: maxDebt[2] },
];

/** The state of every policy of `set` under `key`, and Redis's time, read in one script. */
async function readState(admin: Admin, redisKey: string): Promise<{ now: number; state: number[] | null }> {
  // A Cluster routes it by its key.
  const reply = (await admin.callBuffer(
    'EVAL',
    "local t = redis.call('TIME') return { redis.call('GET', KEYS[1]) or '', t[1], t[2] }",
    '1',
    redisKey,
  )) as [Buffer, Buffer, Buffer];
  const now = Number(reply[1].toString()) * 1000 + Math.floor(Number(reply[2].toString()) / 1000);
  const raw = reply[0];
  if (raw.length === 0) return { now, state: null };
  const state: number[] = [];
  for (let at = 0; at < raw.length; at += 8) state.push(raw.readDoubleLE(at));
  return { now, state };
}

/** Units each policy holds over its limit at `now` (negative: under), from the raw state. */
function debts(set: PolicySet, state: number[], now: number): number[] {
  const [fixed, sliding, bucket] = set.policies;
  // Three doubles per policy, in the set's order.
  const [f1, f2, , s1, s2, s3, b1] = state as number[] as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const W = sliding!.window;
  const start = now - (now % W);
  const [curr, prev] = s1 === start ? [s2, s3] : s1 === start - W ? [0, s2] : [0, 0];
  return [
    now < f1 + fixed!.window ? f2 - fixed!.limit : -fixed!.limit,
    (prev * (W - (now - start)) + curr * W) / W - sliding!.limit,
    // Stored tokens (x window) at their last update; the refill since only lowers the debt.
    -b1 / bucket!.window,
  ];
}

/** Every unit each policy holds: its whole count, or for the bucket what it took out of it. */
function charged(set: PolicySet, state: number[]): number[] {
  const bucket = set.policies[2]!;
  const [, f2, , , s2, s3, b1] = state as number[] as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  // The bucket refills one unit a day, i.e. less than one unit since the test began: round up.
  return [f2, s2 + s3, Math.ceil((bucket.burst * bucket.window - b1) / bucket.window)];
}

describe.each(topologies)('on %s Redis: 200 reservations from 4 processes at once', (topology) => {
  test.each([
    ['maxDebt binding now and then', [400, 1000, 600] as [number, number, number]],
    ['a maxDebt that never binds', [100_000, 100_000, 100_000] as [number, number, number]],
  ])('%s: the state holds exactly what was settled, never over maxDebt', async (_name, maxDebt) => {
    const admin = adminOf(topology);
    const prefix = guard.watch(admin);
    const key = 'tenant:acme';
    const spec = policies(maxDebt);
    const limiter = createLimiter({
      policies: spec,
      store: new RedisStore({ client: admin, prefix }),
      logger: quiet,
    });
    const set = limiter.resolve();
    const redisKey = new RedisStore({ client: admin, prefix }).keyFor(key, set);

    // The poller: as often as Redis answers, the state against the bound.
    let polling = true;
    let samples = 0;
    const worst = [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY];
    const poller = (async () => {
      while (polling) {
        const { now, state } = await readState(admin, redisKey);
        if (state === null) continue;
        samples++;
        debts(set, state, now).forEach((debt, i) => {
          worst[i] = Math.max(worst[i]!, debt);
        });
      }
    })();
    let results: RunResult[];
    try {
      results = await pool.run({
        target: targetOf(topology),
        prefix,
        key,
        policies: spec,
        requests: 0,
        timeoutMs: 10_000,
        reservations: {
          count: PER_CHILD,
          seed: Math.floor(Math.random() * 2 ** 31),
          maxEstimate: 60,
          maxActual: 150,
          releaseShare: 0.1,
          maxWaitMs: 250,
        },
      });
    } finally {
      polling = false;
      await poller;
    }

    const records: ReservationRecord[] = results.flatMap((r) => r.reservations ?? []);
    expect(records).toHaveLength(CHILDREN * PER_CHILD);
    expect(results.flatMap((r) => r.logged).filter((m) => !m.includes('TOLLGATE_DEBT_CAPPED'))).toEqual([]);
    const counted = records.filter((r) => r.counted);
    const settled = counted.filter((r) => r.actual !== null);
    // The traffic went both ways: denials, releases, settles above and below the estimate.
    expect(counted.length).toBeGreaterThan(20);
    expect(counted.length).toBeLessThan(records.length);
    expect(counted.length - settled.length).toBeGreaterThan(0);
    expect(settled.some((r) => r.actual! > r.estimate)).toBe(true);
    expect(settled.some((r) => r.actual! < r.estimate)).toBe(true);

    const actuals = settled.reduce((sum, r) => sum + r.actual!, 0);
    const uncharged = [0, 1, 2].map((i) => settled.reduce((sum, r) => sum + r.uncharged[i]!, 0));
    const { now, state } = await readState(admin, redisKey);
    expect(state).not.toBeNull();
    // Exact: every unit an actual brought is in the state, less what maxDebt kept out.
    expect(charged(set, state!)).toEqual(uncharged.map((u) => actuals - u));
    if (maxDebt[0] === 100_000) expect(uncharged).toEqual([0, 0, 0]);
    else expect(uncharged[0]).toBeGreaterThan(0);
    // Never more than maxDebt over the limit: in every sample the poller took, and at the end.
    expect(samples).toBeGreaterThan(5);
    const end = debts(set, state!, now);
    for (let i = 0; i < 3; i++) {
      expect(Math.max(worst[i]!, end[i]!)).toBeLessThanOrEqual(maxDebt[i]!);
    }
    // A key over its limit on any policy is denied.
    if (end.some((d) => d > 0)) expect((await limiter.peek(key)).allowed).toBe(false);
    console.log(
      `${topology}, maxDebt ${maxDebt.join('/')}: ${records.length} reservations, ${counted.length} counted, ` +
        `${settled.length} settled (sum of actuals ${actuals}), uncharged ${uncharged.join('/')}, ` +
        `state ${charged(set, state!).join('/')}, most over the limit ${worst.map((w) => Math.round(w)).join('/')} ` +
        `in ${samples} samples`,
    );
  });

  test('a key in debt is denied until the wait its decisions announce, then admitted (Redis time)', async () => {
    const admin = adminOf(topology);
    const prefix = guard.watch(admin);
    // 10 tokens a second: 25 over the limit take 2.6 s to drain for a cost of 1.
    const limiter = createLimiter({
      policies: { algorithm: 'token-bucket', limit: 10, window: '1s', maxDebt: 25 },
      store: new RedisStore({ client: admin, prefix }),
      blockedCache: false,
      logger: quiet,
    });
    const reservation = await limiter.reserve('k', { cost: 5 });
    expect(reservation.decision.allowed).toBe(true);
    const startedAt = performance.now();
    const owed = await reservation.settle(40);
    const settledAt = performance.now();
    // 35 more on the 5 tokens left (and what refilled since), but maxDebt stops it at 25 under zero:
    // 26 to refill for a cost of 1: 2.6 s, less what refilled between the two calls.
    expect(owed.policies[0]!.uncharged).toBeGreaterThan(0);
    expect(owed.allowed).toBe(false);
    expect(owed.retryAfterMs).toBeGreaterThan(2400);
    expect(owed.retryAfterMs).toBeLessThanOrEqual(2600);
    // Redis decided between startedAt and settledAt: the debt is paid off in that span, plus the wait.
    const earliest = startedAt + owed.retryAfterMs;
    const latest = settledAt + owed.retryAfterMs;
    for (const at of [500, 1500, 2000]) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, startedAt + at - performance.now())));
      const sent = performance.now();
      if (sent >= earliest - 5) continue; // a loop held up this long cannot judge this probe
      const denied = await limiter.consume('k');
      const answered = performance.now();
      expect(denied.allowed).toBe(false);
      // Every denial on the way announces the same moment: Redis decided between sent and answered.
      expect(sent + denied.retryAfterMs).toBeLessThanOrEqual(latest + 2);
      expect(answered + denied.retryAfterMs).toBeGreaterThanOrEqual(earliest - 2);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, latest + 5 - performance.now())));
    expect((await limiter.consume('k')).allowed).toBe(true);
  });
});

test('a reservation dropped without settle or release is reported once it is collected', async () => {
  const script = `
import { createLimiter } from '@tollgate/core';
const warned = [];
const limiter = createLimiter({
  policies: { algorithm: 'fixed-window', limit: 10, window: '1m' },
  logger: { warn: (m) => warned.push(m), error: () => {} },
});
const collect = async () => {
  for (let i = 0; i < 20; i++) {
    globalThis.gc();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};
const settled = async () => {
  const r = await limiter.reserve('k', { cost: 2 });
  await r.settle(3);
};
const released = async () => (await limiter.reserve('k', { cost: 2 })).release();
const denied = async () => void (await limiter.reserve('k', { cost: 8 }));
await settled();
await released();
await denied();
await collect();
const before = warned.length;
await (async () => void (await limiter.reserve('k', { cost: 4 })))();
await collect();
const left = (await limiter.peek('k')).remaining;
console.log(JSON.stringify({ before, warned, left }));
`;
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script],
      {
        cwd: repoRoot,
        env: { ...process.env, TSX_TSCONFIG_PATH: join(repoRoot, 'tsconfig.json') },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${err}`))));
  });
  const { before, warned, left } = JSON.parse(output.trim().split('\n').at(-1)!);
  // Settled, released and denied reservations are nothing to report; the dropped one is, and its
  // estimate stays counted: 3 settled + 4 dropped.
  expect(before).toBe(0);
  expect(warned).toEqual([
    expect.stringMatching(
      /^\[TOLLGATE_UNSETTLED\] A reservation of limiter 'default' was dropped without settle\(\) or release\(\): its estimate stays counted/,
    ),
  ]);
  expect(left).toBe(3);
});
