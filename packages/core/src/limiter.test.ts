import { afterEach, describe, expect, test, vi } from 'vitest';
import { ConfigError, isConfigError, StoreError } from './errors.js';
import { createLimiter, type LimiterOptions } from './limiter.js';
import { MemoryStore } from './memory-store.js';
import type { Decision, Logger, Outcome, Policy, PolicySet, Store } from './types.js';
import { WARNINGS } from './warnings.js';

const INF = Number.POSITIVE_INFINITY;
const HOUR = 3_600_000;

/** A logger that records what it is given. */
function recorder() {
  const warn: string[] = [];
  const error: string[] = [];
  const logger: Logger = { warn: (m) => warn.push(m), error: (m) => error.push(m) };
  return { logger, warn, error };
}

/**
 * A real store in front of a MemoryStore that counts its calls and fails (throws, like a dropped
 * connection) while `failing` is set.
 */
class FlakyStore implements Store {
  failing = false;
  readonly calls = { consume: 0, peek: 0, refund: 0, reset: 0, close: 0 };

  constructor(
    readonly inner: MemoryStore,
    readonly remote = false,
  ) {}

  private enter(method: keyof FlakyStore['calls']) {
    this.calls[method]++;
    if (this.failing) throw new Error('connect ECONNREFUSED 127.0.0.1:6390');
  }

  async consume(key: string, set: PolicySet, cost: number): Promise<Outcome[]> {
    this.enter('consume');
    return this.inner.consume(key, set, cost);
  }
  async peek(key: string, set: PolicySet): Promise<Outcome[]> {
    this.enter('peek');
    return this.inner.peek(key, set);
  }
  async refund(key: string, set: PolicySet, cost: number): Promise<void> {
    this.enter('refund');
    return this.inner.refund(key, set, cost);
  }
  async reset(key: string, set: PolicySet): Promise<void> {
    this.enter('reset');
    return this.inner.reset(key, set);
  }
  async close(): Promise<void> {
    this.calls.close++;
    await this.inner.close();
  }
}

/** A virtual clock shared by the stores (t) and the limiter's own timers (faked `performance`). */
function virtualTime() {
  vi.useFakeTimers({ toFake: ['performance'] });
  const clock = { t: 1_000_000 };
  return {
    clock: () => clock.t,
    advance(ms: number) {
      clock.t += ms;
      vi.advanceTimersByTime(ms);
    },
    get now() {
      return clock.t;
    },
  };
}

afterEach(() => {
  vi.useRealTimers();
});

const view = (d: Decision) => ({
  allowed: d.allowed,
  remaining: d.remaining,
  resetMs: d.resetMs,
  retryAfterMs: d.retryAfterMs,
  delayMs: d.delayMs,
});

function configError(fn: () => unknown, ...fragments: string[]) {
  expect(fn).toThrow(ConfigError);
  try {
    fn();
  } catch (error) {
    for (const fragment of fragments) expect((error as Error).message).toContain(fragment);
  }
}

async function rejectsConfig(promise: Promise<unknown>, ...fragments: string[]) {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  for (const fragment of fragments) expect((error as Error).message).toContain(fragment);
}

