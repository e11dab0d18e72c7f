/**
 * The RedisStore on every supported client range at its lowest and latest release (issue 10):
 * ioredis 5.0.0 and latest 5.x, node-redis 4.6.0 and latest, installed as aliased devDependencies.
 * Per client: the store against the TypeScript algorithms (every algorithm and a mixed set, a
 * scripted traffic on a virtual clock), SCRIPT FLUSH, a timeout, a wrong-type key failing only
 * its own request, and a client used while it connects for the first time; and the subscriber
 * for lifted bans each client's public `duplicate()` makes (on a throwaway Redis, whose pub/sub
 * clients the test kills).
 */
import { randomUUID } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type BanOptions,
  createLimiter,
  type Policy,
  type RateAlgorithm,
  STORE_CALL_CHANNEL,
  type StoreCallMessage,
  StoreError,
} from '@tollgate/core';
import { evaluate, type PolicySet, resolvePolicySet, type State } from '@tollgate/core/internal';
import { type RedisClientLike, RedisStore } from '@tollgate/redis';
import { Redis as IoRedisLatest } from 'ioredis';
import IoRedisLowest from 'ioredis-lowest';
import { createClient as createLatest } from 'redis';
import { createClient as createLowest } from 'redis-lowest';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { type RedisServer, startRedis } from './support/redis-servers.ts';

interface Peer {
  name: string;
  version: string;
  /** A client just created, its connection under way (not awaited). */
  create(
    port: number,
    user?: { username: string; password: string },
  ): { client: RedisClientLike; close(): unknown };
}

const io = (Redis: typeof IoRedisLatest, name: string, version: string): Peer => ({
  name,
  version,
  create(port, user) {
    const client = new Redis({ host: '127.0.0.1', port, ...user });
    client.on('error', () => undefined);
    return {
      client,
      close: () => {
        client.disconnect();
      },
    };
  },
});

const node = (createClient: typeof createLatest, name: string, version: string): Peer => ({
  name,
  version,
  create(port, user) {
    const client = createClient({ socket: { host: '127.0.0.1', port }, ...user });
    client.on('error', () => undefined);
    void client.connect().catch(() => undefined);
    return { client: client as RedisClientLike, close: () => client.disconnect().catch(() => undefined) };
  },
});

const require = createRequire(import.meta.url);
const versionOf = (name: string): string => (require(`${name}/package.json`) as { version: string }).version;

const PEERS: Peer[] = [
  io(IoRedisLowest as unknown as typeof IoRedisLatest, 'ioredis', versionOf('ioredis-lowest')),
  io(IoRedisLatest, 'ioredis', versionOf('ioredis')),
  node(createLowest as unknown as typeof createLatest, 'node-redis', versionOf('redis-lowest')),
  node(createLatest, 'node-redis', versionOf('redis')),
];

const ALGORITHMS: readonly RateAlgorithm[] = [
  'fixed-window',
  'sliding-window',
  'token-bucket',
  'leaky-bucket',
];
const quiet = { warn: () => undefined, error: () => undefined };

test('the matrix holds the lowest and latest release of each range', () => {
  expect(PEERS.map((p) => `${p.name} ${p.version}`)).toEqual([
    'ioredis 5.0.0',
    expect.stringMatching(/^ioredis 5\.\d+\.\d+$/),
    'node-redis 4.6.0',
    expect.stringMatching(/^node-redis 5\.\d+\.\d+$/),
  ]);
});

