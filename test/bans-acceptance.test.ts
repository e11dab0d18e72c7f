/**
 * Issue 13's acceptance for bans, across real processes sharing a throwaway Redis (and a throwaway
 * Redis Cluster), on ioredis and on node-redis: a key denied `after` times within `within` is
 * refused for `for` by every process; a process that knows the ban sends Redis nothing while it
 * lasts (counted with INFO commandstats, which only these processes touch), whatever `recheck`
 * says, since the store tells of lifted bans; the next offence doubles the ban; an unban reaches
 * every process by its very next request; after its subscriber reconnects (CLIENT KILL TYPE
 * pubsub) a process asks Redis once again about each ban it knew; a manual ban that shortens (or
 * lengthens) a known ban reaches every process by its next request; a Cluster subscriber (ioredis
 * and node-redis) whose master dies moves to another, and closes when its client quits.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type BanOptions, createLimiter, type Policy } from '@tollgate/core';
import { type RedisClientLike, RedisStore } from '@tollgate/redis';
import { Cluster, Redis } from 'ioredis';
import { createCluster } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Answer, BanChildCommand } from './support/multi-process/ban-child.ts';
import { type RedisCluster, type RedisServer, startCluster, startRedis } from './support/redis-servers.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const CHILD = fileURLToPath(new URL('./support/multi-process/ban-child.ts', import.meta.url));

/** A child process and a way to ask it things. */
interface Child {
  ask<T = unknown>(command: BanChildCommand): Promise<T>;
  stop(): Promise<void>;
}

