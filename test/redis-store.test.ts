/**
 * What only the RedisStore has: one command per request, TTLs, the script cache going away, hostile
 * keys, timeouts and unready clients, Redis TIME, option validation. The algorithms themselves are
 * covered by test/store-conformance.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import {
  ConfigError,
  createLimiter,
  evaluate,
  isStoreError,
  type Outcome,
  type Policy,
  type PolicySet,
  peekOutcomes,
  refundStates,
  resolvePolicySet,
  type State,
  StoreError,
} from '@tollgate/core/internal';
import { RedisStore } from '@tollgate/redis';
import fc from 'fast-check';
import { Cluster, Redis } from 'ioredis';
import { createClient, createCluster } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import {
  CONSUME_SCRIPT,
  PEEK_SCRIPT,
  REFUND_SCRIPT,
  SETTLE_SCRIPT,
} from '../packages/redis/src/lua/scripts.js';
import { findFreePort, type RedisServer, startRedis } from './support/redis-servers.ts';

const set = (policies: Policy | Policy[], namespace = 'redis-test'): PolicySet =>
  resolvePolicySet(policies, namespace);
const prefix = () => `t:${randomUUID()}:`;
const fixed = (limit: number, window: Policy['window'] = '1m') =>
  set({ algorithm: 'fixed-window', limit, window });

/**
 * The state of a key on the packed layout (anything but one fixed window on Redis time): three
 * little-endian doubles per policy, -Infinity first for a policy without state.
 */
async function packedState(admin: Redis, key: string): Promise<number[] | undefined> {
  const raw = await admin.getBuffer(key);
  if (raw === null) return undefined;
  expect(raw.length % 24).toBe(0);
  return Array.from({ length: raw.length / 8 }, (_, i) => raw.readDoubleLE(8 * i));
}

/** Polls (for a state change, not for time to pass). */
async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

const ioredis = (port: number, options: Record<string, unknown> = {}) =>
  new Redis({ host: '127.0.0.1', port, lazyConnect: true, ...options });

const toDispose: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const dispose of toDispose.splice(0).reverse()) await dispose();
});

async function connectedIoredis(port: number, options: Record<string, unknown> = {}): Promise<Redis> {
  const client = ioredis(port, options);
  await client.connect();
  toDispose.push(() => client.quit());
  return client;
}

async function connectedNodeRedis(port: number) {
  const client = createClient({ socket: { host: '127.0.0.1', port } });
  await client.connect();
  toDispose.push(() => client.close());
  return client;
}

describe('RedisStore options', () => {
  let client: Redis;
  beforeAll(async () => {
    client = ioredis(inject('redisPort'));
    await client.connect();
  });
  afterAll(async () => {
    await client.quit();
  });

  it.each([
    ['no options', undefined, /`RedisStore options`/],
    ['null options', null, /`RedisStore options`/],
    ['a missing client', {}, /`client`.*got `undefined`/],
    ['a client of another kind', { client: { get() {} } }, /`client`/],
    [
      'an unknown option',
      { client: 'C', clock: undefined, timeout: 5 },
      /Unknown option `timeout` in `RedisStore` options\. Did you mean `timeoutMs`\?/,
    ],
    ['timeoutMs a malformed duration', { client: 'C', timeoutMs: '2 s' }, /`timeoutMs`.*"2 s" \(string\)/],
    ['a prefix with a brace', { client: 'C', prefix: 'a{b' }, /`prefix`.*"a\{b"/],
    ['a prefix with a space', { client: 'C', prefix: 'a b' }, /`prefix`/],
    ['a prefix too long', { client: 'C', prefix: 'x'.repeat(65) }, /`prefix`/],
    ['a prefix that is not a string', { client: 'C', prefix: 5 }, /`prefix`.*`5` \(number\)/],
    ['a clock that is not a function', { client: 'C', clock: 5 }, /`clock`/],
    ['timeoutMs 0', { client: 'C', timeoutMs: 0 }, /`timeoutMs`.*`0` \(number\)/],
    ['timeoutMs negative', { client: 'C', timeoutMs: -1 }, /`timeoutMs`/],
    ['timeoutMs fractional', { client: 'C', timeoutMs: 1.5 }, /`timeoutMs`/],
    ['timeoutMs a string', { client: 'C', timeoutMs: '500' }, /`timeoutMs`.*"500" \(string\)/],
    ['timeoutMs Infinity', { client: 'C', timeoutMs: Number.POSITIVE_INFINITY }, /`timeoutMs`/],
    ['timeoutMs too large', { client: 'C', timeoutMs: 2 ** 31 }, /`timeoutMs`/],
    ['onError not a function', { client: 'C', onError: 'log' }, /`onError`/],
  ])('rejects %s with a ConfigError naming it', (_name, options, message) => {
    const resolved =
      typeof options === 'object' && options !== null && 'client' in options && options.client === 'C'
        ? { ...options, client }
        : options;
    const create = () => new RedisStore(resolved as never);
    expect(create).toThrow(ConfigError);
    expect(create).toThrow(message);
  });

  it('given a client instead of options, names the fix', () => {
    for (const given of [client, createClient()]) {
      const create = () => new RedisStore(given as never);
      expect(create).toThrow(ConfigError);
      expect(create).toThrow('`new RedisStore({ client })`');
    }
  });

  it('accepts every documented option', () => {
    const store = new RedisStore({
      client,
      prefix: 'app:rl:',
      clock: () => 0,
      timeoutMs: 50,
      onError: () => undefined,
    });
    expect(store.remote).toBe(true);
    expect(new RedisStore({ client, prefix: '' })).toBeInstanceOf(RedisStore);
    expect(new RedisStore({ client, timeoutMs: '2s' })).toBeInstanceOf(RedisStore);
  });

  it('exports the scripts, each opening with its KEYS and ARGV', () => {
    for (const script of [CONSUME_SCRIPT, PEEK_SCRIPT, REFUND_SCRIPT, SETTLE_SCRIPT]) {
      expect(script).toMatch(
        /^-- KEYS\[1\]: .*\n(-- KEYS\[2\]: .*\n)?-- ARGV\[1\]: .*\n-- ARGV\[2\]: .*\n(-- ARGV\[3\]: .*\n)?(-- ARGV\[4\]: .*\n)?-- ARGV\[\d\.\.\]: /,
      );
    }
  });
});

