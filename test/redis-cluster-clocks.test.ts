// A Redis Cluster whose masters' clocks disagree (one runs 1500 ms ahead, through an LD_PRELOAD
// shim compiled here): the replay guard's deadlines are in each master's own time, so no decision
// fails as LATE and every count holds (the review of 2026-12-03: with one reading for the whole
// Cluster, every decision on the fast master's keys was a store error).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLimiter, type Decision, type StoreError } from '@tollgate/core';
import { RedisStore } from '@tollgate/redis';
import { Cluster, Redis } from 'ioredis';
import { createCluster } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisCluster, startCluster } from './support/redis-servers.ts';

const AHEAD_MS = 1500;
let dir: string;
let cluster: RedisCluster;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tollgate-clock-'));
  const shim = join(dir, 'clock-ahead.so');
  execFileSync('cc', [
    '-shared',
    '-fPIC',
    '-O2',
    '-o',
    shim,
    join(import.meta.dirname, 'support/clock-ahead.c'),
    '-ldl',
  ]);
  cluster = await startCluster({ env: [{ LD_PRELOAD: shim, CLOCK_AHEAD_MS: String(AHEAD_MS) }] });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function masterTimes(): Promise<number[]> {
  const times = await Promise.all(
    cluster.nodes.map(async ({ port }) => {
      const node = new Redis({ port, lazyConnect: true });
      try {
        await node.connect();
        const [s, us] = await node.time();
        return Number(s) * 1000 + Math.floor(Number(us) / 1000);
      } finally {
        node.disconnect();
      }
    }),
  );
  return times.map((t) => t - times[1]!);
}

describe('RedisStore on a Cluster whose masters disagree on the time', () => {
  it('the shim works: the first master is 1500 ms ahead of the others', async () => {
    const [first, , third] = await masterTimes();
    expect(Math.abs(first! - AHEAD_MS)).toBeLessThan(200);
    expect(Math.abs(third!)).toBeLessThan(200);
  });

  it.each(['ioredis', 'node-redis'] as const)(
    '%s: 20 rounds over 60 keys on every master, timeoutMs 100: every decision counted, no store error',
    async (kind) => {
      const io = kind === 'ioredis' ? new Cluster(cluster.nodes) : undefined;
      const nr =
        kind === 'node-redis'
          ? createCluster({
              rootNodes: cluster.nodes.map(({ host, port }) => ({ url: `redis://${host}:${port}` })),
            })
          : undefined;
      await nr?.connect();
      try {
        const errors: StoreError[] = [];
        const store = new RedisStore({
          client: (io ?? nr)!,
          prefix: `clocks-${kind}:`,
          timeoutMs: 100,
          onError: (e) => errors.push(e),
        });
        const limiter = createLimiter({
          name: 'clocks',
          store,
          policies: { limit: 1000, window: '1m' },
          logger: { warn() {}, error() {} },
        });
        const keys = Array.from({ length: 60 }, (_, i) => `user-${i}`);
        const decisions: Decision[] = [];
        for (let round = 0; round < 20; round++) {
          decisions.push(...(await Promise.all(keys.map((key) => limiter.consume(key)))));
        }
        // The keys fall on every master, the fast one included.
        const shards = new Set(keys.map((key) => store.shardOf(key, limiter.resolve())));
        expect(shards.size).toBe(3);
        expect(errors.map((e) => e.message)).toEqual([]);
        expect(decisions.filter((d) => !d.allowed || d.reason !== undefined)).toEqual([]);
        const left = await Promise.all(keys.map(async (key) => (await limiter.peek(key)).remaining));
        expect(left).toEqual(keys.map(() => 1000 - 20));
      } finally {
        io?.disconnect();
        await nr?.close();
      }
    },
    60_000,
  );
});
