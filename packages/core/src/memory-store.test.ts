import { afterEach, describe, expect, test, vi } from 'vitest';
import { monotonicClock } from './clock.js';
import { ConfigError, isStoreError, StoreError } from './errors.js';
import { keyDigest } from './key-digest.js';
import { createLimiter } from './limiter.js';
import { MemoryStore, type MemoryStoreOptions } from './memory-store.js';
import type { Policy } from './types.js';

afterEach(() => {
  vi.useRealTimers();
});

function configError(fn: () => unknown, ...fragments: string[]) {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(ConfigError);
  for (const fragment of fragments) expect((thrown as Error).message).toContain(fragment);
}

describe('MemoryStore options', () => {
  const create = (options: unknown) => () => new MemoryStore(options as MemoryStoreOptions);

  test.each([
    [0, '`0` (number)'],
    [-1, '`-1` (number)'],
    [1.5, '`1.5` (number)'],
    [Number.NaN, '`NaN` (number)'],
    ['10', '"10" (string)'],
  ])('maxKeys %j', (maxKeys, given) => {
    configError(create({ maxKeys }), '`maxKeys`', 'a positive integer', given);
  });

  test.each([
    [0, 'a positive whole number of milliseconds', '`0` (number)'],
    [2 ** 31, 'at most 2147483647 ms', '`2147483648` (number)'],
    [10.5, 'a positive whole number of milliseconds', '`10.5` (number)'],
    ['30 s', "`'10s'`", '"30 s" (string)'],
    ['30', 'a unit', '"30" (string)'],
  ])('sweepIntervalMs %j', (sweepIntervalMs, expected, given) => {
    configError(create({ sweepIntervalMs }), '`sweepIntervalMs`', expected, given);
  });

  test('sweepIntervalMs takes a duration string', () => {
    vi.useFakeTimers();
    try {
      const store = new MemoryStore({ sweepIntervalMs: '2s' });
      const sweep = vi.spyOn(store, 'sweep');
      vi.advanceTimersByTime(1999);
      expect(sweep).not.toHaveBeenCalled();
      vi.advanceTimersByTime(1);
      expect(sweep).toHaveBeenCalledTimes(1);
      store.close();
    } finally {
      vi.useRealTimers();
    }
  });

  test('clock, unknown options, options that are not an object', () => {
    configError(create({ clock: 5 }), '`clock`', 'a function', '`5` (number)');
    configError(
      create({ maxkeys: 10 }),
      'Unknown option `maxkeys` in `MemoryStore` options. Did you mean `maxKeys`? It takes `maxKeys`, `sweepIntervalMs`, `clock`.',
    );
    configError(create({ sweepInterval: 10 }), 'Did you mean `sweepIntervalMs`?');
    configError(create({ size: 10 }), 'Unknown option `size` in `MemoryStore` options. It takes');
    configError(create(null), '`MemoryStore` options', '`null`');
    configError(create('big'), '`MemoryStore` options', '"big" (string)');
  });
});

/** A limiter on a MemoryStore with a virtual clock. */
function rig(policies: Policy | Policy[], options: MemoryStoreOptions = {}) {
  const time = { t: 0 };
  const store = new MemoryStore({ clock: () => time.t, ...options });
  const limiter = createLimiter({ policies, store });
  const hit = async (key: string, times = 1) => {
    for (let i = 0; i < times; i++) await limiter.consume(key);
  };
  const left = async (key: string) => (await limiter.peek(key)).policies.map((p) => p.remaining);
  return { time, store, limiter, hit, left };
}

const fixed10: Policy = { name: 'f', algorithm: 'fixed-window', limit: 10, window: '1h' };
const daily: Policy = { name: 'd', algorithm: 'sliding-window', limit: 100, window: '1d' };