describe('createLimiter validates every option at construction', () => {
  const policies: Policy = { limit: 10, window: '1s' };
  const create = (options: Record<string, unknown>) => () =>
    createLimiter(options as unknown as LimiterOptions);

  test('options that are not an object', () => {
    configError(create(undefined as never), '`options`', 'an object', '`undefined`');
    configError(create(null as never), '`options`', 'an object', '`null`');
  });

  test('unknown option names', () => {
    configError(
      create({ policies, windowMs: 1000 }),
      '`windowMs`',
      '`policies`, `store`, `name`, `onStoreError`, `fallback`, `probeIntervalMs`, `blockedCache`, `logger`',
    );
    configError(create({ policies, max: 10 }), '`max`');
    configError(create({ policies, probeInterval: 10 }), 'Did you mean `probeIntervalMs`?');
    configError(create({ policies, Store: 10 }), 'Did you mean `store`?');
  });

  test('probeIntervalMs takes milliseconds or a duration string, checked by the duration parser', () => {
    expect(() => create({ policies, probeIntervalMs: '2s' })()).not.toThrow();
    expect(() => create({ policies, probeIntervalMs: 250 })()).not.toThrow();
    configError(create({ policies, probeIntervalMs: '2 s' }), '`probeIntervalMs`', '"2 s" (string)');
    configError(create({ policies, probeIntervalMs: 0 }), '`probeIntervalMs`', 'positive');
  });

  test('no policies: a limiter whose policies come with each call', () => {
    expect(createLimiter({}).policies).toBeUndefined();
    expect(createLimiter({ name: 'tiers' }).policies).toBeUndefined();
  });

  test.each([
    [0, '`0` (number)'],
    [-1, '`-1` (number)'],
    [1.5, '`1.5` (number)'],
    [Number.NaN, '`NaN` (number)'],
    [INF, '`Infinity` (number)'],
    ['10', '"10" (string)'],
  ])('limit %j, in one policy and in a list', (limit, given) => {
    configError(
      create({ policies: { limit, window: '1s' } }),
      '`policies.limit`',
      'a positive integer',
      given,
    );
    configError(
      create({ policies: [policies, { name: 'b', limit, window: '1s' }] }),
      '`policies[1].limit`',
      'a positive integer',
      given,
    );
  });

  test.each([
    [0, 'a positive whole number of milliseconds', '`0` (number)'],
    ['abc', "`'500ms'`, `'10s'`, `'1m'`, `'1h'` or `'1d'`", '"abc" (string)'],
    [-5, 'a positive whole number of milliseconds', '`-5` (number)'],
    [2 ** 51 + 1, 'at most 2251799813685248 ms', '`2251799813685249` (number)'],
    ['1.5ms', 'a whole number and a unit with no space', '"1.5ms" (string)'],
  ])('window %j', (window, expected, given) => {
    configError(create({ policies: { limit: 10, window } }), '`policies.window`', expected, given);
  });

  test('unknown algorithm, unknown policy option, burst and delay where they do not apply', () => {
    configError(
      create({ policies: { algorithm: 'gcra', limit: 1, window: 1 } }),
      '`policies.algorithm`',
      "'sliding-window'",
      '"gcra" (string)',
    );
    configError(
      create({ policies: { limit: 1, window: 1, max: 3 } }),
      'Unknown option `max` in `policies`',
      '`limit`',
    );
    configError(
      create({ policies: { algorithm: 'token-bucket', limit: 1, window: 1, burst: 0 } }),
      '`policies.burst`',
      'a positive integer',
      '`0` (number)',
    );
    configError(
      create({ policies: { algorithm: 'leaky-bucket', limit: 1, window: 1, burst: 0.5 } }),
      '`policies.burst`',
      'a positive integer',
      '`0.5` (number)',
    );
    configError(
      create({ policies: { algorithm: 'fixed-window', limit: 1, window: 1, burst: 2 } }),
      '`policies.burst`',
      "'fixed-window'",
    );
    configError(
      create({ policies: { algorithm: 'token-bucket', limit: 1, window: 1, delay: false } }),
      '`policies.delay`',
      "'token-bucket'",
    );
  });

  test('empty and duplicate policies', () => {
    configError(create({ policies: [] }), '`policies`', 'at least one policy', 'an empty array');
    configError(
      create({ policies: [policies, { ...policies }] }),
      '`policies[1]`',
      '"10-per-1s" (string)',
      '`policies[0]`',
    );
  });

  test('the other limiter options', () => {
    configError(
      create({ policies, onStoreError: 'ignore' }),
      '`onStoreError`',
      "`'allow'` or `'deny'`",
      '"ignore" (string)',
    );
    configError(create({ policies, store: {} }), '`store`', 'consume, peek, refund and reset');
    configError(create({ policies, store: new Map() }), '`store`');
    const withClock = (clock: unknown) => Object.assign(new MemoryStore(), { clock });
    configError(create({ policies, store: withClock(5) }), '`store.clock`', '`5` (number)');
    configError(create({ policies, fallback: withClock('now') }), '`fallback.clock`', '"now" (string)');
    configError(create({ policies, fallback: 'memory' }), '`fallback`', '"memory" (string)');
    configError(create({ policies, probeIntervalMs: 0 }), '`probeIntervalMs`', '`0` (number)');
    configError(create({ policies, probeIntervalMs: 1.5 }), '`probeIntervalMs`', '`1.5` (number)');
    configError(create({ policies, logger: { warn() {} } }), '`logger`', '`warn` and `error`');
    configError(create({ policies, blockedCache: 0 }), '`blockedCache`', '`0` (number)');
    configError(create({ policies, blockedCache: 'yes' }), '`blockedCache`', '"yes" (string)');
    configError(create({ policies, name: 'has space' }), '`name`', '"has space" (string)');
    configError(create({ policies, name: '' }), '`name`', '"" (string)');
  });

  test('per-request values reject (never throw synchronously) with a ConfigError', async () => {
    const limiter = createLimiter({ policies, store: new MemoryStore({ clock: () => 0 }) });
    for (const [cost, given] of [
      [-1, '`-1` (number)'],
      [1.5, '`1.5` (number)'],
      [Number.NaN, '`NaN` (number)'],
      [INF, '`Infinity` (number)'],
      ['2', '"2" (string)'],
    ] as const) {
      await rejectsConfig(
        limiter.consume('k', { cost: cost as number }),
        '`cost`',
        'a non-negative integer',
        given,
      );
      await rejectsConfig(limiter.refund('k', cost as number), '`cost`', given);
    }
    await rejectsConfig(limiter.consume(42 as unknown as string), '`key`', 'a string', '`42` (number)');
    await rejectsConfig(
      limiter.consume('k', { policies: { limit: 0, window: '1s' } }),
      '`policies.limit`',
      '`0` (number)',
    );
    // Nothing was consumed by the rejected calls.
    expect((await limiter.peek('k')).remaining).toBe(10);
  });

  test('errors are ConfigErrors all the way down', () => {
    try {
      createLimiter({ policies: { limit: 0, window: 1 } });
    } catch (error) {
      expect(isConfigError(error)).toBe(true);
      expect((error as ConfigError).code).toBe('TOLLGATE_CONFIG');
    }
  });
});

