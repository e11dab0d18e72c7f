/**
 * Issue 12's concurrency acceptance: real child processes, real HTTP (Express), real Redis.
 * - 4 processes x 500 requests against `limit: 10`, handlers that hold 5-50 ms and count themselves
 *   in flight on a shared Redis counter (INCR on entry, DECR before answering, so inside the time
 *   their slot is held): the count never exceeds 10. The same in one process on a MemoryStore.
 * - `kill -9` of a process holding slots: full capacity is back within `lease` + 1 s (on Redis the
 *   killed process is the server, whose slots end with their lease; on a MemoryStore, which lives
 *   in the server, the killed process is the client, whose closed connections release at once, and
 *   a handler that never answers frees its slot with its lease).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createLimiter, type Decision, type Limiter, MemoryStore, type Store } from '@tollgate/core';
import { rateLimit } from '@tollgate/express';
import { RedisStore } from '@tollgate/redis';
import express from 'express';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { keysUnder, testPrefix } from './support/multi-process/redis-keys.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const CHILD = fileURLToPath(new URL('./support/multi-process/concurrency-child.ts', import.meta.url));
const LIMIT = 10;
const quiet = { warn: () => undefined, error: () => undefined };

interface Spawned {
  child: ChildProcess;
  /** The next message of `type` (`ready`, `holding`, `done`). */
  next(type: string): Promise<Record<string, number>>;
}