// Regression (fixed in b3b9849): when inserting a key triggered an eviction, the eviction check ran
// in the scratch buffer holding the new key's pending state, so a new key inherited the evicted (or
// skipped, denied) key's state plus one unit. The survivors' exact counts below catch that.
describe.each([
  ['one policy', [fixed10]],
  ['two policies', [fixed10, daily]],
])('maxKeys and least-recently-used eviction (%s)', (_, policies) => {
  const full = (n: number) => (policies.length === 1 ? [10 - n] : [10 - n, 100 - n]);

  test('maxKeys 3: a, b, c, touch a, add d: b goes, and every survivor keeps its own count', async () => {
    const s = rig(policies, { maxKeys: 3 });
    await s.hit('a', 1);
    await s.hit('b', 2);
    await s.hit('c', 3);
    await s.hit('a', 1);
    expect(s.store.size).toBe(3);
    await s.hit('d', 1);
    expect(s.store.size).toBe(3);
    // LRU now: d, a, c (c least recent).
    await s.hit('e', 1);
    expect(s.store.size).toBe(3);
    // LRU now: e, d, a.
    expect(await s.left('a')).toEqual(full(2));
    expect(await s.left('d')).toEqual(full(1));
    expect(await s.left('e')).toEqual(full(1));
    expect(await s.left('b')).toEqual(full(0));
    expect(await s.left('c')).toEqual(full(0));
    await s.hit('f', 4);
    expect(s.store.size).toBe(3);
    expect(await s.left('a')).toEqual(full(0));
    expect(await s.left('d')).toEqual(full(1));
    expect(await s.left('e')).toEqual(full(1));
    expect(await s.left('f')).toEqual(full(4));
  });

  test('a key that is currently denied is never evicted while another can go', async () => {
    const s = rig(policies, { maxKeys: 3 });
    await s.hit('a', 10);
    expect((await s.limiter.peek('a')).allowed).toBe(false);
    await s.hit('b', 1);
    await s.hit('c', 2);
    // a is least recently used but denied: b goes instead.
    await s.hit('d', 3);
    expect(s.store.size).toBe(3);
    const a = await s.limiter.consume('a');
    expect([a.allowed, a.remaining, a.retryAfterMs]).toEqual([false, 0, 3_600_000]);
    expect(await s.left('b')).toEqual(full(0));
    expect(await s.left('c')).toEqual(full(2));
    expect(await s.left('d')).toEqual(full(3));
  });

  test('when every key is denied, one still goes so that the bound holds', async () => {
    const s = rig(policies, { maxKeys: 2 });
    await s.hit('a', 10);
    await s.hit('b', 10);
    const c = await s.limiter.consume('c');
    expect([c.allowed, c.remaining]).toEqual([true, 9]);
    expect(s.store.size).toBe(2);
    const denied = [(await s.limiter.peek('a')).allowed, (await s.limiter.peek('b')).allowed].filter(
      (x) => !x,
    );
    expect(denied).toHaveLength(1);
    expect(await s.left('c')).toEqual(full(1));
  });

  test('a denied request for a new key stores nothing and evicts nothing', async () => {
    const s = rig(policies, { maxKeys: 2 });
    await s.hit('a', 1);
    await s.hit('b', 1);
    expect((await s.limiter.consume('big', { cost: 11 })).allowed).toBe(false);
    expect(s.store.size).toBe(2);
    expect(await s.left('a')).toEqual(full(1));
    expect(await s.left('b')).toEqual(full(1));
  });
});

describe('denied keys survive a flood of new keys', () => {
  // DESIGN (Stores): "never a key that is currently denied while others can go". An attacker who
  // can get a denied key evicted gets a fresh quota, so this must hold however many keys are denied.
  test('more than a thousand denied keys at the LRU end: a key that is not denied goes', async () => {
    const s = rig({ name: 'f', algorithm: 'fixed-window', limit: 2, window: '1h' }, { maxKeys: 1100 });
    const denied = Array.from({ length: 1030 }, (_, i) => `denied-${i}`);
    for (const key of denied) await s.hit(key, 2);
    for (let i = 0; i < 70; i++) await s.hit(`ok-${i}`, 1);
    expect(s.store.size).toBe(1100);
    for (let i = 0; i < 70; i++) await s.hit(`new-${i}`, 1);
    expect(s.store.size).toBe(1100);
    const still = await Promise.all(denied.map(async (key) => (await s.limiter.peek(key)).allowed));
    expect(still.filter((allowed) => allowed)).toEqual([]);
    // The 70 keys that were not denied made room, least recently used first.
    expect((await s.limiter.peek('ok-0')).remaining).toBe(2);
    expect((await s.limiter.peek('new-69')).remaining).toBe(1);
  });
});