describe('decisions', () => {
  const burst: Policy = { name: 'burst', algorithm: 'fixed-window', limit: 2, window: '1s' };
  const hourly: Policy = { name: 'hourly', algorithm: 'fixed-window', limit: 5, window: '1h' };

  function rig(policies: Policy | Policy[] = [burst, hourly]) {
    let t = 0;
    const store = new MemoryStore({ clock: () => t });
    const limiter = createLimiter({ policies, store });
    return {
      store,
      limiter,
      at(ms: number) {
        t = ms;
      },
    };
  }

  test('have exactly the documented shape', async () => {
    const { limiter } = rig();
    const [p0, p1] = limiter.policies!.policies;
    const d = await limiter.consume('user-1');
    expect(Object.keys(d).sort()).toEqual(
      [
        'allowed',
        'countedAt',
        'delayMs',
        'key',
        'limit',
        'policies',
        'policy',
        'remaining',
        'resetMs',
        'retryAfterMs',
      ].sort(),
    );
    expect(d).toEqual({
      allowed: true,
      key: 'user-1',
      limit: 2,
      remaining: 1,
      resetMs: 1000,
      retryAfterMs: 0,
      delayMs: 0,
      policy: p0,
      countedAt: 0,
      policies: [
        {
          name: 'burst',
          limit: 2,
          policy: p0,
          allowed: true,
          remaining: 1,
          resetMs: 1000,
          retryAfterMs: 0,
          delayMs: 0,
        },
        {
          name: 'hourly',
          limit: 5,
          policy: p1,
          allowed: true,
          remaining: 4,
          resetMs: HOUR,
          retryAfterMs: 0,
          delayMs: 0,
        },
      ],
    });
    expect(d.policy).toBe(p0);
    expect(p0).toMatchObject({ name: 'burst', algorithm: 'fixed-window', limit: 2, window: 1000 });
  });

  test('the binding policy is the denying one, else the one with least remaining', async () => {
    const s = rig();
    const names = (d: Decision) => [d.policy.name, ...d.policies.map((p) => `${p.name}:${p.remaining}`)];
    s.at(0);
    expect(names(await s.limiter.consume('k'))).toEqual(['burst', 'burst:1', 'hourly:4']);
    expect(names(await s.limiter.consume('k'))).toEqual(['burst', 'burst:0', 'hourly:3']);
    // Denied by burst; hourly allowed alone but consumed nothing (all or nothing).
    const denied = await s.limiter.consume('k');
    expect(view(denied)).toEqual({
      allowed: false,
      remaining: 0,
      resetMs: 1000,
      retryAfterMs: 1000,
      delayMs: 0,
    });
    expect(names(denied)).toEqual(['burst', 'burst:0', 'hourly:3']);
    expect(denied.policies.map((p) => [p.allowed, p.retryAfterMs])).toEqual([
      [false, 1000],
      [true, 0],
    ]);
    s.at(1000);
    expect(names(await s.limiter.consume('k'))).toEqual(['burst', 'burst:1', 'hourly:2']);
    expect(names(await s.limiter.consume('k'))).toEqual(['burst', 'burst:0', 'hourly:1']);
    s.at(2000);
    // hourly now has less left than burst: it binds.
    const d = await s.limiter.consume('k');
    expect(names(d)).toEqual(['hourly', 'burst:1', 'hourly:0']);
    expect(view(d)).toEqual({
      allowed: true,
      remaining: 0,
      resetMs: HOUR - 2000,
      retryAfterMs: 0,
      delayMs: 0,
    });
    const blocked = await s.limiter.consume('k');
    expect(blocked.policy.name).toBe('hourly');
    expect(view(blocked)).toEqual({
      allowed: false,
      remaining: 0,
      resetMs: HOUR - 2000,
      retryAfterMs: HOUR - 2000,
      delayMs: 0,
    });
    expect(blocked.policies[0]).toMatchObject({
      name: 'burst',
      allowed: true,
      remaining: 1,
      retryAfterMs: 0,
    });
  });

  const second: Policy = { name: 'second', algorithm: 'fixed-window', limit: 1, window: '1s' };
  const minute: Policy = { name: 'minute', algorithm: 'fixed-window', limit: 1, window: '1m' };
  const bothOrders = [
    [second, minute],
    [minute, second],
  ];

  test('between denials with equal waits, the policy with less left binds, whatever the order', async () => {
    const INF = Number.POSITIVE_INFINITY;
    for (const policies of bothOrders) {
      const s = rig(policies);
      await s.limiter.consume('k');
      s.at(1000);
      // second's window is over (1 left), minute's is not (0 left); a cost of 2 exceeds both: no wait helps.
      const d = await s.limiter.consume('k', { cost: 2 });
      expect(d.policies.map((p) => [p.name, p.remaining, p.retryAfterMs])).toEqual(
        policies.map((p) => (p === second ? ['second', 1, INF] : ['minute', 0, INF])),
      );
      expect([d.allowed, d.policy.name, d.remaining, d.retryAfterMs]).toEqual([false, 'minute', 0, INF]);
    }
  });

  test('when several policies deny, the longest wait binds, whatever the order', async () => {
    for (const policies of bothOrders) {
      const s = rig(policies);
      s.at(0);
      expect((await s.limiter.consume('k')).allowed).toBe(true);
      const d = await s.limiter.consume('k');
      expect(d.policy.name).toBe('minute');
      expect(d.retryAfterMs).toBe(60_000);
      expect(d.limit).toBe(1);
      expect(d.policies.every((p) => !p.allowed)).toBe(true);
    }
  });

  test('a cost larger than any policy can hold is denied with retryAfterMs Infinity', async () => {
    const s = rig();
    s.at(0);
    const d = await s.limiter.consume('k', { cost: 3 });
    expect(d.allowed).toBe(false);
    expect(d.retryAfterMs).toBe(INF);
    expect(d.policy.name).toBe('burst');
    expect(s.store.size).toBe(0);
  });

  test('every decision is its own object: later requests do not change earlier decisions', async () => {
    for (const policies of [burst, [burst, hourly]]) {
      const s = rig(policies);
      const first = await s.limiter.consume('k');
      const snapshot = structuredClone({
        ...first,
        policy: undefined,
        policies: first.policies.map((p) => ({ ...p, policy: undefined })),
      });
      const second = await s.limiter.consume('k');
      await s.limiter.consume('k');
      await s.limiter.consume('other');
      expect({
        ...first,
        policy: undefined,
        policies: first.policies.map((p) => ({ ...p, policy: undefined })),
      }).toEqual(snapshot);
      expect(second).not.toBe(first);
      expect(second.policies).not.toBe(first.policies);
      expect(second.policies[0]).not.toBe(first.policies[0]);
    }
  });

  test('the leaky bucket delay is carried by the decision; a denial has none', async () => {
    const s = rig([{ name: 'shape', algorithm: 'leaky-bucket', limit: 10, window: '1s' }, hourly]);
    s.at(0);
    expect((await s.limiter.consume('k')).delayMs).toBe(0);
    const d = await s.limiter.consume('k');
    expect(d.delayMs).toBe(100);
    expect(d.policy.name).toBe('hourly');
    for (let i = 0; i < 3; i++) await s.limiter.consume('k');
    const denied = await s.limiter.consume('k');
    expect(denied.allowed).toBe(false);
    expect(denied.delayMs).toBe(0);
  });
});