describe('RedisStore on the shared servers', () => {
  let client: Redis;
  let admin: Redis;
  beforeAll(async () => {
    client = ioredis(inject('redisPort'));
    admin = ioredis(inject('redisPort'));
    await Promise.all([client.connect(), admin.connect()]);
  });
  afterAll(async () => {
    await Promise.all([client.quit(), admin.quit()]);
  });

  describe('TTL', () => {
    const cases: [string, PolicySet, number, number][] = [
      // [name, set, lowest and highest PTTL after one cost-1 consume]
      ['fixed-window 1m', fixed(10), 59_000, 60_000],
      ['sliding-window 1m', set({ limit: 10, window: '1m' }), 60_000, 120_000],
      ['token-bucket 10/s', set({ algorithm: 'token-bucket', limit: 10, window: '1s' }), 50, 100],
      ['leaky-bucket 4/s', set({ algorithm: 'leaky-bucket', limit: 4, window: '1s' }), 200, 250],
      [
        'the latest of several policies',
        set([
          { name: 'a', algorithm: 'token-bucket', limit: 10, window: '1s' },
          { name: 'b', algorithm: 'fixed-window', limit: 10, window: '1h' },
        ]),
        3_599_000,
        3_600_000,
      ],
    ];
    it.each(cases)('is set on consume and refund (%s)', async (_name, s, low, high) => {
      const store = new RedisStore({ client, prefix: prefix() });
      const key = store.keyFor('user', s);
      await store.consume('user', s, 1);
      const afterConsume = await admin.pttl(key);
      expect(afterConsume).toBeGreaterThanOrEqual(low);
      expect(afterConsume).toBeLessThanOrEqual(high);
      await store.consume('user', s, 2);
      await store.refund('user', s, 1);
      const afterRefund = await admin.pttl(key);
      expect(afterRefund).toBeGreaterThan(0);
      expect(afterRefund).toBeLessThanOrEqual(high * 2);
      // Refunding everything: the buckets have nothing left to keep; the windows keep their start.
      await store.refund('user', s, 100);
      const gone = s.policies.every((p) => p.algorithm.endsWith('bucket'));
      if (gone) expect(await admin.pttl(key)).toBe(-2);
      else expect(await admin.pttl(key)).toBeGreaterThan(0);
    });

    it('moves the deadline with the state, and only then', async () => {
      const store = new RedisStore({ client, prefix: prefix() });
      const bucket = set({ algorithm: 'token-bucket', limit: 10, window: '1s' });
      await store.consume('user', bucket, 1);
      expect(await admin.pttl(store.keyFor('user', bucket))).toBeLessThanOrEqual(100);
      await store.consume('user', bucket, 2);
      // Three tokens short: full again in 300 ms.
      expect(await admin.pttl(store.keyFor('user', bucket))).toBeGreaterThan(200);
      expect(await admin.pttl(store.keyFor('user', bucket))).toBeLessThanOrEqual(300);

      const window = set({ limit: 10, window: '1h' });
      await store.consume('user', window, 1);
      const key = store.keyFor('user', window);
      // The window's end does not move while it runs; a later consume keeps the deadline.
      await admin.pexpire(key, 3 * 3_600_000);
      await store.consume('user', window, 1);
      expect(await admin.pttl(key)).toBeGreaterThan(2 * 3_600_000);
      // A new state (the refund rewrites it) sets the deadline again.
      await store.refund('user', window, 1);
      expect(await admin.pttl(key)).toBeLessThanOrEqual(2 * 3_600_000);
    });

    it('keeps a fixed window on Redis time as its start and count, expiring with the window', async () => {
      const store = new RedisStore({ client, prefix: prefix() });
      const window = fixed(10, '1h');
      const key = store.keyFor('user', window);
      const info: { countedAt?: number } = {};
      const [first] = await store.consume('user', window, 3, info);
      expect(first!.resetMs).toBe(3_600_000);
      // The window opened at Redis's time of the request, which the store reports as countedAt.
      expect(await packedState(admin, key)).toEqual([info.countedAt, 3, 0]);
      const ttl = await admin.pttl(key);
      expect(ttl).toBeGreaterThan(3_590_000);
      // Consumes and refunds in the window never move its end.
      const [second] = await store.consume('user', window, 2);
      expect(second!.resetMs).toBeLessThanOrEqual(3_600_000);
      await store.refund('user', window, 1);
      expect(await packedState(admin, key)).toEqual([info.countedAt, 4, 0]);
      expect(await admin.pttl(key)).toBeLessThanOrEqual(ttl);
      // A denied request writes nothing.
      const [denied] = await store.consume('user', window, 7);
      expect(denied).toMatchObject({ allowed: false, remaining: 6 });
      expect(denied!.retryAfterMs).toBe(denied!.resetMs);
      expect(await packedState(admin, key)).toEqual([info.countedAt, 4, 0]);
    });

    it('leaves no key without a TTL, whatever the traffic', async () => {
      const p = prefix();
      const store = new RedisStore({ client, prefix: p });
      const sets = [
        fixed(3),
        set({ limit: 3, window: '10s' }),
        set({ algorithm: 'token-bucket', limit: 3, window: '10s', burst: 5 }),
        set({ algorithm: 'leaky-bucket', limit: 3, window: '10s', delay: false }),
        set([
          { name: 'a', limit: 2, window: '1s' },
          { name: 'b', algorithm: 'leaky-bucket', limit: 3, window: '1m' },
        ]),
      ];
      for (const s of sets) {
        for (let i = 0; i < 20; i++) {
          const key = `k${i % 4}`;
          if (i % 5 === 4) await store.refund(key, s, i % 3);
          else if (i % 7 === 6) await store.peek(key, s);
          else await store.consume(key, s, i % 4);
        }
      }
      const keys = await admin.keys(`${p}*`);
      expect(keys.length).toBeGreaterThan(5);
      for (const key of keys) expect(await admin.pttl(key)).toBeGreaterThan(0);
    });

    it('with a caller clock, keeps keys a minute past the state', async () => {
      let now = 1_000_000;
      const store = new RedisStore({ client, prefix: prefix(), clock: () => now });
      const s = fixed(10);
      await store.consume('user', s, 1);
      now += 10_000;
      await store.consume('user', s, 1);
      const ttl = await admin.pttl(store.keyFor('user', s));
      expect(ttl).toBeGreaterThan(50_000 + 60_000 - 1000);
      expect(ttl).toBeLessThanOrEqual(50_000 + 60_000);
    });
  });

  describe('one fixed window on Redis time (which test/store-conformance.test.ts cannot reach: it needs a clock)', () => {
    it('answers as the TypeScript step, the window start being when Redis opened it', async () => {
      const W = 3_600_000;
      const op = fc.record({
        kind: fc.constantFrom('consume', 'consume', 'consume', 'consume', 'peek', 'refund', 'reset'),
        cost: fc.oneof(fc.constantFrom(0, 1, 1, 2), fc.integer({ min: 0, max: 14 })),
      });
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 12 }),
          fc.array(op, { minLength: 1, maxLength: 30 }),
          async (L, ops) => {
            const s = fixed(L, W);
            const store = new RedisStore({ client, prefix: prefix() });
            const started = performance.now();
            // The model's clock: 0 when the window opened, then read off each answer's resetMs
            // (W - elapsed) and checked against real time.
            let states: (State | undefined)[] = [];
            let now = 0;
            const clock = (outcomes: Outcome[]) => {
              if (states[0] === undefined) return 0;
              const t = W - outcomes[0]!.resetMs;
              expect(t).toBeGreaterThanOrEqual(now);
              expect(t).toBeLessThanOrEqual(performance.now() - started + 2);
              return t;
            };
            for (const { kind, cost } of ops) {
              if (kind === 'consume') {
                const actual = await store.consume('user', s, cost);
                now = clock(actual);
                const expected = evaluate(states, now, s, cost);
                expect(actual).toEqual(expected.outcomes);
                if (expected.allowed) states = expected.states;
              } else if (kind === 'peek') {
                const actual = await store.peek('user', s);
                now = clock(actual);
                expect(actual).toEqual(peekOutcomes(states, now, s));
              } else if (kind === 'refund') {
                await store.refund('user', s, cost);
                states = refundStates(states, now, s, cost);
              } else {
                await store.reset('user', s);
                states = [];
              }
            }
            await store.reset('user', s);
          },
        ),
        { numRuns: 40 },
      );
    });

    it('opens a new window once the last one expired in Redis', async () => {
      const store = new RedisStore({ client, prefix: prefix() });
      const s = fixed(2, 60);
      expect((await store.consume('user', s, 2))[0]).toEqual({
        allowed: true,
        remaining: 0,
        resetMs: 60,
        retryAfterMs: 0,
        delayMs: 0,
      });
      const [denied] = await store.consume('user', s, 1);
      expect(denied!.allowed).toBe(false);
      expect(denied!.retryAfterMs).toBe(denied!.resetMs);
      expect(denied!.retryAfterMs).toBeLessThanOrEqual(60);
      // Real time is the point here: the window ends when Redis expires the key.
      await delay(denied!.retryAfterMs + 1);
      // No window: as the step says of cost 0, one would open now and end in W.
      expect(await store.peek('user', s)).toEqual([
        { allowed: true, remaining: 2, resetMs: 60, retryAfterMs: 0, delayMs: 0 },
      ]);
      await store.refund('user', s, 1);
      expect(await admin.exists(store.keyFor('user', s))).toBe(0);
      expect((await store.consume('user', s, 1))[0]).toEqual({
        allowed: true,
        remaining: 1,
        resetMs: 60,
        retryAfterMs: 0,
        delayMs: 0,
      });
    });
  });

  it('peek writes nothing', async () => {
    const store = new RedisStore({ client, prefix: prefix() });
    const s = set({ algorithm: 'token-bucket', limit: 5, window: '1m' });
    const key = store.keyFor('user', s);
    expect(await store.peek('user', s)).toEqual([
      { allowed: true, remaining: 5, resetMs: 0, retryAfterMs: 0, delayMs: 0 },
    ]);
    expect(await admin.exists(key)).toBe(0);
    await store.consume('user', s, 3);
    await admin.pexpire(key, 777_777);
    const before = await admin.getBuffer(key);
    expect(before).not.toBeNull();
    await store.peek('user', s);
    expect(await admin.getBuffer(key)).toEqual(before);
    expect(await admin.pttl(key)).toBeGreaterThan(770_000);
    const window = fixed(5);
    await store.consume('user', window, 2);
    const windowKey = store.keyFor('user', window);
    await admin.pexpire(windowKey, 777_777);
    const state = await packedState(admin, windowKey);
    expect((await store.peek('user', window))[0]).toMatchObject({ allowed: true, remaining: 3 });
    expect(await packedState(admin, windowKey)).toEqual(state);
    expect(await admin.pttl(windowKey)).toBeGreaterThan(770_000);
  });

  it('reset deletes the key', async () => {
    const store = new RedisStore({ client, prefix: prefix() });
    const s = fixed(2);
    await store.consume('user', s, 2);
    expect((await store.consume('user', s, 1))[0]!.allowed).toBe(false);
    await store.reset('user', s);
    expect(await admin.exists(store.keyFor('user', s))).toBe(0);
    expect((await store.consume('user', s, 1))[0]!.remaining).toBe(1);
  });

  it("keeps Retry-After tight with a test clock: the limiter's denied-key cache follows it", async () => {
    const time = { now: 1_000_000 };
    const store = new RedisStore({ client, prefix: prefix(), clock: () => time.now });
    // The cache is on by default for a RedisStore.
    const limiter = createLimiter({ policies: { algorithm: 'fixed-window', limit: 1, window: 1000 }, store });
    await limiter.consume('k');
    const denied = await limiter.consume('k');
    expect([denied.allowed, denied.retryAfterMs, denied.reason]).toEqual([false, 1000, undefined]);
    time.now += denied.retryAfterMs - 1;
    const cached = await limiter.consume('k');
    expect([cached.allowed, cached.retryAfterMs, cached.reason]).toEqual([false, 1, 'blocked-cache']);
    time.now += 1;
    const after = await limiter.consume('k');
    expect([after.allowed, after.reason]).toEqual([true, undefined]);
  });

  it('reads time from Redis TIME when no clock is given', async () => {
    const other = await connectedIoredis(inject('redisPort'));
    const p = prefix();
    const a = new RedisStore({ client, prefix: p });
    const b = new RedisStore({ client: other, prefix: p });
    const s = fixed(10, '1h');
    // The local clock is far off; the store never reads it.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2001-01-01T00:00:00Z'));
    try {
      const [first] = await a.consume('user', s, 1);
      const [second] = await b.consume('user', s, 1);
      expect(first).toMatchObject({ allowed: true, remaining: 9 });
      expect(second).toMatchObject({ allowed: true, remaining: 8 });
      // Same window, as seen from two clients: the second sees it a little later.
      expect(second!.resetMs).toBeLessThanOrEqual(first!.resetMs);
      expect(first!.resetMs - second!.resetMs).toBeLessThan(1000);
    } finally {
      vi.useRealTimers();
    }
    const [seconds, micros] = await admin.time();
    const redisNow = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    // The window opened at Redis's time.
    const key = a.keyFor('user', s);
    const [start, count] = (await packedState(admin, key))!;
    expect(count).toBe(2);
    expect(redisNow - start!).toBeGreaterThanOrEqual(0);
    expect(redisNow - start!).toBeLessThan(5_000);
    // Any other set keeps the time of its last change in its state.
    const bucket = set({ algorithm: 'token-bucket', limit: 10, window: '1h' });
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2001-01-01T00:00:00Z'));
    try {
      await a.consume('user', bucket, 1);
    } finally {
      vi.useRealTimers();
    }
    const [, last] = (await packedState(admin, a.keyFor('user', bucket)))!;
    const [seconds2, micros2] = await admin.time();
    const later = Number(seconds2) * 1000 + Math.floor(Number(micros2) / 1000);
    expect(later - last!).toBeGreaterThanOrEqual(0);
    expect(later - last!).toBeLessThan(5_000);
  });

  it('keeps values near 2^53 exact through Redis', async () => {
    let now = 1_700_000_000_003;
    const store = new RedisStore({ client, prefix: prefix(), clock: () => now });
    const L = 100_000_007;
    const W = 90_000_001;
    expect(L * W).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
    const s = set({ algorithm: 'token-bucket', limit: L, window: W });
    await store.consume('user', s, 1);
    // tokens * W after taking one token: 16 digits, which '%.14g' (tostring in Lua) would round.
    expect(await packedState(admin, store.keyFor('user', s))).toEqual([L * W - W, now, 0]);
    expect(String(L * W - W)).toHaveLength(16);
    const first = evaluate([], now, s, 1);
    expect(first.states[0]).toEqual([L * W - W, now]);
    now += 3;
    const expected = evaluate(first.states, now, s, 12_345);
    expect(await store.consume('user', s, 12_345)).toEqual(expected.outcomes);
    const [tokens, last] = expected.states[0]!;
    expect(await packedState(admin, store.keyFor('user', s))).toEqual([tokens, last, 0]);
    expect(String(tokens)).toHaveLength(16);
  });

  it('fails with a StoreError on a key of another type (WRONGTYPE) or a value not its own', async () => {
    const errors: StoreError[] = [];
    const store = new RedisStore({ client, prefix: prefix(), onError: (e) => errors.push(e) });
    const failures: unknown[] = [];
    const cases: [PolicySet, string, RegExp][] = [
      [fixed(5), 'not a number', /tollgate: the state at .* is not 1 policies long/],
      [set({ limit: 5, window: '1m' }), 'not 24 bytes', /tollgate: the state at .* is not 1 policies long/],
    ];
    for (const [s, garbage, message] of cases) {
      const key = store.keyFor('user', s);
      await admin.hset(key, 'field', '1');
      await admin.pexpire(key, 60_000);
      for (const run of [() => store.consume('user', s, 1), () => store.peek('user', s)]) {
        const failure = await run().catch((e: unknown) => e);
        expect(failure).toBeInstanceOf(StoreError);
        expect(String((failure as StoreError).cause)).toMatch(/WRONGTYPE/);
        failures.push(failure);
      }
      await admin.set(key, garbage, 'PX', 60_000);
      const failure = await store.consume('user', s, 1).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(StoreError);
      expect(String((failure as StoreError).cause)).toMatch(message);
      failures.push(failure);
      // Nothing was overwritten.
      expect(await admin.get(key)).toBe(garbage);
    }
    expect(errors).toEqual(failures);
  });

  describe('hostile keys', () => {
    const keys = [
      '{',
      '}',
      '{}',
      'a}b{c',
      '{user}',
      '*',
      '?[a-z]*',
      'line\r\nbreak',
      'line\nbreak',
      ' ',
      'with space',
      '',
      'x'.repeat(10_000),
      'x'.repeat(10_001),
      'x'.repeat(100),
      'x'.repeat(101),
      '日本語',
      '🚦',
      '\uD800',
      '\uD801',
      '\u0000',
      '#',
      '#abc',
      'one|two',
      'ip:10.0.0.1',
      'ip:2001:db8::/56',
      'hdr:x-api-key:abc',
    ];

    it.each(['standalone ioredis', 'an ioredis Cluster'])('work and stay separate on %s', async (name) => {
      let target: Redis | Cluster = client;
      if (name.includes('Cluster')) {
        const cluster = new Cluster(inject('clusterNodes'), { lazyConnect: true });
        await cluster.connect();
        toDispose.push(() => cluster.quit());
        target = cluster;
      }
      const store = new RedisStore({ client: target, prefix: prefix() });
      const s = fixed(100);
      // Key i is consumed i + 1 times: any two keys sharing state would show it.
      for (const [i, key] of keys.entries()) await store.consume(key, s, i + 1);
      for (const [i, key] of keys.entries()) {
        expect((await store.peek(key, s))[0]!.remaining, JSON.stringify(key.slice(0, 20))).toBe(99 - i);
      }
      for (const key of keys) {
        const redisKey = store.keyFor(key, s);
        expect(redisKey.length).toBeLessThanOrEqual(200);
        expect(redisKey).toMatch(/^t:[0-9a-f-]+:\{redis-test\|[^{}\s]*\}:[A-Za-z0-9_-]{16}$/);
      }
      expect(new Set(keys.map((k) => store.keyFor(k, s))).size).toBe(keys.length);
    });

    it('hash so that a hashed key never equals a raw one', () => {
      const store = new RedisStore({ client, prefix: 'p:' });
      const s = fixed(1);
      const hashed = store.keyFor('with space', s);
      const inner = /\|(.*)\}/.exec(hashed)![1]!;
      expect(inner).toMatch(/^#[A-Za-z0-9_-]{43}$/);
      // The hashed form, given as a key, is itself hashed (it holds '#'), so it cannot collide.
      expect(store.keyFor(inner, s)).not.toBe(hashed);
      expect(store.keyFor('plain-key_1.2:3/4@example.com', s)).toBe(
        `p:{redis-test|plain-key_1.2:3/4@example.com}:${hashed.slice(-16)}`,
      );
    });
  });

  it('answers each of many concurrent calls on its own, a wrong-type key among them', async () => {
    const own = await connectedIoredis(inject('redisPort'));
    const store = new RedisStore({ client: own, prefix: prefix() });
    const s = fixed(3);
    const broken = set({ limit: 3, window: '1m' });
    await admin.hset(store.keyFor('broken', broken), 'field', '1');
    await admin.pexpire(store.keyFor('broken', broken), 60_000);
    const calls = [
      ...Array.from({ length: 50 }, (_, i) => store.consume(`user-${i % 10}`, s, 1)),
      store.consume('broken', broken, 1),
      ...Array.from({ length: 9 }, (_, i) => store.peek(`user-${i}`, s)),
    ];
    const results = await Promise.allSettled(calls);
    const consumed = results.slice(0, 50).map((r) => (r as PromiseFulfilledResult<Outcome[]>).value[0]!);
    expect(consumed.filter((o) => o.allowed)).toHaveLength(30);
    expect(results[50]).toMatchObject({ status: 'rejected', reason: expect.any(StoreError) });
    expect(String((results[50] as PromiseRejectedResult).reason.cause)).toMatch(/WRONGTYPE/);
    expect(
      results.slice(51).map((r) => (r as PromiseFulfilledResult<Outcome[]>).value[0]!.remaining),
    ).toEqual(Array(9).fill(0));
  });

  it('works with ioredis auto-pipelining (standalone and Cluster)', async () => {
    const piped = await connectedIoredis(inject('redisPort'), { enableAutoPipelining: true });
    const cluster = new Cluster(inject('clusterNodes'), { lazyConnect: true, enableAutoPipelining: true });
    await cluster.connect();
    toDispose.push(() => cluster.quit());
    for (const target of [piped, cluster]) {
      const store = new RedisStore({ client: target, prefix: prefix() });
      const s = fixed(100);
      const results = await Promise.all(
        Array.from({ length: 300 }, (_, i) => store.consume(`k${i % 3}`, s, 1)),
      );
      expect(results.filter(([o]) => o!.allowed)).toHaveLength(300);
      const peeks = await Promise.all(['k0', 'k1', 'k2'].map((k) => store.peek(k, s)));
      expect(peeks.map(([o]) => o!.remaining)).toEqual([0, 0, 0]);
      const more = await Promise.all(Array.from({ length: 50 }, () => store.consume('k0', s, 1)));
      expect(more.filter(([o]) => o!.allowed)).toHaveLength(0);
    }
  });

  it('works on a node-redis cluster', async () => {
    const cluster = createCluster({
      rootNodes: inject('clusterNodes').map(({ host, port }) => ({ url: `redis://${host}:${port}` })),
    });
    await cluster.connect();
    toDispose.push(() => cluster.close());
    const store = new RedisStore({ client: cluster, prefix: prefix(), clock: () => 5_000_000 });
    const s = set([
      { name: 'fast', limit: 3, window: '1s', algorithm: 'fixed-window' },
      { name: 'slow', limit: 5, window: '1m', algorithm: 'token-bucket' },
    ]);
    // Keys spread over the slots of every master.
    for (let i = 0; i < 30; i++) {
      const key = `user-${i}`;
      expect((await store.consume(key, s, 3)).map((o) => o.allowed)).toEqual([true, true]);
      expect(await store.consume(key, s, 1)).toEqual<Outcome[]>([
        { allowed: false, remaining: 0, resetMs: 1000, retryAfterMs: 1000, delayMs: 0 },
        { allowed: true, remaining: 2, resetMs: 36_000, retryAfterMs: 0, delayMs: 0 },
      ]);
      await store.refund(key, s, 1);
      expect((await store.peek(key, s)).map((o) => o.remaining)).toEqual([1, 3]);
      await store.reset(key, s);
      expect((await store.peek(key, s)).map((o) => o.remaining)).toEqual([3, 5]);
    }
  });

  it('does not close a client it did not create', async () => {
    const own = await connectedIoredis(inject('redisPort'));
    const store = new RedisStore({ client: own, prefix: prefix() });
    await store.consume('user', fixed(3), 1);
    await store.close();
    expect(own.status).toBe('ready');
    expect(await own.ping()).toBe('PONG');
    await expect(store.consume('user', fixed(3), 1)).rejects.toThrow(StoreError);
    // Every call on a closed store is a StoreError, as on a closed MemoryStore.
    await expect(store.peek('user', fixed(3))).rejects.toThrow(/the store was closed/);
    await expect(store.refund('user', fixed(3), 1)).rejects.toSatisfy(isStoreError);
    await expect(store.reset('user', fixed(3))).rejects.toSatisfy(isStoreError);
  });

  it('waits for a client connecting for the first time (issue 11), fails at once for one nobody connects', async () => {
    const errors: StoreError[] = [];
    const s = fixed(3);
    // As a script would: a client created a moment ago (still connecting), used at once.
    const fresh = new Redis({ host: '127.0.0.1', port: inject('redisPort') });
    toDispose.push(() => fresh.quit());
    expect(fresh.status).toBe('connecting');
    const store = new RedisStore({ client: fresh, prefix: prefix(), onError: (e) => errors.push(e) });
    expect((await store.consume('user', s, 1))[0]!.remaining).toBe(2);
    // lazyConnect: the first call asks it to connect and waits too; reset() likewise.
    const lazy = ioredis(inject('redisPort'));
    toDispose.push(() => lazy.quit());
    expect(lazy.status).toBe('wait');
    const lazyStore = new RedisStore({ client: lazy, prefix: prefix(), onError: (e) => errors.push(e) });
    const [first, second] = await Promise.all([
      lazyStore.consume('user', s, 1),
      lazyStore.consume('user', s, 1),
    ]);
    expect([first![0]!.remaining, second![0]!.remaining].sort()).toEqual([1, 2]);
    const resetting = new Redis({ host: '127.0.0.1', port: inject('redisPort') });
    toDispose.push(() => resetting.quit());
    await new RedisStore({ client: resetting, prefix: prefix() }).reset('user', s);
    // node-redis: `connect()` called but not awaited.
    const connecting = createClient({ socket: { host: '127.0.0.1', port: inject('redisPort') } });
    void connecting.connect();
    toDispose.push(() => connecting.close());
    const nodeStore = new RedisStore({
      client: connecting,
      prefix: prefix(),
      onError: (e) => errors.push(e),
    });
    expect((await nodeStore.consume('user', s, 1))[0]!.remaining).toBe(2);
    expect(errors).toEqual([]);

    const unopened = createClient({ socket: { host: '127.0.0.1', port: inject('redisPort') } });
    const other = new RedisStore({ client: unopened, prefix: prefix(), onError: (e) => errors.push(e) });
    const started = performance.now();
    const failure = await other.consume('user', s, 1).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(50);
    expect(isStoreError(failure)).toBe(true);
    expect(String((failure as Error).message)).toMatch(/node-redis client is not open/);
    expect(errors).toHaveLength(1);
  });

  it('waits for a first connection no longer than timeoutMs, and queues nothing that could replay', async () => {
    // Nothing listens there: ioredis keeps trying to connect.
    const port = await findFreePort();
    const never = new Redis({ host: '127.0.0.1', port, retryStrategy: () => 50 });
    never.on('error', () => undefined);
    toDispose.push(() => never.disconnect());
    const store = new RedisStore({ client: never, prefix: prefix(), timeoutMs: 100 });
    const started = performance.now();
    const failure = await store.consume('user', fixed(3), 1).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(150);
    expect(String((failure as Error).message)).toMatch(/did not connect within 100 ms/);
    expect(never.status).not.toBe('ready');
  });
});