describe('maxKeys is one bound over all limiters sharing the store', () => {
  test('size counts the keys of every limiter; reset and refund-to-full free them', async () => {
    const store = new MemoryStore({ clock: () => 0 });
    const a = createLimiter({ policies: fixed10, store, name: 'a' });
    const b = createLimiter({
      policies: { algorithm: 'token-bucket', limit: 5, window: '1s' },
      store,
      name: 'b',
    });
    await a.consume('x');
    await a.consume('y');
    await b.consume('x');
    expect(store.size).toBe(3);
    await a.reset('x');
    expect(store.size).toBe(2);
    // A token bucket refunded to full holds nothing worth keeping.
    await b.refund('x');
    expect(store.size).toBe(1);
  });

  // Regression (fixed in b3b9849): eviction used to look only at the LRU list of the policy set being
  // inserted into.
  test('the least recently used key of the whole store goes first', async () => {
    let t = 0;
    const store = new MemoryStore({ maxKeys: 3, clock: () => t });
    const one = createLimiter({ policies: fixed10, store, name: 'one' });
    const two = createLimiter({ policies: fixed10, store, name: 'two' });
    await one.consume('old');
    t = 1;
    await two.consume('k1');
    t = 2;
    await two.consume('k2');
    t = 3;
    await two.consume('k3');
    expect(store.size).toBe(3);
    expect((await one.peek('old')).remaining).toBe(10);
    expect((await two.peek('k1')).remaining).toBe(9);
  });

  // Regression (fixed in b3b9849): when the inserting limiter's own keys were all denied, one of them
  // was evicted (handing its client a fresh quota) although another limiter's key could go.
  test('a denied key is kept while a key of another limiter can go', async () => {
    let t = 0;
    const store = new MemoryStore({ maxKeys: 2, clock: () => t });
    const strict = createLimiter({ policies: { ...fixed10, limit: 1 }, store, name: 'strict' });
    const loose = createLimiter({ policies: fixed10, store, name: 'loose' });
    await strict.consume('abuser');
    t = 1;
    await loose.consume('someone');
    t = 2;
    await strict.consume('newcomer');
    expect(store.size).toBe(2);
    expect((await strict.consume('abuser')).allowed).toBe(false);
  });
});

describe('the Store interface', () => {
  test('consume and peek return fresh arrays that later calls do not change', async () => {
    for (const policies of [[fixed10], [fixed10, daily]]) {
      const s = rig(policies);
      const set = s.limiter.policies!;
      const first = await s.store.consume('k', set, 1);
      const copy = structuredClone(first);
      const peeked = await s.store.peek('k', set);
      const peekCopy = structuredClone(peeked);
      await s.store.consume('k', set, 1);
      await s.store.consume('j', set, 3);
      expect(first).toEqual(copy);
      expect(peeked).toEqual(peekCopy);
      expect(first.map((o) => o.remaining)).toEqual(policies.length === 1 ? [9] : [9, 99]);
    }
  });
});