describe.each(PEERS)('$name $version', (peer) => {
  let client: RedisClientLike;
  let close: () => unknown;
  let admin: IoRedisLatest;
  beforeAll(async () => {
    ({ client, close } = peer.create(inject('redisPort')));
    admin = new IoRedisLatest({ host: '127.0.0.1', port: inject('redisPort') });
  });
  afterAll(async () => {
    await close();
    admin.disconnect();
  });
  const prefix = () => `t:${randomUUID()}:`;

  test('used at once while it connects, it counts the call; a client passed alone is refused', async () => {
    const fresh = peer.create(inject('redisPort'));
    try {
      const store = new RedisStore({ client: fresh.client, prefix: prefix() });
      const set = resolvePolicySet({ limit: 5, window: '1m' }, 'peers');
      expect((await store.consume('k', set, 1))[0]!.remaining).toBe(4);
      expect(() => new RedisStore(fresh.client as never)).toThrow('`new RedisStore({ client })`');
    } finally {
      await fresh.close();
    }
  });

  test('twenty stores used at once while it connects wait with one pair of listeners: no warning', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    const fresh = peer.create(inject('redisPort'));
    try {
      const set = resolvePolicySet({ limit: 5, window: '1m' }, 'peers');
      const stores = Array.from(
        { length: 20 },
        () => new RedisStore({ client: fresh.client, prefix: prefix() }),
      );
      const outcomes = await Promise.all(stores.map((store) => store.consume('k', set, 1)));
      expect(outcomes.map((o) => o[0]!.remaining)).toEqual(new Array(20).fill(4));
      // Warnings are emitted on a later tick.
      await sleep(10);
      expect(warnings.map((w) => w.message)).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await fresh.close();
    }
  });

  test('every algorithm, and several policies at once, answer as the TypeScript steps', async () => {
    const sets: PolicySet[] = [
      ...ALGORITHMS.map((algorithm) =>
        resolvePolicySet(
          { algorithm, limit: 4, window: 1000, ...(algorithm === 'token-bucket' ? { burst: 6 } : {}) },
          'peers',
        ),
      ),
      resolvePolicySet(
        [
          { name: 'a', algorithm: 'fixed-window', limit: 3, window: 700 },
          { name: 'b', algorithm: 'leaky-bucket', limit: 5, window: 2000 },
        ] satisfies Policy[],
        'peers',
      ),
    ];
    for (const set of sets) {
      let now = 1_000_000;
      const store = new RedisStore({ client, prefix: prefix(), clock: () => now });
      let states: (State | undefined)[] = [];
      for (let i = 0; i < 40; i++) {
        now += [0, 90, 250, 400][i % 4]!;
        const cost = i % 7 === 6 ? 2 : 1;
        const expected = evaluate(states, now, set, cost);
        expect(await store.consume('k', set, cost), `${set.id} step ${i}`).toEqual(expected.outcomes);
        if (expected.allowed) states = expected.states;
      }
    }
  });

  test('SCRIPT FLUSH costs no request; a timeout is a StoreError within timeoutMs', async () => {
    const store = new RedisStore({ client, prefix: prefix(), timeoutMs: 100 });
    const set = resolvePolicySet({ algorithm: 'fixed-window', limit: 10, window: '1m' }, 'peers');
    for (let i = 0; i < 3; i++) {
      await admin.script('FLUSH');
      expect((await store.consume('k', set, 1))[0]!.remaining).toBe(9 - i);
    }
    await admin.call('CLIENT', 'PAUSE', '300', 'WRITE');
    const started = performance.now();
    const failure = await store.consume('k', set, 1).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(200);
    expect(failure).toBeInstanceOf(StoreError);
    expect((failure as StoreError).message).toMatch(/no reply from Redis within 100 ms/);
    await admin.call('CLIENT', 'UNPAUSE');
  });

  test('a wrong-type key fails its own request only', async () => {
    const store = new RedisStore({ client, prefix: prefix() });
    const limiter = createLimiter({
      policies: { limit: 5, window: '1m' },
      store,
      logger: quiet,
      blockedCache: false,
    });
    const held = store.keyFor('broken', limiter.policies!);
    await admin.multi().hset(held, 'not', 'a state').pexpire(held, 60_000).exec();
    const failure = await store.consume('broken', limiter.policies!, 1).catch((e: unknown) => e);
    expect((failure as StoreError).scope).toBe('key');
    const decisions = await Promise.all(['broken', 'a', 'b', 'broken', 'c'].map((k) => limiter.consume(k)));
    expect(decisions.map((d) => d.reason)).toEqual([
      'store-error',
      undefined,
      undefined,
      'store-error',
      undefined,
    ]);
  });
});

