/**
 * Shadow policies (issue 13) on every store, through the limiter: a shadow policy counts exactly as
 * if it were enforced and never denies, and the enforced policies beside it decide as if it were
 * absent. Virtual clocks throughout, except the one test of Redis expiry, which is about real time.
 */
import { randomUUID } from 'node:crypto';
import {
  type Clock,
  createLimiter,
  type Decision,
  type Limiter,
  MemoryStore,
  type Policy,
  type RatePolicy,
  type Store,
} from '@tollgate/core';
import { RedisStore } from '@tollgate/redis';
import fc from 'fast-check';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

/** A virtual epoch that is not a multiple of any usual window. */
const START = 1_700_000_123_457;

interface Variant {
  name: string;
  /** Property runs: Redis round trips cost more than the memory store's calls. */
  runs: number;
  setup(): Promise<{ make(clock: Clock): Store; teardown(): Promise<void> }>;
}

const variants: Variant[] = [
  {
    name: 'MemoryStore',
    runs: 100,
    async setup() {
      return { make: (clock) => new MemoryStore({ clock }), teardown: async () => undefined };
    },
  },
  {
    name: 'RedisStore',
    runs: 25,
    async setup() {
      const client = new Redis({ host: '127.0.0.1', port: inject('redisPort'), lazyConnect: true });
      await client.connect();
      return {
        make: (clock) => new RedisStore({ client, clock, prefix: `shadow:${randomUUID()}:` }),
        teardown: async () => void (await client.quit()),
      };
    },
  },
  {
    name: 'RedisStore on a Cluster',
    runs: 10,
    async setup() {
      const client = new Cluster(inject('clusterNodes'), { lazyConnect: true });
      await client.connect();
      return {
        make: (clock) => new RedisStore({ client, clock, prefix: `shadow:${randomUUID()}:` }),
        teardown: async () => void (await client.quit()),
      };
    },
  },
];

/** One recorded request: wait, then ask for `cost` units on `key`. */
interface Request {
  advance: number;
  key: string;
  cost: number;
}

/** A fixed recording: bursts and pauses on three keys, from a seeded generator (the same every run). */
function recording(length: number, seed: number): Request[] {
  let state = seed;
  const next = (n: number) => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state % n;
  };
  return Array.from({ length }, () => ({
    advance: [0, 0, 0, 1, 7, 40, 250, 999, 4000][next(9)]!,
    key: `user-${next(3)}`,
    cost: [1, 1, 1, 1, 2, 0, 3][next(7)]!,
  }));
}

/** The fields by which an enforced decision is judged, shadow policies' statuses left out. */
function enforcedView(decision: Decision) {
  return {
    allowed: decision.allowed,
    limit: decision.limit,
    remaining: decision.remaining,
    resetMs: decision.resetMs,
    retryAfterMs: decision.retryAfterMs,
    delayMs: decision.delayMs,
    policy: decision.policy.name,
    reason: decision.reason,
    policies: decision.policies
      .filter((p) => p.policy.mode !== 'shadow')
      .map(({ name, allowed, remaining, resetMs, retryAfterMs, delayMs }) => ({
        name,
        allowed,
        remaining,
        resetMs,
        retryAfterMs,
        delayMs,
      })),
  };
}

const ALGORITHM_CASES: RatePolicy[] = [
  { algorithm: 'fixed-window', limit: 5, window: '1s' },
  { algorithm: 'sliding-window', limit: 7, window: '2s' },
  { algorithm: 'token-bucket', limit: 3, window: '1s', burst: 6 },
  { algorithm: 'leaky-bucket', limit: 4, window: '1s', burst: 5 },
  { algorithm: 'leaky-bucket', limit: 2, window: 700, delay: false },
];