function spawn(env: Record<string, string | number>): Spawned {
  const vars: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) vars[`TOLLGATE_CC_${name}`] = String(value);
  const child = fork(CHILD, [], {
    cwd: repoRoot,
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, ...vars, TSX_TSCONFIG_PATH: join(repoRoot, 'tsconfig.json') },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const inbox: Record<string, number>[] = [];
  const waiting: (() => void)[] = [];
  child.on('message', (m) => {
    inbox.push(m as Record<string, number>);
    for (const wake of waiting.splice(0)) wake();
  });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal})`))),
  );
  exited.catch(() => undefined);
  return {
    child,
    async next(type) {
      for (;;) {
        const at = inbox.findIndex((m) => m.type === (type as never));
        if (at >= 0) return inbox.splice(at, 1)[0]!;
        await Promise.race([new Promise<void>((wake) => waiting.push(wake)), exited]);
      }
    },
  };
}

/** Takes `LIMIT` slots at once: true when all were free (then gives them back). */
async function fullCapacity(limiter: Limiter): Promise<boolean> {
  const taken: Decision[] = [];
  for (let i = 0; i < LIMIT; i++) taken.push(await limiter.consume('shared'));
  await Promise.all(taken.map((d) => d.release?.()));
  return taken.every((d) => d.allowed);
}

/** Milliseconds from now until `limiter` has every slot free again (polled every 20 ms). */
async function untilFull(limiter: Limiter, within: number): Promise<number> {
  const start = performance.now();
  while (!(await fullCapacity(limiter))) {
    if (performance.now() - start > within) break;
    await sleep(20);
  }
  return performance.now() - start;
}

const redis = new Redis({ port: inject('redisPort'), lazyConnect: true });
beforeAll(() => redis.connect());
afterAll(() => redis.quit());

describe('on Redis, across processes', () => {
  it('4 processes x 500 requests against limit 10: never more than 10 in flight, every slot released', async () => {
    const prefix = testPrefix();
    const counter = `${prefix}in-flight`;
    const env = { MODE: 'load', REDIS_PORT: inject('redisPort'), PREFIX: prefix, COUNTER: counter };
    const children = Array.from({ length: 4 }, () =>
      spawn({ ...env, LIMIT, LEASE_MS: 30_000, REQUESTS: 500, PARALLEL: 12 }),
    );
    try {
      await Promise.all(children.map((c) => c.next('ready')));
      for (const { child } of children) child.send('go');
      const results = await Promise.all(children.map((c) => c.next('done')));
      const highest = Math.max(...results.map((r) => r.highest!));
      const admitted = results.reduce((sum, r) => sum + r.admitted!, 0);
      const denied = results.reduce((sum, r) => sum + r.denied!, 0);
      console.log(`4 x 500 on Redis: ${admitted} admitted, ${denied} denied, at most ${highest} in flight`);
      expect(admitted + denied).toBe(2000);
      expect(highest).toBeLessThanOrEqual(LIMIT);
      // The run did press on the limit: several handlers were in flight at once, and some were denied.
      expect(highest).toBeGreaterThanOrEqual(LIMIT / 2);
      expect(denied).toBeGreaterThan(0);
      expect(await redis.get(counter)).toBe('0');
      // Every response released its slot: no lease is left in the sorted set.
      const leases = (await keysUnder(redis, prefix)).filter(({ key }) => key.endsWith(':leases'));
      for (const { key } of leases) expect(await redis.zcard(key)).toBe(0);
    } finally {
      for (const { child } of children) child.kill('SIGKILL');
    }
  });

  it('kill -9 of a process holding every slot: full capacity is back within lease + 1 s', async () => {
    const prefix = testPrefix();
    const lease = 2000;
    const env = { MODE: 'hold', REDIS_PORT: inject('redisPort'), PREFIX: prefix, COUNTER: `${prefix}c` };
    const holder = spawn({ ...env, LIMIT, LEASE_MS: lease, REQUESTS: LIMIT, PARALLEL: LIMIT });
    const store = new RedisStore({ client: redis, prefix });
    const limiter = createLimiter({
      name: 'cc-acceptance',
      policies: { algorithm: 'concurrency', limit: LIMIT, lease },
      store,
      blockedCache: false,
      logger: quiet,
    });
    try {
      await holder.next('holding');
      const denied = await limiter.consume('shared');
      expect(denied.allowed).toBe(false);
      expect(denied.retryAfterMs).toBeGreaterThan(0);
      expect(denied.retryAfterMs).toBeLessThanOrEqual(lease);
      holder.child.kill('SIGKILL');
      const back = await untilFull(limiter, lease + 5000);
      console.log(`Redis: every slot back ${Math.round(back)} ms after kill -9 (lease ${lease} ms)`);
      expect(back).toBeLessThanOrEqual(lease + 1000);
    } finally {
      holder.child.kill('SIGKILL');
    }
  });
});

/** An Express app on `store` whose handler counts itself in flight and holds 5-50 ms, or forever on /hang. */
async function memoryApp(store: Store, lease: number) {
  let inFlight = 0;
  let highest = 0;
  let entered = 0;
  const app = express();
  app.use(
    rateLimit({
      policies: { algorithm: 'concurrency', limit: LIMIT, lease },
      store,
      key: () => 'shared',
      logger: quiet,
    }),
  );
  app.get('/work', async (_req, res) => {
    inFlight++;
    highest = Math.max(highest, inFlight);
    await sleep(5 + Math.floor(Math.random() * 46));
    inFlight--;
    res.send('ok');
  });
  app.get('/hang', () => {
    entered++;
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, server, highest: () => highest, entered: () => entered };
}

function status(url: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('on a MemoryStore, in one process', () => {
  it('500 requests, 30 at once, against limit 10: never more than 10 in flight', async () => {
    const store = new MemoryStore();
    const app = await memoryApp(store, 30_000);
    const agent = new Agent({ keepAlive: true, maxSockets: 30 });
    try {
      const counts = { 200: 0, 429: 0 } as Record<number, number>;
      let next = 0;
      const worker = async () => {
        while (next++ < 500) {
          const code = await status(`${app.base}/work`, agent);
          counts[code] = (counts[code] ?? 0) + 1;
        }
      };
      await Promise.all(Array.from({ length: 30 }, worker));
      console.log(
        `500 on a MemoryStore: ${counts[200]} admitted, ${counts[429]} denied, at most ${app.highest()} in flight`,
      );
      expect(counts[200]! + counts[429]!).toBe(500);
      expect(app.highest()).toBeLessThanOrEqual(LIMIT);
      expect(app.highest()).toBeGreaterThanOrEqual(LIMIT / 2);
      const limiter = createLimiter({
        policies: { algorithm: 'concurrency', limit: LIMIT, lease: 30_000 },
        store,
      });
      // Same store, same name and policies: the app's counters. Every slot was released.
      expect(await fullCapacity(limiter)).toBe(true);
    } finally {
      agent.destroy();
      app.server.close();
      await store.close();
    }
  });

  it('kill -9 of a client holding every slot: its closed connections release them at once', async () => {
    const store = new MemoryStore();
    const lease = 2000;
    const app = await memoryApp(store, lease);
    const limiter = createLimiter({ policies: { algorithm: 'concurrency', limit: LIMIT, lease }, store });
    const client = spawn({ MODE: 'client', URL: `${app.base}/hang`, REQUESTS: LIMIT, PARALLEL: LIMIT });
    try {
      await client.next('holding');
      while (app.entered() < LIMIT) await sleep(10);
      expect((await limiter.consume('shared')).allowed).toBe(false);
      client.child.kill('SIGKILL');
      const back = await untilFull(limiter, lease + 5000);
      console.log(`MemoryStore: every slot back ${Math.round(back)} ms after the client's kill -9`);
      expect(back).toBeLessThanOrEqual(lease + 1000);
    } finally {
      client.child.kill('SIGKILL');
      app.server.closeAllConnections();
      app.server.close();
      await store.close();
    }
  });

  it('handlers that never answer (a hung request) free their slots when the lease ends', async () => {
    const store = new MemoryStore();
    const lease = 1000;
    const app = await memoryApp(store, lease);
    const limiter = createLimiter({
      policies: { algorithm: 'concurrency', limit: LIMIT, lease },
      store,
      logger: quiet,
    });
    const agent = new Agent({ keepAlive: true, maxSockets: LIMIT });
    try {
      for (let i = 0; i < LIMIT; i++) status(`${app.base}/hang`, agent).catch(() => undefined);
      while (app.entered() < LIMIT) await sleep(10);
      expect((await limiter.consume('shared')).allowed).toBe(false);
      const back = await untilFull(limiter, lease + 5000);
      console.log(`MemoryStore: hung handlers' slots back ${Math.round(back)} ms later (lease ${lease} ms)`);
      expect(back).toBeLessThanOrEqual(lease + 1000);
    } finally {
      agent.destroy();
      app.server.closeAllConnections();
      app.server.close();
      await store.close();
    }
  });
});