describe('peek, refund, reset, per-request policies and cost', () => {
  const policy: Policy = { name: 'p', algorithm: 'fixed-window', limit: 3, window: '1m' };

  function rig(policies: Policy | Policy[] = policy) {
    let t = 0;
    const store = new MemoryStore({ clock: () => t });
    const limiter = createLimiter({ policies, store });
    return {
      store,
      limiter,
      at(ms: number) {
        t = ms;
      },
    };
  }

  test('peek consumes nothing, however often it is called', async () => {
    const s = rig();
    for (let i = 0; i < 10; i++) {
      expect(view(await s.limiter.peek('k'))).toEqual({
        allowed: true,
        remaining: 3,
        resetMs: 60_000,
        retryAfterMs: 0,
        delayMs: 0,
      });
    }
    expect(s.store.size).toBe(0);
    expect((await s.limiter.consume('k')).remaining).toBe(2);
    for (let i = 0; i < 10; i++) expect((await s.limiter.peek('k')).remaining).toBe(2);
    await s.limiter.consume('k', { cost: 2 });
    const p = await s.limiter.peek('k');
    expect(view(p)).toEqual({
      allowed: false,
      remaining: 0,
      resetMs: 60_000,
      retryAfterMs: 60_000,
      delayMs: 0,
    });
    expect(p.reason).toBeUndefined();
  });

  test('refund gives back, never beyond full, and does not revive an expired window', async () => {
    const s = rig();
    s.at(0);
    await s.limiter.consume('k', { cost: 3 });
    expect((await s.limiter.consume('k')).allowed).toBe(false);
    await s.limiter.refund('k');
    expect(view(await s.limiter.peek('k'))).toEqual({
      allowed: true,
      remaining: 1,
      resetMs: 60_000,
      retryAfterMs: 0,
      delayMs: 0,
    });
    await s.limiter.refund('k', 10);
    expect((await s.limiter.peek('k')).remaining).toBe(3);
    // The window still ends where it did.
    s.at(59_000);
    expect(view(await s.limiter.consume('k', { cost: 3 }))).toEqual({
      allowed: true,
      remaining: 0,
      resetMs: 1000,
      retryAfterMs: 0,
      delayMs: 0,
    });
    // After the window: refund is a no-op and the next request opens a new window.
    s.at(60_000);
    await s.limiter.refund('k', 2);
    s.at(70_000);
    expect(view(await s.limiter.consume('k'))).toEqual({
      allowed: true,
      remaining: 2,
      resetMs: 60_000,
      retryAfterMs: 0,
      delayMs: 0,
    });
    // Refunding a key never seen creates nothing.
    await s.limiter.refund('never-seen', 3);
    expect(s.store.size).toBe(1);
    expect((await s.limiter.peek('never-seen')).remaining).toBe(3);
  });

  test("refund with a decision's countedAt gives back to the window that counted, not a later one", async () => {
    const s = rig();
    s.at(1000);
    const first = await s.limiter.consume('k', { cost: 3 });
    expect(first.countedAt).toBe(1000);
    // The next window: the units came from the last one, so this one keeps its count.
    s.at(61_000);
    const second = await s.limiter.consume('k', { cost: 3 });
    expect(second.countedAt).toBe(61_000);
    await s.limiter.refund('k', 3, { countedAt: first.countedAt });
    expect((await s.limiter.consume('k')).allowed).toBe(false);
    await s.limiter.refund('k', 3, { countedAt: second.countedAt });
    expect((await s.limiter.peek('k')).remaining).toBe(3);
    // Nothing was counted for a denial.
    await s.limiter.consume('k', { cost: 3 });
    expect((await s.limiter.consume('k')).countedAt).toBeUndefined();
    for (const countedAt of [Number.NaN, INF, '1000']) {
      await rejectsConfig(s.limiter.refund('k', 1, { countedAt: countedAt as number }), '`countedAt`');
    }
  });

  test('reset forgets a key entirely', async () => {
    const s = rig([policy, { name: 'q', limit: 100, window: '1h' }]);
    await s.limiter.consume('k', { cost: 3 });
    expect((await s.limiter.consume('k')).allowed).toBe(false);
    await s.limiter.reset('k');
    expect(s.store.size).toBe(0);
    const d = await s.limiter.consume('k');
    expect(d.policies.map((p) => p.remaining)).toEqual([2, 99]);
  });

  test('cost 0, 1, >1 and more than the capacity', async () => {
    const s = rig();
    expect((await s.limiter.consume('k', { cost: 0 })).remaining).toBe(3);
    expect((await s.limiter.consume('k')).remaining).toBe(2);
    expect((await s.limiter.consume('k', { cost: 2 })).remaining).toBe(0);
    expect((await s.limiter.consume('k', { cost: 0 })).allowed).toBe(true);
    expect((await s.limiter.consume('k', { cost: 1 })).allowed).toBe(false);
    const never = await s.limiter.consume('k', { cost: 4 });
    expect(never.allowed).toBe(false);
    expect(never.retryAfterMs).toBe(INF);
  });

  test('per-request policies (tiers) keep their own counters', async () => {
    const s = rig({ name: 'free', algorithm: 'fixed-window', limit: 2, window: '1m' });
    const pro: Policy[] = [{ name: 'pro', algorithm: 'fixed-window', limit: 5, window: '1m' }];
    const d = await s.limiter.consume('u', { policies: pro });
    expect(d.policy.name).toBe('pro');
    expect([d.limit, d.remaining]).toEqual([5, 4]);
    expect((await s.limiter.consume('u', { policies: pro, cost: 3 })).remaining).toBe(1);
    // The limiter's own policies are untouched.
    expect((await s.limiter.peek('u')).remaining).toBe(2);
    expect((await s.limiter.consume('u')).remaining).toBe(1);
    expect((await s.limiter.peek('u', { policies: pro })).remaining).toBe(1);
    await s.limiter.refund('u', 2, { policies: pro });
    expect((await s.limiter.peek('u', { policies: pro })).remaining).toBe(3);
    await s.limiter.reset('u', { policies: pro });
    expect((await s.limiter.peek('u', { policies: pro })).remaining).toBe(5);
    expect((await s.limiter.peek('u')).remaining).toBe(1);
    // An equal policy list written anew shares the counters of the first (same policy ids).
    await s.limiter.consume('u', {
      policies: [{ name: 'pro', algorithm: 'fixed-window', limit: 5, window: 60_000 }],
    });
    expect((await s.limiter.peek('u', { policies: pro })).remaining).toBe(4);
  });

  test('a limiter without policies of its own (tiers) counts only what each call passes', async () => {
    const store = new MemoryStore({ clock: () => 0 });
    const tiers = createLimiter({ store, name: 'tiers' });
    expect(tiers.policies).toBeUndefined();
    const pro: Policy[] = [{ name: 'pro', algorithm: 'fixed-window', limit: 5, window: '1m' }];
    const free: Policy = { name: 'free', algorithm: 'fixed-window', limit: 1, window: '1m' };
    expect((await tiers.consume('u', { policies: pro, cost: 2 })).remaining).toBe(3);
    expect(tiers.decide('u', { policies: free })).toMatchObject({ allowed: true, remaining: 0 });
    expect((await tiers.peek('u', { policies: pro })).remaining).toBe(3);
    expect(tiers.resolve(pro).policies[0]!.name).toBe('pro');
    await tiers.refund('u', 2, { policies: pro });
    await tiers.reset('u', { policies: free });
    expect((await tiers.peek('u', { policies: free })).remaining).toBe(1);
    const message =
      "Limiter 'tiers' has no policies of its own (created without `policies`, or by `rateLimit()` with a policies function): pass them to each call, e.g. `limiter.peek(key, { policies: TIERS.pro })`.";
    expect(() => tiers.decide('u')).toThrow(new ConfigError(message));
    expect(() => tiers.resolve()).toThrow(new ConfigError(message));
    await expect(tiers.consume('u', { cost: 2 })).rejects.toThrow(new ConfigError(message));
    await expect(tiers.peek('u')).rejects.toThrow(new ConfigError(message));
    await expect(tiers.refund('u')).rejects.toThrow(new ConfigError(message));
    await expect(tiers.reset('u')).rejects.toThrow(new ConfigError(message));
    expect((await tiers.peek('u', { policies: pro })).remaining).toBe(5);
  });

  test('limiters with different names keep separate counters on one store', async () => {
    const store = new MemoryStore({ clock: () => 0 });
    const a = createLimiter({ policies: policy, store, name: 'login' });
    const b = createLimiter({ policies: policy, store, name: 'search' });
    await a.consume('k', { cost: 3 });
    expect((await a.consume('k')).allowed).toBe(false);
    expect((await b.consume('k')).remaining).toBe(2);
  });

  test('two limiters with one name and different policies on one store: a coded warning, once', () => {
    const store = new MemoryStore({ clock: () => 0 });
    const { logger, warn } = recorder();
    createLimiter({ policies: policy, store, name: 'api', logger });
    createLimiter({ policies: policy, store, name: 'api', logger });
    expect(warn).toEqual([]);
    createLimiter({ policies: { ...policy, limit: 4 }, store, name: 'api', logger });
    expect(warn).toHaveLength(1);
    expect(warn[0]).toContain(`[${WARNINGS.NAME_CONFLICT}]`);
  });
});