const policy: fc.Arbitrary<RatePolicy> = fc.oneof(
  fc.record({
    algorithm: fc.constantFrom('fixed-window' as const, 'sliding-window' as const),
    limit: fc.integer({ min: 1, max: 8 }),
    window: fc.oneof(fc.integer({ min: 1, max: 3000 }), fc.constantFrom('1s' as const, '1m' as const)),
  }),
  fc.record({
    algorithm: fc.constantFrom('token-bucket' as const, 'leaky-bucket' as const),
    limit: fc.integer({ min: 1, max: 8 }),
    window: fc.oneof(fc.integer({ min: 1, max: 3000 }), fc.constant('1s' as const)),
    burst: fc.integer({ min: 1, max: 12 }),
  }),
);

const traffic = fc.array(
  fc.record({
    advance: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 4000 })),
    key: fc.constantFrom('a', 'b'),
    cost: fc.constantFrom(0, 1, 1, 1, 2, 3),
  }),
  { minLength: 1, maxLength: 40 },
);

describe.each(variants)('$name', (variant) => {
  let env: Awaited<ReturnType<Variant['setup']>>;
  beforeAll(async () => {
    env = await variant.setup();
  });
  afterAll(async () => {
    await env?.teardown();
  });

  /**
   * Limiters on one fresh store and one virtual clock, each under its own name. No denied-key cache:
   * it replays a denial's numbers as they were, and these tests compare every number the store gives.
   */
  function world() {
    let now = START;
    const store = env.make(() => now);
    const limiter = (policies: Policy[]): Limiter =>
      createLimiter({
        policies,
        store,
        name: `l${randomUUID().slice(0, 8)}`,
        logger: silent,
        blockedCache: false,
      });
    return {
      limiter,
      advance: (ms: number) => {
        now += ms;
      },
      close: () => store.close?.(),
    };
  }

  it.each(ALGORITHM_CASES)(
    'the same recorded traffic: as many shadow-limited decisions in shadow as limited ones enforced (%o)',
    async (p) => {
      const requests = recording(400, 42);
      const results: Record<'enforce' | 'shadow', Decision[]> = { enforce: [], shadow: [] };
      for (const mode of ['enforce', 'shadow'] as const) {
        const w = world();
        const limiter = w.limiter([{ ...p, name: 'new-limit', mode }]);
        for (const { advance, key, cost } of requests) {
          w.advance(advance);
          results[mode].push(await limiter.consume(key, { cost }));
        }
        await w.close();
      }
      const limited = results.enforce.filter((d) => !d.allowed).length;
      const shadowLimited = results.shadow.filter((d) => d.shadowLimited?.includes('new-limit')).length;
      expect(results.shadow.every((d) => d.allowed)).toBe(true);
      // Not vacuous: the recording is tight enough to be limited, loose enough to get through.
      expect(limited).toBeGreaterThanOrEqual(10);
      expect(limited).toBeLessThan(380);
      expect(shadowLimited).toBe(limited);
      // Request by request, not only in total, with the same numbers.
      results.enforce.forEach((enforced, i) => {
        const shadow = results.shadow[i]!;
        expect(shadow.shadowLimited !== undefined, `request ${i}`).toBe(!enforced.allowed);
        const { allowed, remaining, resetMs, retryAfterMs } = shadow.policies[0]!;
        expect({ allowed, remaining, resetMs, retryAfterMs }, `request ${i}`).toEqual({
          allowed: enforced.allowed,
          remaining: enforced.remaining,
          resetMs: enforced.resetMs,
          retryAfterMs: enforced.retryAfterMs,
        });
        // Never held either: a shadow leaky bucket delays nothing.
        expect(shadow.delayMs).toBe(0);
      });
    },
  );

  it('an enforced policy next to a shadow one decides exactly as if the shadow one were absent (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(policy, { minLength: 1, maxLength: 2 }),
        fc.array(policy, { minLength: 1, maxLength: 2 }),
        traffic,
        async (enforced, shadows, requests) => {
          const e = enforced.map((p, i) => ({ ...p, name: `e${i}` }));
          const s = shadows.map((p, i) => ({ ...p, name: `s${i}`, mode: 'shadow' as const }));
          const w = world();
          const both = w.limiter([...e, ...s]);
          const alone = w.limiter(e);
          // Each shadow policy, enforced on its own, fed only the requests the set let through: the
          // state it evolves in shadow is exactly the one it would have as the only policy there.
          const references = s.map((p) => w.limiter([{ ...p, mode: 'enforce' }]));
          for (const { advance, key, cost } of requests) {
            w.advance(advance);
            const withShadow = await both.consume(key, { cost });
            const without = await alone.consume(key, { cost });
            expect(enforcedView(withShadow)).toEqual(enforcedView(without));
            if (!withShadow.allowed) continue;
            const expected: string[] = [];
            for (const [i, reference] of references.entries()) {
              const r = await reference.consume(key, { cost });
              const status = withShadow.policies[e.length + i]!;
              expect(status.allowed).toBe(r.allowed);
              expect(status.remaining).toBe(r.remaining);
              expect(status.retryAfterMs).toBe(r.retryAfterMs);
              if (!r.allowed) expected.push(s[i]!.name);
            }
            expect(withShadow.shadowLimited).toEqual(expected.length === 0 ? undefined : expected);
          }
          await w.close();
        },
      ),
      { numRuns: variant.runs },
    );
  });

  it('with shadow policies only, every request is allowed and the tightest stands as binding', async () => {
    const w = world();
    const limiter = w.limiter([
      { name: 'loose', limit: 10, window: '1m', mode: 'shadow' },
      { name: 'tight', algorithm: 'fixed-window', limit: 2, window: '1m', mode: 'shadow' },
    ]);
    const decisions: Decision[] = [];
    for (let i = 0; i < 4; i++) decisions.push(await limiter.consume('k'));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, true]);
    expect(decisions.map((d) => d.shadowLimited)).toEqual([undefined, undefined, ['tight'], ['tight']]);
    expect(decisions[3]).toMatchObject({ limit: 2, remaining: 0, retryAfterMs: 0, delayMs: 0 });
    expect(decisions[3]!.policy.name).toBe('tight');
    // The loose one counted every request it allowed, the tight one only its first two.
    expect(decisions[3]!.policies.map((p) => [p.name, p.remaining])).toEqual([
      ['loose', 6],
      ['tight', 0],
    ]);
    await w.close();
  });
});