function spawn(): Promise<Child> {
  const proc: ChildProcess = fork(CHILD, [], {
    cwd: root,
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, TSX_TSCONFIG_PATH: join(root, 'tsconfig.json') },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let seq = 0;
  proc.on('message', (m: { seq: number; result?: unknown; error?: string }) => {
    const w = waiting.get(m.seq);
    waiting.delete(m.seq);
    if (m.error !== undefined) w?.reject(new Error(m.error));
    else w?.resolve(m.result);
  });
  const child: Child = {
    ask<T>(command: BanChildCommand) {
      const id = seq++;
      return new Promise<T>((resolve, reject) => {
        waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
        proc.send({ seq: id, command });
      });
    },
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.send({ seq: -2, command: { type: 'exit' } });
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
  return new Promise((resolve, reject) => {
    waiting.set(-1, { resolve: () => resolve(child), reject });
    proc.once('exit', (code) => reject(new Error(`ban child exited (${code}) before saying hello`)));
  });
}

/**
 * Calls of every command but INFO and CONFIG (the test's own) and CLUSTER (ioredis refreshing its
 * slot map on its own timer), summed over `servers`.
 */
async function commands(servers: Redis[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const server of servers) {
    const info = await server.info('commandstats');
    for (const [, name, calls] of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      if (/^(info|config|cluster)/.test(name!)) continue;
      counts[name!] = (counts[name!] ?? 0) + Number(calls);
    }
  }
  return counts;
}
const resetStats = (servers: Redis[]) => Promise.all(servers.map((s) => s.config('RESETSTAT')));

const POLICY: Policy = { name: 'burst', algorithm: 'fixed-window', limit: 2, window: '1s' };
const BAN: BanOptions = { after: 3, within: '10s', for: 1500, escalate: { factor: 2, max: '10s' } };

/**
 * Three processes, each with two limiters on the same counters and bans: `strict` (`recheck:
 * false`) and `fresh` (`recheck: '200ms'`, which holds only while a store cannot tell of lifts).
 * Each `limiter` command answers once its store's subscriber is subscribed.
 */
async function scenario(
  children: Child[],
  target: Extract<BanChildCommand, { type: 'limiter' }>['target'],
  servers: Redis[],
  escalation: boolean,
) {
  const prefix = `bans:${randomUUID()}:`;
  for (const child of children) {
    for (const [id, recheck] of [
      ['strict', false],
      ['fresh', '200ms'],
    ] as const) {
      await child.ask({
        type: 'limiter',
        id,
        target,
        prefix,
        name: 'acc',
        policies: POLICY,
        ban: { ...BAN, recheck },
      });
    }
  }
  const [a, b, c] = children as [Child, Child, Child];
  const key = `ip:${randomUUID()}`;
  const consume = (child: Child, n: number, id = 'strict') =>
    child.ask<Answer[]>({ type: 'consume', id, key, n });

  // The third denial within 10 s bans for 1.5 s, in the process that made it...
  const first = await consume(a, 5);
  const bannedAt = Date.now();
  expect(first.slice(0, 4)).toEqual([
    [true, '', 0],
    [true, '', 0],
    [false, '', first[2]![2]],
    [false, '', first[3]![2]],
  ]);
  expect(first[4]).toEqual([false, 'banned', 1500]);
  // ...and in every other, from Redis.
  for (const other of [b, c]) {
    const [[allowed, reason, wait]] = (await consume(other, 1)) as [Answer];
    expect([allowed, reason]).toEqual([false, 'banned']);
    expect(wait).toBeGreaterThan(1500 - (Date.now() - bannedAt) - 50);
    expect(wait).toBeLessThanOrEqual(1500);
  }

  // Every process knows the ban now: 600 more requests cost Redis nothing at all, with `recheck`
  // 200 ms too (they span more than that), since the store tells of lifts. (First, a moment for the
  // stores' background reading of Redis TIME, sent with their first requests, to land: on a
  // Cluster it may go to a node ioredis is still connecting to.)
  for (const child of children) await consume(child, 1, 'fresh');
  await sleep(200);
  await resetStats(servers);
  const quietFrom = Date.now();
  for (const child of children) {
    for (const id of ['strict', 'fresh']) {
      const answers = await consume(child, 100, id);
      expect(answers.every(([allowed, reason]) => !allowed && reason === 'banned')).toBe(true);
    }
  }
  await sleep(Math.max(0, quietFrom + 250 - Date.now()));
  for (const child of children) expect((await consume(child, 1, 'fresh'))[0]![1]).toBe('banned');
  expect(await commands(servers)).toEqual({});

  // The ban ends for everyone at once.
  await sleep(Math.max(0, bannedAt + 1520 - Date.now()));
  expect(await consume(b, 1)).toEqual([[true, '', 0]]);

  if (escalation) {
    // The next offence, within `max` of the first ban's end, doubles the ban.
    const second = await consume(b, 4);
    expect(second.slice(0, 1)).toEqual([[true, '', 0]]);
    expect(second[3]).toEqual([false, 'banned', 3000]);
    for (const other of [a, c]) {
      const [[allowed, reason, wait]] = (await consume(other, 1)) as [Answer];
      expect([allowed, reason, wait > 2500 && wait <= 3000]).toEqual([false, 'banned', true]);
    }
  } else {
    for (let i = 0; i < 5; i++) await consume(b, 1);
  }

  // Unban, once the policy's window is over (so that only the ban refuses): every limiter of every
  // process knows the ban, then one process lifts it.
  await sleep(1000);
  for (const child of children) {
    for (const id of ['strict', 'fresh']) expect((await consume(child, 1, id))[0]![1]).toBe('banned');
  }
  await resetStats(servers);
  await c.ask({ type: 'unban', id: 'fresh', key });
  // The very next request of each process is let through: the one that lifted it, and the others,
  // `recheck: false` included, told by Redis before the unban answered.
  expect(await consume(c, 1, 'fresh')).toEqual([[true, '', 0]]);
  expect(await consume(a, 1, 'strict')).toEqual([[true, '', 0]]);
  // (the policy allows 2 a second, taken by C and A: B is refused by the policy, no longer banned).
  expect((await consume(b, 1, 'strict'))[0]![1]).toBe('');
  // Four scripts ran since the unban (the unban, three requests), plus at most one resend of the ban
  // script's text to a server that did not know it yet (NOSCRIPT), and one PUBLISH per master.
  const calls = await commands(servers);
  expect((calls.evalsha ?? 0) + (calls.eval ?? 0)).toBeLessThanOrEqual(4 + 1);
  expect(calls.publish).toBe(servers.length);

  // A subscriber that reconnects may have missed lifts: each process asks Redis once more about
  // the ban it knew, then knows it again.
  await a.ask({ type: 'ban', id: 'strict', key, duration: 10_000 });
  for (const child of children) expect((await consume(child, 1, 'strict'))[0]![1]).toBe('banned');
  const before = await Promise.all(
    children.map((child) => child.ask<number>({ type: 'subscribed', id: 'strict', times: 1 })),
  );
  await Promise.all(servers.map((server) => server.client('KILL', 'TYPE', 'pubsub')));
  await Promise.all(
    children.map((child, i) => child.ask({ type: 'subscribed', id: 'strict', times: before[i]! + 1 })),
  );
  await resetStats(servers);
  for (const child of children) {
    const answers = await consume(child, 50);
    expect(answers.every(([allowed, reason]) => !allowed && reason === 'banned')).toBe(true);
  }
  const after = await commands(servers);
  expect((after.evalsha ?? 0) + (after.eval ?? 0)).toBe(children.length);
  // A reset lifts the ban everywhere too (and empties the policy: two of the three are let in).
  await b.ask({ type: 'reset', id: 'fresh', key });
  const reset: Answer[] = [];
  for (const child of children) reset.push((await consume(child, 1, 'strict'))[0]!);
  expect(reset.map(([allowed, reason]) => [allowed, reason])).toEqual([
    [true, ''],
    [true, ''],
    [false, ''],
  ]);

  // A manual ban replaces the key's ban in every process, shorter or longer: each process that knew
  // the old one hears of the new one (one PUBLISH per master) and asks Redis once. (Each is asked
  // once it has heard the news: when a process reads its socket is up to it, see the README.)
  const heard = (child: Child, times = 0) => child.ask<number>({ type: 'heard', id: 'strict', times });
  /** Runs `change` in a process, then waits until each of `others` has heard of it. */
  const told = async (change: () => Promise<unknown>, others: Child[]) => {
    const before = await Promise.all(others.map((child) => heard(child)));
    await change();
    await Promise.all(others.map((child, i) => heard(child, before[i]! + 1)));
  };
  await a.ask({ type: 'ban', id: 'strict', key, duration: 3_600_000 });
  for (const child of children) {
    for (const id of ['strict', 'fresh']) {
      const [[allowed, reason, wait]] = (await consume(child, 1, id)) as [Answer];
      expect([allowed, reason, wait > 3_590_000]).toEqual([false, 'banned', true]);
    }
  }
  await resetStats(servers);
  const shortenedAt = Date.now();
  await told(() => a.ask({ type: 'ban', id: 'fresh', key, duration: 2000 }), [b, c]);
  for (const child of [b, c]) {
    for (const id of ['strict', 'fresh']) {
      const [[allowed, reason, wait]] = (await consume(child, 1, id)) as [Answer];
      expect([allowed, reason, wait <= 2000 && wait > 2000 - (Date.now() - shortenedAt) - 50]).toEqual([
        false,
        'banned',
        true,
      ]);
    }
  }
  const shortened = await commands(servers);
  expect(shortened.publish).toBe(servers.length);
  expect((shortened.evalsha ?? 0) + (shortened.eval ?? 0)).toBeLessThanOrEqual(1 + 4 + 1);
  await told(() => a.ask({ type: 'ban', id: 'strict', key, duration: 3_600_000 }), [b, c]);
  for (const child of [b, c]) {
    const [[allowed, reason, wait]] = (await consume(child, 1, 'strict')) as [Answer];
    expect([allowed, reason, wait > 3_590_000]).toEqual([false, 'banned', true]);
  }
  // Shortened to a moment: once it is over, another process refuses the key no longer for a ban
  // (one request: the policy may still refuse it, and three such denials would ban it again).
  await told(() => c.ask({ type: 'ban', id: 'strict', key, duration: 1 }), [b]);
  await sleep(20);
  expect((await consume(b, 1, 'strict'))[0]![1]).toBe('');
}

describe('bans across processes (issue 13 acceptance)', () => {
  let server: RedisServer;
  let cluster: RedisCluster;
  let children: Child[] = [];

  beforeAll(async () => {
    [server, cluster, children] = await Promise.all([
      startRedis(),
      startCluster(),
      Promise.all([spawn(), spawn(), spawn()]),
    ]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(children.map((c) => c.stop()));
    await Promise.all([server?.stop(), cluster?.stop()]);
  });

  describe.each(['ioredis', 'node-redis'] as const)('%s', (client) => {
    it('on Redis: every process refuses the banned key, with no command while it knows the ban; escalation doubles it; unban reaches all at once', async () => {
      const admin = new Redis({ host: '127.0.0.1', port: server.port });
      try {
        await scenario(children, { kind: 'standalone', port: server.port, client }, [admin], true);
      } finally {
        admin.disconnect();
      }
    }, 40_000);

    it('an unban has reached every process when it resolves: the next request elsewhere is let through, 300 rounds of 300', async () => {
      const prefix = `bans:${randomUUID()}:`;
      const [a, b] = children as [Child, Child];
      const target = { kind: 'standalone', port: server.port, client } as const;
      for (const child of [a, b]) {
        await child.ask({
          type: 'limiter',
          id: 'race',
          target,
          prefix,
          name: 'race',
          policies: POLICY,
          ban: {},
        });
      }
      const refused: string[] = [];
      for (let round = 0; round < 300; round++) {
        const key = `race-${round}`;
        await a.ask({ type: 'ban', id: 'race', key, duration: 3_600_000 });
        // b learns the ban from Redis and keeps it in memory (a store that tells of lifts).
        const known = (await b.ask<Answer[]>({ type: 'consume', id: 'race', key, n: 1 }))[0]!;
        expect([known[0], known[1]]).toEqual([false, 'banned']);
        await a.ask({ type: 'unban', id: 'race', key });
        // Asked the moment a's unban resolved, over IPC: no waiting for the news.
        const [allowed, reason] = (await b.ask<Answer[]>({ type: 'consume', id: 'race', key, n: 1 }))[0]!;
        if (!allowed) refused.push(`round ${round}: ${reason}`);
      }
      expect(refused).toEqual([]);
    }, 60_000);

    it('on Redis Cluster: the same, summed over every master', async () => {
      const admins = cluster.nodes.map((n) => new Redis({ host: n.host, port: n.port }));
      try {
        await scenario(children, { kind: 'cluster', nodes: cluster.nodes, client }, admins, true);
      } finally {
        for (const admin of admins) admin.disconnect();
      }
    }, 40_000);
  });
});

describe.each(['ioredis', 'node-redis'] as const)('the subscriber of a Cluster on %s', (kind) => {
  it('moves to another master when its own dies, and hears lifts there; closes when the client quits', async () => {
    // Keys outside the dead master's slots keep working: no full coverage required.
    const own = await startCluster({ args: ['--cluster-require-full-coverage', 'no'] });
    let client: RedisClientLike;
    let quit: () => Promise<unknown>;
    if (kind === 'ioredis') {
      const io = new Cluster(own.nodes);
      io.on('error', () => undefined);
      await new Promise<void>((resolve) => io.once('ready', () => resolve()));
      client = io;
      quit = () => io.quit();
    } else {
      const nr = createCluster({
        rootNodes: own.nodes.map((n) => ({ socket: { host: n.host, port: n.port } })),
        defaults: { disableOfflineQueue: true },
      });
      nr.on('error', () => undefined);
      await nr.connect();
      client = nr as RedisClientLike;
      // (its quit() waits for the dead master's client, which reconnects for ever: disconnect)
      quit = () => nr.disconnect();
    }
    const admins = own.nodes.map((n) => new Redis({ host: n.host, port: n.port, lazyConnect: true }));
    for (const admin of admins) admin.on('error', () => undefined);
    try {
      const prefix = `move:${randomUUID()}:`;
      const channel = `${prefix}bans:lifted`;
      const store = new RedisStore({ client, prefix });
      let subscribed = 0;
      let lifted = 0;
      store.onLift({ lifted: () => void lifted++, listening: (on) => void (on && subscribed++) });
      createLimiter({
        policies: POLICY,
        store,
        ban: {},
        logger: { warn: () => undefined, error: () => undefined },
      });
      const until = async (check: () => boolean | Promise<boolean>, ms: number) => {
        for (const end = Date.now() + ms; !(await check()) && Date.now() < end; ) await sleep(25);
        expect(await check()).toBe(true);
      };
      await until(() => subscribed === 1, 10_000);
      /** The index of the master the store's subscriber is connected to. */
      const holder = async (skip?: number) => {
        for (let i = 0; i < admins.length; i++) {
          if (i === skip) continue;
          const list = String(await admins[i]!.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
          if (list.includes('name=tollgate-bans')) return i;
        }
        return -1;
      };
      const first = await holder();
      expect(first).toBeGreaterThanOrEqual(0);
      admins[first]!.disconnect();
      await own.servers[first]!.kill();
      // It gives up on the dead master after a few reconnects, then subscribes on a live one (a
      // random one each time: the dead one may be drawn again before).
      await until(() => subscribed === 2, 40_000);
      const second = await holder(first);
      expect(second).toBeGreaterThanOrEqual(0);
      expect(second).not.toBe(first);
      await admins[second]!.publish(channel, 'x');
      await until(() => lifted === 1, 5_000);
      // Your client's end ends it (the store and the limiter were not closed).
      await quit();
      const live = admins.filter((_, i) => i !== first);
      const subscribers = async () => {
        let n = 0;
        for (const admin of live) n += ((await admin.pubsub('NUMSUB', channel)) as [string, number])[1];
        return n;
      };
      await until(async () => (await subscribers()) === 0, 5_000);
    } finally {
      if (kind === 'ioredis') (client! as Cluster).disconnect();
      for (const admin of admins) admin.disconnect();
      await own.stop();
    }
  }, 90_000);
});