describe('store failure', () => {
  const policy: Policy = { name: 'p', algorithm: 'fixed-window', limit: 5, window: '1h' };

  test("onStoreError 'allow' (the default) lets requests through with reason 'store-error'", async () => {
    const time = virtualTime();
    const store = new FlakyStore(new MemoryStore({ clock: time.clock }));
    store.failing = true;
    const { logger, warn } = recorder();
    const limiter = createLimiter({ policies: policy, store, logger });
    const d = await limiter.consume('k');
    expect(d).toMatchObject({
      allowed: true,
      reason: 'store-error',
      limit: 5,
      remaining: 5,
      retryAfterMs: 0,
      delayMs: 0,
    });
    expect(warn).toHaveLength(1);
    expect(warn[0]).toContain(`[${WARNINGS.STORE_ERROR}]`);
    expect(warn[0]).toContain('ECONNREFUSED');
    // Within the probe interval the dead store is not asked again: no latency per request.
    for (let i = 0; i < 5; i++) expect((await limiter.consume('k')).reason).toBe('store-error');
    expect(store.calls.consume).toBe(1);
    expect(warn).toHaveLength(1);
  });

  test("onStoreError 'deny' refuses requests with reason 'store-error'", async () => {
    const time = virtualTime();
    const store = new FlakyStore(new MemoryStore({ clock: time.clock }));
    store.failing = true;
    const limiter = createLimiter({
      policies: policy,
      store,
      onStoreError: 'deny',
      logger: recorder().logger,
    });
    const d = await limiter.consume('k');
    expect(d).toMatchObject({ allowed: false, reason: 'store-error', remaining: 0, delayMs: 0 });
    expect(Number.isFinite(d.retryAfterMs)).toBe(true);
    expect(d.retryAfterMs).toBeGreaterThan(0);
    expect(d.policies.every((p) => !p.allowed)).toBe(true);
  });

  test("onStoreError 'deny' refuses on enforced policies only: shadow ones never deny", async () => {
    const store = new FlakyStore(new MemoryStore({ clock: virtualTime().clock }));
    store.failing = true;
    const shadow = { limit: 5, window: '1m', mode: 'shadow' } as const;
    const only = createLimiter({ policies: shadow, store, onStoreError: 'deny', logger: recorder().logger });
    expect(await only.consume('k')).toMatchObject({ allowed: true, reason: 'store-error' });
    const mixed = createLimiter({
      name: 'mixed',
      policies: [policy, { ...shadow, name: 'trial' }],
      store,
      onStoreError: 'deny',
      logger: recorder().logger,
    });
    const d = await mixed.consume('k');
    expect(d).toMatchObject({ allowed: false, reason: 'store-error' });
    expect(d.policies.map((p) => p.allowed)).toEqual([false, true]);
    expect(d.shadowLimited).toBeUndefined();
  });

  // `Limiter.peek` is "the decision a cost-1 request would get now": with 'deny' that is a refusal.
  test("peek agrees with consume while the store fails (onStoreError 'deny')", async () => {
    const time = virtualTime();
    const store = new FlakyStore(new MemoryStore({ clock: time.clock }));
    store.failing = true;
    const limiter = createLimiter({
      policies: policy,
      store,
      onStoreError: 'deny',
      logger: recorder().logger,
    });
    const consumed = await limiter.consume('k');
    const peeked = await limiter.peek('k');
    expect([peeked.allowed, peeked.reason]).toEqual([consumed.allowed, consumed.reason]);
    expect(peeked.allowed).toBe(false);
  });

  test('a fallback store decides while the store fails, and is left when it recovers', async () => {
    const time = virtualTime();
    const primary = new FlakyStore(new MemoryStore({ clock: time.clock }));
    const fallback = new FlakyStore(new MemoryStore({ clock: time.clock }));
    const { logger, warn } = recorder();
    const limiter = createLimiter({
      policies: policy,
      store: primary,
      fallback,
      probeIntervalMs: 50,
      logger,
    });
    const step = async () => {
      const d = await limiter.consume('k');
      return [d.remaining, d.reason ?? 'store', primary.calls.consume, fallback.calls.consume];
    };

    expect(await step()).toEqual([4, 'store', 1, 0]);
    primary.failing = true;
    // Fails: the fallback (with its own, fresh counters) answers.
    expect(await step()).toEqual([4, 'fallback', 2, 1]);
    expect(warn.filter((w) => w.includes(WARNINGS.STORE_ERROR))).toHaveLength(1);
    // Not asked again before the probe interval.
    expect(await step()).toEqual([3, 'fallback', 2, 2]);
    time.advance(49);
    expect(await step()).toEqual([2, 'fallback', 2, 3]);
    // A probe that fails: the fallback still answers, next probe one interval later.
    time.advance(1);
    expect(await step()).toEqual([1, 'fallback', 3, 4]);
    expect(await step()).toEqual([0, 'fallback', 3, 5]);
    // peek follows the store in use.
    expect((await limiter.peek('k')).reason).toBe('fallback');
    primary.failing = false;
    time.advance(49);
    const denied = await limiter.consume('k');
    expect([denied.allowed, denied.reason, primary.calls.consume]).toEqual([false, 'fallback', 3]);
    // Recovered: back on the primary, whose count (1 used) was kept.
    time.advance(1);
    expect(await step()).toEqual([3, 'store', 4, 6]);
    expect(await step()).toEqual([2, 'store', 5, 6]);
    expect(warn.filter((w) => w.includes(WARNINGS.STORE_RECOVERED))).toHaveLength(1);
    expect((await limiter.peek('k')).reason).toBeUndefined();
  });

  test('a MemoryStore never reports store errors in normal use', async () => {
    const { logger, warn, error } = recorder();
    const limiter = createLimiter({ policies: policy, store: new MemoryStore({ clock: () => 0 }), logger });
    for (let i = 0; i < 7; i++) expect((await limiter.consume('k')).reason).toBeUndefined();
    expect([warn, error]).toEqual([[], []]);
  });

  /** Keys `a*` on shard A, the rest on B; `broken` fails on its value; B fails while `shardBDown`. */
  class ShardedStore extends FlakyStore {
    shardBDown = false;
    shardOf(key: string): string {
      return key.startsWith('a') ? 'A' : 'B';
    }
    override async consume(key: string, set: PolicySet, cost: number): Promise<Outcome[]> {
      if (key === 'broken') throw new StoreError('WRONGTYPE on this key', { scope: 'key' });
      if (this.shardBDown && this.shardOf(key) === 'B') {
        this.calls.consume++;
        throw new StoreError('no reply within 500 ms', { scope: 'shard' });
      }
      return super.consume(key, set, cost);
    }
  }

  test("a key-scoped error fails that request alone; a shard-scoped one only the shard's keys (issue 9)", async () => {
    const time = virtualTime();
    const store = new ShardedStore(new MemoryStore({ clock: time.clock }), true);
    const { logger, warn } = recorder();
    const limiter = createLimiter({
      policies: policy,
      store,
      logger,
      probeIntervalMs: 50,
      blockedCache: false,
    });
    const reasons = async (keys: string[]) =>
      (await Promise.all(keys.map((key) => limiter.consume(key)))).map((d) => d.reason ?? 'store');

    expect(await reasons(['broken', 'a1', 'b1', 'broken'])).toEqual([
      'store-error',
      'store',
      'store',
      'store-error',
    ]);
    expect(warn).toHaveLength(1);
    expect(warn[0]).toContain(`[${WARNINGS.STORE_KEY_ERROR}]`);
    expect(warn[0]).not.toContain('broken');

    store.shardBDown = true;
    expect(await reasons(['b1'])).toEqual(['store-error']);
    const calls = store.calls.consume;
    // B is skipped until its probe; A is asked every time.
    expect(await reasons(['a1', 'b1', 'b2', 'a2'])).toEqual(['store', 'store-error', 'store-error', 'store']);
    expect(store.calls.consume).toBe(calls + 2);
    expect(warn.filter((w) => w.includes(WARNINGS.STORE_ERROR))).toEqual([
      expect.stringContaining('shard B'),
    ]);
    store.shardBDown = false;
    time.advance(50);
    // One probe at a time: b1 asked while b2 probes keeps away; once b2 answered, B is back.
    expect(await reasons(['b2', 'b1', 'a1'])).toEqual(['store', 'store-error', 'store']);
    expect(await reasons(['b1'])).toEqual(['store']);
    expect(warn.filter((w) => w.includes(WARNINGS.STORE_RECOVERED))).toHaveLength(1);
  });

  test('refund and reset reach the primary store, and a failure surfaces as a StoreError', async () => {
    const store = new FlakyStore(new MemoryStore({ clock: () => 0 }));
    const limiter = createLimiter({ policies: policy, store, logger: recorder().logger });
    await limiter.refund('k');
    await limiter.reset('k');
    expect([store.calls.refund, store.calls.reset]).toEqual([1, 1]);
    store.failing = true;
    await expect(limiter.refund('k')).rejects.toBeInstanceOf(StoreError);
    await expect(limiter.reset('k')).rejects.toBeInstanceOf(StoreError);
  });
});