describe('sweep', () => {
  test.each([
    // algorithm, what happens at t = 0 (or t0), when the state is over
    ['fixed-window', { algorithm: 'fixed-window', limit: 10, window: 1000 }, 0, 3, 1000],
    ['sliding-window', { algorithm: 'sliding-window', limit: 10, window: 1000 }, 1200, 3, 3000],
    ['token-bucket', { algorithm: 'token-bucket', limit: 10, window: 1000 }, 0, 3, 300],
    ['leaky-bucket', { algorithm: 'leaky-bucket', limit: 10, window: 1000 }, 0, 2, 200],
  ] as const)('%s: removes the key exactly when its state is over', async (_, policy, t0, hits, end) => {
    const s = rig(policy as Policy);
    s.time.t = t0;
    await s.hit('k', hits);
    s.time.t = end - 1;
    expect(s.store.sweep()).toBe(0);
    expect(s.store.size).toBe(1);
    s.time.t = end;
    expect(s.store.sweep()).toBe(1);
    expect(s.store.size).toBe(0);
    expect((await s.limiter.peek('k')).remaining).toBe(10);
  });

  test('removes only expired keys, across limiters', async () => {
    let t = 0;
    const store = new MemoryStore({ clock: () => t });
    const short = createLimiter({
      policies: { algorithm: 'fixed-window', limit: 1, window: '100ms' },
      store,
    });
    const long = createLimiter({
      policies: { algorithm: 'fixed-window', limit: 1, window: 1000 },
      store,
      name: 'l',
    });
    for (const key of ['a', 'b', 'c']) await short.consume(key);
    await long.consume('a');
    t = 50;
    await short.consume('d');
    t = 100;
    expect(store.sweep()).toBe(3);
    expect(store.size).toBe(2);
    t = 1000;
    expect(store.sweep()).toBe(2);
    expect(store.size).toBe(0);
  });

  test('runs by itself on its interval', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const s = rig({ algorithm: 'fixed-window', limit: 1, window: '100ms' }, { sweepIntervalMs: 1000 });
    await s.hit('k');
    s.time.t = 100;
    vi.advanceTimersByTime(999);
    expect(s.store.size).toBe(1);
    vi.advanceTimersByTime(1);
    expect(s.store.size).toBe(0);
    await s.store.close();
  });
});

describe('clock', () => {
  test('the default is monotonic and reads like epoch milliseconds', () => {
    const a = monotonicClock();
    expect(Math.abs(a - Date.now())).toBeLessThan(60_000);
    expect(Number.isInteger(a)).toBe(true);
    expect(monotonicClock()).toBeGreaterThanOrEqual(a);
  });

  test('wall-clock jumps neither refill nor lock out (default clock)', async () => {
    const store = new MemoryStore();
    const limiter = createLimiter({ policies: { algorithm: 'fixed-window', limit: 1, window: '1h' }, store });
    vi.useFakeTimers({ toFake: ['Date'] });
    expect((await limiter.consume('k')).allowed).toBe(true);
    vi.setSystemTime(Date.now() + 2 * 3_600_000);
    const later = await limiter.consume('k');
    expect(later.allowed).toBe(false);
    expect(later.retryAfterMs).toBeGreaterThan(3_590_000);
    vi.setSystemTime(Date.now() - 48 * 3_600_000);
    const earlier = await limiter.consume('k');
    expect(earlier.allowed).toBe(false);
    expect(earlier.retryAfterMs).toBeLessThanOrEqual(3_600_000);
    await store.close();
  });

  test('a clock with fractional milliseconds gives whole-millisecond answers', async () => {
    let t = 1000.75;
    const s = rig({ algorithm: 'token-bucket', limit: 3, window: 1000 }, { clock: () => t });
    await s.hit('k', 3);
    const d = await s.limiter.consume('k');
    expect([d.retryAfterMs, d.resetMs]).toEqual([334, 1000]);
    t = 1334.2;
    expect((await s.limiter.consume('k')).allowed).toBe(true);
  });
});