describe('RedisStore on a dedicated server', () => {
  let server: RedisServer;
  let admin: Redis;
  beforeAll(async () => {
    server = await startRedis();
    admin = ioredis(server.port, { maxRetriesPerRequest: null });
    await admin.connect();
  });
  afterAll(async () => {
    admin?.disconnect();
    await server?.stop();
  });

  /** Top-level commands the server ran while `run` ran (commands inside scripts excluded). */
  async function commandsDuring(run: () => Promise<unknown>): Promise<string[]> {
    const monitor = await admin.monitor();
    const seen: string[] = [];
    const marker = `marker-${randomUUID()}`;
    let done = false;
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (args[1] === marker) done = true;
      else if (source !== 'lua' && !done) seen.push(String(args[0]).toLowerCase());
    });
    try {
      await run();
      await admin.echo(marker);
      await until(() => done, 'MONITOR to catch up');
    } finally {
      monitor.disconnect();
    }
    return seen;
  }

  async function evalCalls(): Promise<number> {
    const info = await admin.info('commandstats');
    const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
    return calls('evalsha') + calls('eval');
  }

  it('sends exactly one command per consume, peek and refund, whatever the number of policies', async () => {
    const ioClient = await connectedIoredis(server.port);
    const nodeClient = await connectedNodeRedis(server.port);
    const s = set([
      { name: 'a', limit: 10, window: '1s' },
      { name: 'b', algorithm: 'fixed-window', limit: 50, window: '1m' },
      { name: 'c', algorithm: 'token-bucket', limit: 5, window: '1s', burst: 20 },
      { name: 'd', algorithm: 'leaky-bucket', limit: 5, window: '1s', burst: 20 },
    ]);
    for (const client of [ioClient, nodeClient]) {
      const store = new RedisStore({ client, prefix: prefix() });
      // ioredis sends each script with EVAL the first time on a connection, EVALSHA after.
      await store.consume('warm-up', s, 1);
      await store.peek('warm-up', s);
      await store.refund('warm-up', s, 1);
      await admin.config('RESETSTAT');
      const before = await evalCalls();
      const seen = await commandsDuring(async () => {
        for (let i = 0; i < 25; i++) await store.consume(`user-${i % 5}`, s, 1);
        for (let i = 0; i < 5; i++) await store.peek(`user-${i}`, s);
        for (let i = 0; i < 5; i++) await store.refund(`user-${i}`, s, 1);
        await Promise.all(Array.from({ length: 15 }, (_, i) => store.consume(`user-${i}`, s, 2)));
      });
      expect(seen).toEqual(Array(50).fill('evalsha'));
      expect((await evalCalls()) - before).toBe(50);
    }
  });

  it("a store in use reads Redis time from its scripts' replies: 30 s of decisions send no TIME (ioredis, node-redis)", async () => {
    const s = set({ name: 'a', limit: 1000, window: '1m' });
    for (const client of [await connectedIoredis(server.port), await connectedNodeRedis(server.port)]) {
      // Only performance.now() is faked: sockets and timers run for real; the store's clock jumps.
      vi.useFakeTimers({ toFake: ['performance'] });
      try {
        const store = new RedisStore({ client, prefix: prefix() });
        // The first call finds no reading of Redis time: it asks TIME beside its script (and the
        // script may be new to the server: EVALSHA, NOSCRIPT, EVAL).
        const first = await commandsDuring(() => store.consume('warm-up', s, 1));
        expect(first.filter((name) => name === 'time')).toEqual(['time']);
        const seen = await commandsDuring(async () => {
          for (let i = 0; i < 15; i++) {
            vi.advanceTimersByTime(2000);
            expect((await store.consume(`user-${i % 3}`, s, 1))[0]!.allowed).toBe(true);
          }
        });
        // Without the replies' readings the store would ask TIME every 10 s (three times here).
        expect(seen).toEqual(Array(15).fill('evalsha'));
        // An idle store asks again with its next decision.
        vi.advanceTimersByTime(11_000);
        expect((await commandsDuring(() => store.consume('later', s, 1))).sort()).toEqual([
          'evalsha',
          'time',
        ]);
      } finally {
        vi.useRealTimers();
      }
    }
  });

  it('a set with a concurrency policy costs one command per decision, plus one per release (issue 12)', async () => {
    const ioClient = await connectedIoredis(server.port);
    const nodeClient = await connectedNodeRedis(server.port);
    const policies: Policy[] = [
      { name: 'in-flight', algorithm: 'concurrency', limit: 100, lease: '1m' },
      { name: 'rate', limit: 1000, window: '1m' },
    ];
    for (const client of [ioClient, nodeClient]) {
      const limiter = createLimiter({
        policies,
        store: new RedisStore({ client, prefix: prefix() }),
        blockedCache: false,
        logger: { warn() {}, error() {} },
      });
      // ioredis sends each script with EVAL the first time on a connection, EVALSHA after.
      await (await limiter.consume('warm-up')).release?.();
      await limiter.peek('warm-up');
      await admin.config('RESETSTAT');
      const before = await evalCalls();
      const seen = await commandsDuring(async () => {
        const held = [];
        for (let i = 0; i < 20; i++) held.push(await limiter.consume(`user-${i % 4}`));
        expect(held.every((d) => d.allowed && d.release !== undefined)).toBe(true);
        for (const decision of held) await decision.release!();
        // Released twice: nothing more is sent.
        for (const decision of held.slice(0, 5)) await decision.release!();
        await Promise.all(Array.from({ length: 10 }, (_, i) => limiter.consume(`user-${i}`, { cost: 0 })));
      });
      // 20 consumes + 20 releases + 10 cost-0 consumes (which hold nothing, so release nothing).
      expect(seen).toEqual(Array(50).fill('evalsha'));
      expect((await evalCalls()) - before).toBe(50);
    }
  });

  it('a concurrency policy across SCRIPT FLUSH: every slot counted and released (ioredis, node-redis)', async () => {
    for (const client of [await connectedIoredis(server.port), await connectedNodeRedis(server.port)]) {
      const errors: StoreError[] = [];
      const store = new RedisStore({ client, prefix: prefix(), onError: (e) => errors.push(e) });
      const limiter = createLimiter({
        policies: [
          { name: 'in-flight', algorithm: 'concurrency', limit: 3, lease: '1m' },
          { name: 'rate', algorithm: 'fixed-window', limit: 1000, window: '1h' },
        ],
        store,
        blockedCache: false,
        logger: { warn() {}, error() {} },
      });
      for (let round = 0; round < 5; round++) {
        await admin.script('FLUSH');
        const held = await Promise.all([1, 2, 3, 4].map(() => limiter.consume('user')));
        expect(held.map((d) => d.allowed).sort()).toEqual([false, true, true, true]);
        await admin.script('FLUSH');
        await Promise.all(held.map((d) => d.release?.()));
        await admin.script('FLUSH');
        expect((await limiter.peek('user')).policies.map((p) => p.remaining)).toEqual([
          3,
          1000 - 3 * (round + 1),
        ]);
      }
      expect(errors).toEqual([]);
    }
  });

  it("a reservation's settle after SCRIPT FLUSH answers with its slot freed (ioredis, node-redis)", async () => {
    for (const client of [await connectedIoredis(server.port), await connectedNodeRedis(server.port)]) {
      const errors: StoreError[] = [];
      const store = new RedisStore({ client, prefix: prefix(), onError: (e) => errors.push(e) });
      const limiter = createLimiter({
        policies: [
          { name: 'rate', algorithm: 'fixed-window', limit: 5, window: '1h', maxDebt: 0 },
          { name: 'in-flight', algorithm: 'concurrency', limit: 2, lease: '1m' },
        ],
        store,
        blockedCache: false,
        logger: { warn() {}, error() {} },
      });
      await admin.script('FLUSH');
      // A reservation that takes no slot loads the consume and settle scripts again, not the release
      // script: the next settle's release is answered NOSCRIPT and sent again after the settle.
      await (await limiter.reserve('warm-up', { cost: 0 })).settle(0);
      const reservation = await limiter.reserve('user', { cost: 3 });
      expect(reservation.decision.policies.map((p) => p.remaining)).toEqual([2, 1]);
      const settled = await reservation.settle(6);
      // 6 of 5 with maxDebt 0: 5 counted, 1 uncharged; the slot is free again.
      expect(settled.policies.map((p) => [p.name, p.remaining, p.resetMs > 0])).toEqual([
        ['rate', 0, true],
        ['in-flight', 2, false],
      ]);
      expect((await limiter.peek('user')).policies.map((p) => p.remaining)).toEqual([0, 2]);
      expect(errors).toEqual([]);
    }
  });

  it('answers every request across SCRIPT FLUSH (ioredis, auto-pipelined ioredis, node-redis)', async () => {
    const clients = [
      await connectedIoredis(server.port),
      await connectedIoredis(server.port, { enableAutoPipelining: true }),
      await connectedNodeRedis(server.port),
    ];
    const errors: StoreError[] = [];
    for (const client of clients) {
      const store = new RedisStore({ client, prefix: prefix(), onError: (e) => errors.push(e) });
      const s = fixed(1000);
      let expected = 1000;
      for (let round = 0; round < 10; round++) {
        await admin.script('FLUSH');
        const outcomes = await Promise.all([
          store.consume('user', s, 1),
          store.consume('user', s, 2),
          store.peek('user', s),
        ]);
        expected -= 3;
        expect(outcomes[1]![0]!.allowed).toBe(true);
        await admin.script('FLUSH');
        await store.refund('user', s, 1);
        expected += 1;
        await admin.script('FLUSH');
        expect((await store.peek('user', s))[0]!.remaining).toBe(expected);
      }
    }
    expect(errors).toEqual([]);
  });

  it('rejects with a StoreError within timeoutMs when Redis does not answer', async () => {
    for (const client of [await connectedIoredis(server.port), await connectedNodeRedis(server.port)]) {
      const errors: StoreError[] = [];
      const store = new RedisStore({
        client,
        prefix: prefix(),
        timeoutMs: 100,
        onError: (e) => errors.push(e),
      });
      const s = fixed(5);
      await store.consume('user', s, 1);
      // Every other client's commands wait until the pause ends: a black hole for 1 s.
      await admin.call('CLIENT', 'PAUSE', '600', 'ALL');
      const started = performance.now();
      const results = await Promise.allSettled([
        store.consume('user', s, 1),
        store.peek('user', s),
        store.refund('user', s, 1),
        store.reset('user', s),
      ]);
      const elapsed = performance.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(99);
      expect(elapsed).toBeLessThan(800);
      for (const result of results) {
        expect(result.status).toBe('rejected');
        const reason = (result as PromiseRejectedResult).reason as StoreError;
        expect(reason).toBeInstanceOf(StoreError);
        expect(reason.message).toMatch(/no reply from Redis within 100 ms/);
      }
      expect(errors).toHaveLength(4);
      // Once the pause is over the store answers again.
      await until(async () => (await store.peek('user', s).catch(() => undefined)) !== undefined, 'recovery');
    }
  });

  it('fails with a StoreError against a read-only replica (READONLY), yet peeks there', async () => {
    const replica = await startRedis({ replicaOf: server.port });
    toDispose.push(() => replica.stop());
    const client = await connectedIoredis(replica.port);
    await until(
      async () => (await client.info('replication')).includes('master_link_status:up'),
      'the replica to sync',
    );
    const errors: StoreError[] = [];
    const store = new RedisStore({ client, prefix: prefix(), onError: (e) => errors.push(e) });
    const s = fixed(5);
    const failure = await store.consume('user', s, 1).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(StoreError);
    expect(String((failure as StoreError).cause)).toMatch(/READONLY/);
    expect(errors).toEqual([failure]);
    expect((await store.peek('user', s))[0]!.remaining).toBe(5);
  });

  it('fails fast while Redis is down and recovers after a restart', async () => {
    const errors: StoreError[] = [];
    const io = await connectedIoredis(server.port, { maxRetriesPerRequest: 0, retryStrategy: () => 20 });
    io.on('error', () => undefined);
    const node = createClient({
      socket: { host: '127.0.0.1', port: server.port, reconnectStrategy: () => 20 },
    });
    node.on('error', () => undefined);
    await node.connect();
    toDispose.push(() => node.destroy());
    const stores = [io, node].map(
      (client) => new RedisStore({ client, prefix: prefix(), onError: (e) => errors.push(e) }),
    );
    const s = fixed(5);
    for (const store of stores) await store.consume('user', s, 1);

    await server.kill();
    await until(() => io.status !== 'ready' && !node.isReady, 'the clients to notice');
    for (const store of stores) {
      const started = performance.now();
      await expect(store.consume('user', s, 1)).rejects.toThrow(/Redis unavailable/);
      expect(performance.now() - started).toBeLessThan(50);
    }
    expect(errors.length).toBe(2);

    await server.restart();
    await until(() => io.status === 'ready' && node.isReady, 'the clients to reconnect');
    // A fresh server: empty script cache and no state. Nothing was queued and replayed.
    for (const store of stores) {
      expect(await store.consume('user', s, 1)).toEqual([
        { allowed: true, remaining: 4, resetMs: expect.any(Number), retryAfterMs: 0, delayMs: 0 },
      ]);
    }
  });
});