describe('blocked cache', () => {
  const policy: Policy = { name: 'p', algorithm: 'fixed-window', limit: 2, window: '1s' };

  test('blockedCache keeps no key longer than 100 characters: such keys are asked of the store', async () => {
    const time = virtualTime();
    const store = new FlakyStore(new MemoryStore({ clock: time.clock }));
    const limiter = createLimiter({ policies: policy, store, blockedCache: true });
    const long = 'x'.repeat(101);
    for (let i = 0; i < 4; i++) await limiter.consume(long);
    const again = await limiter.consume(long);
    expect(again.allowed).toBe(false);
    expect(again.reason).toBeUndefined();
    expect(store.calls.consume).toBe(5);
    const short = 'y'.repeat(100);
    for (let i = 0; i < 4; i++) await limiter.consume(short);
    expect((await limiter.consume(short)).reason).toBe('blocked-cache');
  });

  test("blockedCache: true answers repeat requests of a denied key locally ('blocked-cache')", async () => {
    const time = virtualTime();
    const store = new FlakyStore(new MemoryStore({ clock: time.clock }));
    const limiter = createLimiter({ policies: policy, store, blockedCache: true });
    await limiter.consume('k');
    await limiter.consume('k');
    const denied = await limiter.consume('k');
    expect(view(denied)).toEqual({
      allowed: false,
      remaining: 0,
      resetMs: 1000,
      retryAfterMs: 1000,
      delayMs: 0,
    });
    expect(denied.reason).toBeUndefined();
    expect(store.calls.consume).toBe(3);

    time.advance(400);
    const cached = await limiter.consume('k');
    expect(cached.reason).toBe('blocked-cache');
    expect(view(cached)).toEqual({
      allowed: false,
      remaining: 0,
      resetMs: 600,
      retryAfterMs: 600,
      delayMs: 0,
    });
    expect(cached.policy.name).toBe('p');
    for (let i = 0; i < 100; i++) expect((await limiter.consume('k')).reason).toBe('blocked-cache');
    time.advance(599);
    expect(view(await limiter.consume('k'))).toEqual({
      allowed: false,
      remaining: 0,
      resetMs: 1,
      retryAfterMs: 1,
      delayMs: 0,
    });
    // The store was not called during the block.
    expect(store.calls.consume).toBe(3);

    // Other keys are not blocked.
    expect((await limiter.consume('other')).allowed).toBe(true);
    expect(store.calls.consume).toBe(4);

    // The block ends when retryAfterMs has passed: the store decides again.
    time.advance(1);
    const after = await limiter.consume('k');
    expect([after.allowed, after.reason, store.calls.consume]).toEqual([true, undefined, 5]);
  });

  test("measures the block with the store's own clock when it has one (no faked timers)", async () => {
    const clock = { t: 5_000_000 };
    const inner = new MemoryStore({ clock: () => clock.t });
    // A remote store with its own time source, like a RedisStore given a test `clock`.
    const store = Object.assign(new FlakyStore(inner, true), { clock: inner.clock });
    const limiter = createLimiter({ policies: policy, store });
    await limiter.consume('k');
    await limiter.consume('k');
    const denied = await limiter.consume('k');
    expect([denied.allowed, denied.retryAfterMs, store.calls.consume]).toEqual([false, 1000, 3]);
    clock.t += 999;
    const cached = await limiter.consume('k');
    expect([cached.reason, cached.retryAfterMs, store.calls.consume]).toEqual(['blocked-cache', 1, 3]);
    clock.t += 1;
    const after = await limiter.consume('k');
    expect([after.allowed, after.reason, store.calls.consume]).toEqual([true, undefined, 4]);
  });

  test('another cost asks the store; reset and refund lift the block', async () => {
    const time = virtualTime();
    const store = new FlakyStore(new MemoryStore({ clock: time.clock }));
    const limiter = createLimiter({ policies: policy, store, blockedCache: true });
    await limiter.consume('k', { cost: 2 });
    await limiter.consume('k');
    expect(store.calls.consume).toBe(2);
    expect((await limiter.consume('k')).reason).toBe('blocked-cache');
    expect((await limiter.consume('k', { cost: 0 })).allowed).toBe(true);
    expect(store.calls.consume).toBe(3);

    await limiter.refund('k');
    const d = await limiter.consume('k');
    expect([d.allowed, d.reason, store.calls.consume]).toEqual([true, undefined, 4]);
    expect((await limiter.consume('k')).allowed).toBe(false);
    expect((await limiter.consume('k')).reason).toBe('blocked-cache');
    await limiter.reset('k');
    expect((await limiter.consume('k')).remaining).toBe(1);
  });

  test('on by default for remote stores, off by default for the MemoryStore', async () => {
    const time = virtualTime();
    const remote = new FlakyStore(new MemoryStore({ clock: time.clock }), true);
    const local = new FlakyStore(new MemoryStore({ clock: time.clock }), false);
    const onRemote = createLimiter({ policies: policy, store: remote });
    const onLocal = createLimiter({ policies: policy, store: local });
    for (let i = 0; i < 10; i++) {
      await onRemote.consume('k');
      await onLocal.consume('k');
    }
    expect(remote.calls.consume).toBe(3);
    expect(local.calls.consume).toBe(10);
    const off = new FlakyStore(new MemoryStore({ clock: time.clock }), true);
    const unblocked = createLimiter({ policies: policy, store: off, blockedCache: false });
    for (let i = 0; i < 10; i++) expect((await unblocked.consume('k')).reason).toBeUndefined();
    expect(off.calls.consume).toBe(10);
  });

  test('a number bounds how many keys it holds', async () => {
    const time = virtualTime();
    const store = new FlakyStore(new MemoryStore({ clock: time.clock }));
    const limiter = createLimiter({ policies: policy, store, blockedCache: 1 });
    for (const key of ['a', 'b']) {
      await limiter.consume(key, { cost: 2 });
      await limiter.consume(key);
    }
    expect(store.calls.consume).toBe(4);
    expect((await limiter.consume('b')).reason).toBe('blocked-cache');
    expect((await limiter.consume('a')).reason).toBeUndefined();
    expect(store.calls.consume).toBe(5);
  });

  test('a denial that can never be allowed (Infinity) is not cached', async () => {
    const time = virtualTime();
    const store = new FlakyStore(new MemoryStore({ clock: time.clock }));
    const limiter = createLimiter({ policies: policy, store, blockedCache: true });
    await limiter.consume('k', { cost: 3 });
    await limiter.consume('k', { cost: 3 });
    expect(store.calls.consume).toBe(2);
    expect((await limiter.consume('k')).allowed).toBe(true);
  });
});