describe('long keys are held by digest (issue 9)', () => {
  const policy: Policy = { name: 'f', algorithm: 'fixed-window', limit: 5, window: '1h' };
  const long = `hdr:x-api-key:${'a'.repeat(200)}`;

  test('a long key counts, peeks, refunds and resets like any other', async () => {
    const s = rig(policy);
    await s.hit(long, 3);
    expect(await s.left(long)).toEqual([2]);
    await s.limiter.refund(long);
    expect(await s.left(long)).toEqual([3]);
    expect(s.store.size).toBe(1);
    await s.limiter.reset(long);
    expect(s.store.size).toBe(0);
    expect(await s.left(long)).toEqual([5]);
  });

  test('keys at the bound, one past it, and ones differing in their last character stay apart', async () => {
    const s = rig([policy, daily]);
    const keys = ['k'.repeat(100), 'k'.repeat(101), `${'k'.repeat(5000)}a`, `${'k'.repeat(5000)}b`];
    for (const [i, key] of keys.entries()) await s.hit(key, i + 1);
    for (const [i, key] of keys.entries()) expect(await s.left(key)).toEqual([4 - i, 99 - i]);
    expect(s.store.size).toBe(4);
  });

  test('a short key that spells a long key’s digest is another key', async () => {
    const s = rig(policy);
    await s.hit(long, 4);
    expect(await s.left(keyDigest(long))).toEqual([5]);
    await s.hit(keyDigest(long), 1);
    expect(await s.left(long)).toEqual([1]);
    expect(await s.left(keyDigest(long))).toEqual([4]);
    // Dropping one leaves the other.
    await s.limiter.reset(keyDigest(long));
    expect(await s.left(long)).toEqual([1]);
  });

  test('long keys differing only in lone surrogates stay apart', async () => {
    const s = rig(policy);
    const base = 'x'.repeat(150);
    await s.hit(`${base}\uD800`, 1);
    await s.hit(`${base}\uDC00`, 2);
    await s.hit(`${base}\uFFFD`, 3);
    expect(await s.left(`${base}\uD800`)).toEqual([4]);
    expect(await s.left(`${base}\uDC00`)).toEqual([3]);
    expect(await s.left(`${base}\uFFFD`)).toEqual([2]);
  });

  test('eviction and the sweep drop long keys', async () => {
    const s = rig({ name: 'f', algorithm: 'fixed-window', limit: 5, window: 1000 }, { maxKeys: 2 });
    await s.hit(long);
    await s.hit(`${long}b`);
    await s.hit('short');
    expect(s.store.size).toBe(2);
    expect(await s.left(long)).toEqual([5]);
    s.time.t = 1000;
    expect(s.store.sweep()).toBe(2);
    expect(s.store.size).toBe(0);
  });
});

describe('the sweep timer where timers are numbers', () => {
  // Browsers, jsdom and some test environments return a number from setInterval, which has no
  // `unref` (issue 9).
  test('the store is created, sweeps on its interval and closes', async () => {
    let tick: (() => void) | undefined;
    const cleared: unknown[] = [];
    vi.stubGlobal('setInterval', (fn: () => void) => {
      tick = fn;
      return 7;
    });
    vi.stubGlobal('clearInterval', (id: unknown) => cleared.push(id));
    try {
      const s = rig({ algorithm: 'fixed-window', limit: 1, window: '100ms' });
      await s.hit('k');
      s.time.t = 100;
      tick!();
      expect(s.store.size).toBe(0);
      await s.store.close();
      expect(cleared).toEqual([7]);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});

describe('close', () => {
  test('drops all state, stops the timer, is safe to call twice', async () => {
    const s = rig(fixed10);
    await s.hit('a');
    await s.hit('b');
    expect(s.store.size).toBe(2);
    await s.store.close();
    expect(s.store.size).toBe(0);
    await s.store.close();
    expect(s.store.size).toBe(0);
  });

  test('a closed store answers every call with a StoreError, as a closed RedisStore does', async () => {
    const s = rig(fixed10);
    await s.hit('a');
    const set = s.limiter.policies!;
    await s.store.close();
    const closed = new StoreError('This MemoryStore was closed; create a new one.');
    await expect(s.store.consume('a', set, 1)).rejects.toThrow(closed);
    await expect(s.store.consume('new', set, 1)).rejects.toSatisfy(isStoreError);
    await expect(s.store.peek('a', set)).rejects.toThrow(closed);
    await expect(s.store.refund('a', set, 1)).rejects.toThrow(closed);
    await expect(s.store.reset('a', set)).rejects.toThrow(closed);
    expect(() => s.store.consumeSync('a', set, 1)).toThrow(closed);
    // Through the limiter: the failing state, answered by `onStoreError` (allow by default).
    expect((await s.limiter.consume('a')).reason).toBe('store-error');
  });
});