describe.each(PEERS)('lifted bans on $name $version', (peer) => {
  let server: RedisServer;
  let user: { client: RedisClientLike; close(): unknown };
  let admin: IoRedisLatest;
  beforeAll(async () => {
    server = await startRedis();
    user = peer.create(server.port);
    admin = new IoRedisLatest({ host: '127.0.0.1', port: server.port });
  }, 30_000);
  afterAll(async () => {
    await user?.close();
    admin?.disconnect();
    await server?.stop();
  });

  test('a limiter on this client knows a ban with no store call, hears an unban made through another client, subscribes again after CLIENT KILL TYPE pubsub; close() ends its subscriber', async () => {
    const prefix = `t:${randomUUID()}:`;
    const options = {
      name: 'lifts',
      policies: { algorithm: 'fixed-window', limit: 1, window: '1m' } satisfies Policy,
      ban: { after: 2, within: '1m', for: '1m' } satisfies BanOptions,
      logger: quiet,
    };
    const store = new RedisStore({ client: user.client, prefix });
    let subscribed = 0;
    let lifted = 0;
    store.onLift({ lifted: () => void lifted++, listening: (on) => void (on && subscribed++) });
    const here = createLimiter({ ...options, store });
    const there = createLimiter({ ...options, store: new RedisStore({ client: admin, prefix }) });
    const calls: string[] = [];
    const count = (message: unknown) => {
      const m = message as StoreCallMessage;
      if (m.limiter === 'lifts') calls.push(m.operation);
    };
    subscribe(STORE_CALL_CHANNEL, count);
    try {
      const until = async (check: () => boolean) => {
        for (let i = 0; i < 200 && !check(); i++) await sleep(25);
        expect(check()).toBe(true);
      };
      const channel = `${prefix}bans:lifted`;
      /** Waits until `n` clients subscribe to the channel. */
      const numsub = async (n: number) => {
        for (let i = 0; i < 200; i++) {
          if (((await admin.pubsub('NUMSUB', channel)) as [string, number])[1] === n) break;
          await sleep(25);
        }
        expect(await admin.pubsub('NUMSUB', channel)).toEqual([channel, n]);
      };
      await until(() => subscribed === 1);
      // The third request is the second denial: banned, and known here from then on.
      const first = [];
      for (let i = 0; i < 3; i++) first.push((await here.consume('k')).reason);
      expect(first).toEqual([undefined, undefined, 'banned']);
      calls.length = 0;
      for (let i = 0; i < 100; i++) expect((await here.consume('k')).reason).toBe('banned');
      expect(calls).toEqual([]);
      // Lifted through the other client: once the news is read from this process's subscriber
      // socket (in one process, the publisher's reply may be read first), this limiter's very next
      // request reaches Redis, where the policy still refuses it (one denial, no ban).
      await there.unban('k');
      await until(() => lifted === 1);
      const next = await here.consume('k');
      expect([next.allowed, next.reason]).toEqual([false, undefined]);
      // Banned again from there (which tells every process too); learnt here by one call, then known.
      await there.ban('k', 60_000);
      await until(() => lifted === 2);
      calls.length = 0;
      for (let i = 0; i < 10; i++) expect((await here.consume('k')).reason).toBe('banned');
      expect(calls).toEqual(['consume']);
      // The subscriber's connection is killed: once it has subscribed again, what was known is
      // asked of Redis once more.
      // (the other limiter closed first: its store's subscriber goes with its last listener)
      await there.close();
      await numsub(1);
      expect(await admin.client('KILL', 'TYPE', 'pubsub')).toBe(1);
      await until(() => subscribed === 2);
      calls.length = 0;
      for (let i = 0; i < 10; i++) expect((await here.consume('k')).reason).toBe('banned');
      expect(calls).toEqual(['consume']);
      // close() ends the subscriber connection.
      await numsub(1);
      store.close();
      await numsub(0);
      // A subscriber refused by Redis (an ACL without SUBSCRIBE, on a client of that user): the
      // store's onError and the limiter's logger hear of it, nothing throws, and known bans are
      // trusted for `recheck` only.
      await admin.call('ACL', 'SETUSER', 'nosub', 'on', 'nopass', '~*', '&*', '+@all', '-subscribe');
      const limited = peer.create(server.port, { username: 'nosub', password: 'any' });
      try {
        const errors: StoreError[] = [];
        const warned: string[] = [];
        const refused = new RedisStore({ client: limited.client, prefix, onError: (e) => errors.push(e) });
        const strict = createLimiter({
          ...options,
          store: refused,
          logger: { warn: (m: string) => warned.push(m), error: () => undefined },
        });
        await strict.consume('k');
        await until(() => errors.length > 0 && warned.length > 0);
        expect(errors[0]!.message).toMatch(/^RedisStore subscribe failed: NOPERM/);
        expect(warned[0]).toMatch(/^\[TOLLGATE_BAN_PUSH_LOST\] Limiter 'lifts' no longer hears .*NOPERM/);
        expect(subscribed).toBe(2);
        // The ban is known for 1 s (the default recheck) and then asked again.
        calls.length = 0;
        for (let i = 0; i < 5; i++) expect((await strict.consume('k')).reason).toBe('banned');
        expect(calls).toEqual([]);
        await sleep(1050);
        expect((await strict.consume('k')).reason).toBe('banned');
        expect(calls).toEqual(['consume']);
        refused.close();
      } finally {
        await limited.close();
      }
    } finally {
      unsubscribe(STORE_CALL_CHANNEL, count);
    }
  }, 30_000);

  test('twenty stores on this client (a store per route) share one subscriber: one connection, no listener warning, each hears a lift; it closes with the last store', async () => {
    const prefix = `t:${randomUUID()}:`;
    const channel = `${prefix}bans:lifted`;
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const stores = Array.from({ length: 20 }, () => new RedisStore({ client: user.client, prefix }));
      const heard = stores.map(() => ({ subscribed: 0, lifted: 0 }));
      stores.forEach((store, i) => {
        createLimiter({
          name: `route${i}`,
          policies: { limit: 5, window: '1m' },
          store,
          ban: {},
          logger: quiet,
        });
        store.onLift({
          lifted: () => void heard[i]!.lifted++,
          listening: (on) => void (on && heard[i]!.subscribed++),
        });
      });
      const until = async (check: () => boolean) => {
        for (let i = 0; i < 200 && !check(); i++) await sleep(25);
        expect(check()).toBe(true);
      };
      /** Waits until `n` clients subscribe to the channel (a closed one leaves a moment later). */
      const numsub = async (n: number) => {
        for (let i = 0; i < 200; i++) {
          if (((await admin.pubsub('NUMSUB', channel)) as [string, number])[1] === n) break;
          await sleep(25);
        }
        expect(await admin.pubsub('NUMSUB', channel)).toEqual([channel, n]);
      };
      await until(() => heard.every((h) => h.subscribed === 1));
      expect(await admin.pubsub('NUMSUB', channel)).toEqual([channel, 1]);
      const there = createLimiter({
        name: 'route0',
        policies: { limit: 5, window: '1m' },
        store: new RedisStore({ client: admin, prefix }),
        ban: {},
        logger: quiet,
      });
      await there.unban('k');
      await until(() => heard.every((h) => h.lifted === 1));
      await there.close();
      for (const store of stores.slice(1)) store.close();
      await numsub(1);
      await sleep(100);
      await numsub(1);
      stores[0]!.close();
      await numsub(0);
      // Warnings are emitted on a later tick.
      await sleep(10);
      expect(warnings.map((w) => w.name)).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  }, 30_000);
});