describe('close', () => {
  test('closes the store the limiter created, not one it was given', async () => {
    const given = new FlakyStore(new MemoryStore());
    const limiter = createLimiter({ policies: { limit: 1, window: '1s' }, store: given });
    await limiter.close();
    expect(given.calls.close).toBe(0);
    await given.close();

    const own = createLimiter({ policies: { limit: 1, window: '1s' } });
    expect(own.store).toBeInstanceOf(MemoryStore);
    await own.consume('k');
    expect((own.store as MemoryStore).size).toBe(1);
    await own.close();
    expect((own.store as MemoryStore).size).toBe(0);
  });
});

describe('decide', () => {
  const policies: Policy = { algorithm: 'fixed-window', limit: 2, window: '1m' };

  test('answers a MemoryStore synchronously, with the same decisions consume gives', async () => {
    let now = 1_000;
    const limiter = createLimiter({ policies, store: new MemoryStore({ clock: () => now }) });
    const first = limiter.decide('k');
    expect(first).not.toBeInstanceOf(Promise);
    expect(first).toMatchObject({ allowed: true, remaining: 1, resetMs: 60_000 });
    expect(await limiter.consume('k')).toMatchObject({ allowed: true, remaining: 0 });
    now += 10_000;
    expect(limiter.decide('k', { cost: 1 })).toMatchObject({
      allowed: false,
      remaining: 0,
      retryAfterMs: 50_000,
    });
  });

  test('returns a promise for an asynchronous store, and throws bad arguments where consume rejects', async () => {
    const limiter = createLimiter({ policies, store: new FlakyStore(new MemoryStore()) });
    const decision = limiter.decide('k');
    expect(decision).toBeInstanceOf(Promise);
    expect(await decision).toMatchObject({ allowed: true, remaining: 1 });
    expect(() => limiter.decide('k', { cost: -1 })).toThrow(ConfigError);
    await expect(limiter.consume('k', { cost: -1 })).rejects.toThrow(ConfigError);
    expect(() => limiter.decide(42 as unknown as string)).toThrow('Expected `key` to be a string');
  });

  test('answers from the denied-key cache without the store', async () => {
    const store = new FlakyStore(new MemoryStore(), true);
    const limiter = createLimiter({ policies: { ...policies, limit: 1 }, store });
    await limiter.consume('k');
    await limiter.consume('k');
    const calls = store.calls.consume;
    const cached = limiter.decide('k');
    expect(cached).not.toBeInstanceOf(Promise);
    expect(cached).toMatchObject({ allowed: false, reason: 'blocked-cache' });
    expect(store.calls.consume).toBe(calls);
  });
});
