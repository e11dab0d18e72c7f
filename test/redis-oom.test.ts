/**
 * Redis out of memory with `maxmemory-policy noeviction` (issue 9 item 5): Redis refuses a script's
 * first write, so every layout must answer a blocked key from what it reads, writing nothing. On a
 * throwaway server whose memory limit is lowered below what it uses once the keys are in place.
 */
import { randomUUID } from 'node:crypto';
import {
  type ConsumeInfo,
  createLimiter,
  type Policy,
  resolveBan,
  resolvePolicySet,
  StoreError,
} from '@tollgate/core/internal';
import { RedisStore } from '@tollgate/redis';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from './support/redis-servers.ts';

/** One policy of each algorithm, and several policies. */
const LAYOUTS: [string, Policy | Policy[]][] = [
  ['fixed-window', { algorithm: 'fixed-window', limit: 5, window: '1h' }],
  ['sliding-window', { algorithm: 'sliding-window', limit: 5, window: '1h' }],
  ['token-bucket', { algorithm: 'token-bucket', limit: 5, window: '1h' }],
  ['leaky-bucket', { algorithm: 'leaky-bucket', limit: 5, window: '1h', delay: false }],
  [
    'several policies',
    [
      { name: 'a', algorithm: 'fixed-window', limit: 5, window: '1h' },
      { name: 'b', algorithm: 'token-bucket', limit: 50, window: '1h' },
    ],
  ],
];

/** Layouts with bans: the third denial within a minute bans for an hour. */
const BAN_LAYOUTS: [string, Policy | Policy[]][] = [LAYOUTS[0]!, LAYOUTS[4]!];
const BAN = resolveBan({ after: 3, within: '1m', for: '1h' }).ban;

describe('RedisStore under Redis OOM (maxmemory-policy noeviction)', () => {
  let server: RedisServer;
  let client: Redis;
  const prefix = `oom:${randomUUID()}:`;

  beforeAll(async () => {
    server = await startRedis({ args: ['--maxmemory-policy', 'noeviction'] });
    client = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true });
    await client.connect();
    // Every key used up to its limit while Redis still has room, plus one key with quota left.
    const store = new RedisStore({ client, prefix });
    for (const [, policies] of LAYOUTS) {
      const set = resolvePolicySet(policies, 'oom');
      for (let i = 0; i < 5; i++)
        expect((await store.consume('blocked', set, 1)).every((o) => o.allowed)).toBe(true);
      expect((await store.consume('blocked', set, 1)).every((o) => o.allowed)).toBe(false);
      await store.consume('open', set, 1);
    }
    // With bans: a key banned, and a key at its limit with one denial counted (of the 3 that ban).
    for (const [, policies] of BAN_LAYOUTS) {
      const set = resolvePolicySet(policies, 'oom', 'policies', undefined, BAN);
      for (let i = 0; i < 8; i++) await store.consume('banned', set, 1);
      const info: ConsumeInfo = {};
      await store.peek('banned', set, info);
      expect(info.banLeftMs).toBeGreaterThan(3_590_000);
      for (let i = 0; i < 6; i++) await store.consume('counting', set, 1);
    }
    // Now full: every write that could grow memory is refused.
    await client.config('SET', 'maxmemory', '1');
    await expect(client.set(`${prefix}probe`, 'x')).rejects.toThrow(/OOM/);
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it.each(LAYOUTS)('%s: a blocked key stays blocked, from reads alone', async (_name, policies) => {
    const store = new RedisStore({ client, prefix });
    const set = resolvePolicySet(policies, 'oom');
    const key = store.keyFor('blocked', set);
    const before = await client.getBuffer(key);
    const ttl = await client.pttl(key);
    for (let i = 0; i < 5; i++) {
      const outcomes = await store.consume('blocked', set, 1);
      expect(outcomes.some((o) => !o.allowed)).toBe(true);
      expect(Math.max(...outcomes.map((o) => o.retryAfterMs))).toBeGreaterThan(0);
    }
    expect((await store.peek('blocked', set)).some((o) => !o.allowed)).toBe(true);
    expect(await client.getBuffer(key)).toEqual(before);
    expect(await client.pttl(key)).toBeLessThanOrEqual(ttl);
  });

  it.each(LAYOUTS)(
    '%s: a request that needs a write fails with a StoreError naming OOM',
    async (_name, policies) => {
      const store = new RedisStore({ client, prefix });
      const set = resolvePolicySet(policies, 'oom');
      for (const key of ['open', `new:${randomUUID()}`]) {
        const failure = await store.consume(key, set, 1).catch((error: unknown) => error);
        expect(failure).toBeInstanceOf(StoreError);
        expect(String((failure as StoreError).cause)).toMatch(/OOM/);
      }
    },
  );

  it.each(BAN_LAYOUTS)(
    '%s with bans: a banned key stays banned, and denials are answered uncounted (the ban slot is written by pcall)',
    async (_name, policies) => {
      const store = new RedisStore({ client, prefix });
      const set = resolvePolicySet(policies, 'oom', 'policies', undefined, BAN);
      const banned = store.keyFor('banned', set);
      const counting = store.keyFor('counting', set);
      const before = [await client.getBuffer(banned), await client.getBuffer(counting)];
      for (let i = 0; i < 5; i++) {
        const info: ConsumeInfo = {};
        const outcomes = await store.consume('banned', set, 1, info);
        expect(outcomes.every((o) => !o.allowed)).toBe(true);
        expect(info.banLeftMs).toBeGreaterThan(3_500_000);
      }
      // 5 more denials, each answered; none is counted (the write is refused), so none bans.
      for (let i = 0; i < 5; i++) {
        const info: ConsumeInfo = {};
        const outcomes = await store.consume('counting', set, 1, info);
        expect(outcomes.some((o) => !o.allowed)).toBe(true);
        expect([info.banLeftMs, info.banOffence]).toEqual([0, 0]);
      }
      expect([await client.getBuffer(banned), await client.getBuffer(counting)]).toEqual(before);
    },
  );

  it('through a limiter: 0 of 5 blocked requests pass; a new key follows onStoreError', async () => {
    const store = new RedisStore({ client, prefix });
    const logger = { warn: () => undefined, error: () => undefined };
    const policies = LAYOUTS[0]![1];
    // No denied-key cache: every request asks Redis.
    const open = createLimiter({ policies, store, name: 'oom', blockedCache: false, logger });
    // A refused write fails that request alone: blocked keys are still answered from Redis after it.
    expect((await open.consume('someone-new')).reason).toBe('store-error');
    const decisions = [];
    for (let i = 0; i < 5; i++) decisions.push(await open.consume('blocked'));
    expect(decisions.map((d) => [d.allowed, d.reason])).toEqual(Array(5).fill([false, undefined]));
    expect((await open.consume('someone-else-new')).reason).toBe('store-error');
    const closed = createLimiter({
      policies,
      store,
      name: 'oom',
      blockedCache: false,
      onStoreError: 'deny',
      logger,
    });
    expect((await closed.consume('someone-else')).allowed).toBe(false);
  });
});