describe('RedisStore subscriber for lifted bans, when it cannot be made', () => {
  it('a client whose duplicate() throws: reported to onError and the logger, nothing throws, no subscriber', async () => {
    // An ioredis `Redis` in all the store looks at, ready, whose duplicate fails.
    const client = Object.assign(ioredis(inject('redisPort')), {
      duplicate: () => {
        throw new Error('no duplicates here');
      },
    });
    await client.connect();
    try {
      const errors: StoreError[] = [];
      const warned: string[] = [];
      const store = new RedisStore({ client, prefix: `t:${randomUUID()}:`, onError: (e) => errors.push(e) });
      const limiter = createLimiter({
        policies: { limit: 1, window: '1m' },
        store,
        ban: {},
        logger: { warn: (m: string) => warned.push(m), error: () => undefined },
      });
      expect(errors.map((e) => e.message)).toEqual(['RedisStore subscribe failed: no duplicates here']);
      expect(warned).toEqual([expect.stringMatching(/^\[TOLLGATE_BAN_PUSH_LOST\] .*no duplicates here/)]);
      await limiter.ban('k', 60_000);
      expect((await limiter.consume('k')).reason).toBe('banned');
      await limiter.unban('k');
      expect((await limiter.consume('k')).allowed).toBe(true);
      store.close();
    } finally {
      await client.quit();
    }
  });
});