describe('RedisStore expiry (real time)', () => {
  let client: Redis;
  beforeAll(async () => {
    client = new Redis({ host: '127.0.0.1', port: inject('redisPort'), lazyConnect: true });
    await client.connect();
  });
  afterAll(async () => {
    await client.quit();
  });

  it('keeps a shadow policy’s state as long as it lasts, though only a shorter policy wrote since', async () => {
    const store = new RedisStore({ client, prefix: `shadow-ttl:${randomUUID()}:` });
    const limiter = createLimiter({
      store,
      blockedCache: false,
      logger: silent,
      policies: [
        { name: 'short', algorithm: 'fixed-window', limit: 100, window: 300 },
        { name: 'long', algorithm: 'fixed-window', limit: 1, window: '5s', mode: 'shadow' },
      ],
    });
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    expect((await limiter.consume('k')).shadowLimited).toBeUndefined();
    await sleep(400);
    // Allowed by 'short' in a new window, which writes a state that expires in 300 ms; 'long' keeps
    // its own, which lasts seconds more.
    expect((await limiter.consume('k')).shadowLimited).toEqual(['long']);
    await sleep(600);
    // Had the key expired with 'short', 'long' would have started over and allowed this.
    const later = await limiter.consume('k');
    expect(later.allowed).toBe(true);
    expect(later.shadowLimited).toEqual(['long']);
    expect(later.policies[0]!.remaining).toBe(99);
  });
});

const silent = { warn: () => {}, error: () => {} };
