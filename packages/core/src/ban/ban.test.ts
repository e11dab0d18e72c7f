/**
 * Bans through a limiter on a MemoryStore with a virtual clock: exact numbers, the options'
 * validation, the warnings, the `tollgate:ban` events, the ban cache of a remote store, and a
 * property test against a model written from the README's rules.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import fc from 'fast-check';
import { afterEach, describe, expect, test } from 'vitest';
import { isConfigError } from '../errors.js';
import { BAN_CHANNEL, type BanMessage } from '../events.js';
import { createLimiter, type LimiterOptions } from '../limiter.js';
import { MemoryStore } from '../memory-store.js';
import type { BanOptions, ConsumeInfo, LiftListener, Outcome, Policy, PolicySet, Store } from '../types.js';
import { WARNINGS } from '../warnings.js';
import { liftId } from './lift.js';

const quiet = { warn: () => undefined, error: () => undefined };
const POLICY: Policy = { algorithm: 'fixed-window', limit: 2, window: '1s' };
const BAN: BanOptions = { after: 3, within: '10s', for: '1m', escalate: { factor: 2, max: '5m' } };

/** A limiter on a MemoryStore whose clock the test moves. */
function setup(options: Partial<LimiterOptions> = {}) {
  const clock = { now: 1_000_000 };
  const store = new MemoryStore({ clock: () => clock.now });
  const limiter = createLimiter({ policies: POLICY, store, ban: BAN, logger: quiet, ...options });
  const hit = async (key = 'k', cost = 1) => {
    const d = await limiter.consume(key, { cost });
    return [d.allowed, d.reason ?? '', d.retryAfterMs] as const;
  };
  return { clock, store, limiter, hit };
}

const active: (() => void)[] = [];
afterEach(() => {
  for (const stop of active.splice(0)) stop();
});
function listenBans(): BanMessage[] {
  const seen: BanMessage[] = [];
  const listener = (message: unknown) => seen.push(message as BanMessage);
  subscribe(BAN_CHANNEL, listener);
  active.push(() => unsubscribe(BAN_CHANNEL, listener));
  return seen;
}

describe('automatic bans', () => {
  test("the `after`-th denial within `within` bans for `for`: reason 'banned', retryAfterMs = ban left", async () => {
    const { clock, hit } = setup();
    expect(await hit()).toEqual([true, '', 0]);
    expect(await hit()).toEqual([true, '', 0]);
    expect(await hit()).toEqual([false, '', 1000]);
    clock.now += 10;
    expect(await hit()).toEqual([false, '', 990]);
    // The third denial: banned, and this very request already says so.
    expect(await hit()).toEqual([false, 'banned', 60_000]);
    clock.now += 1000; // the window has reset: the policy would allow, the ban does not
    expect(await hit()).toEqual([false, 'banned', 59_000]);
    expect(await hit('k', 0)).toEqual([false, 'banned', 59_000]);
    clock.now += 58_999;
    expect(await hit()).toEqual([false, 'banned', 1]);
    clock.now += 1;
    expect(await hit()).toEqual([true, '', 0]);
  });

  test('each repeat offence multiplies the ban by `factor`, up to `max`; offences are forgotten `max` after the last ban', async () => {
    const { clock, hit } = setup();
    const offend = async () => {
      let last: readonly [boolean, string, number] = [true, '', 0];
      for (let i = 0; i < 5; i++) last = await hit();
      return last;
    };
    expect(await offend()).toEqual([false, 'banned', 60_000]);
    clock.now += 60_000;
    expect(await offend()).toEqual([false, 'banned', 120_000]);
    clock.now += 120_000;
    expect(await offend()).toEqual([false, 'banned', 240_000]);
    clock.now += 240_000;
    expect(await offend()).toEqual([false, 'banned', 300_000]); // 480 000 capped at max
    // Remembered until max (5 min) has passed since the ban ended: at 5 min - 1 ms, still.
    clock.now += 300_000 + 299_999;
    expect(await offend()).toEqual([false, 'banned', 300_000]);
    clock.now += 300_000 + 300_000;
    expect(await offend()).toEqual([false, 'banned', 60_000]);
  });

  test('denials spread wider than `within` do not ban; cost-too-large denials count', async () => {
    const { clock, hit } = setup();
    await hit('k', 2);
    expect(await hit()).toEqual([false, '', 1000]);
    clock.now += 5000;
    await hit('k', 2);
    expect(await hit()).toEqual([false, '', 1000]);
    clock.now += 5000; // the span opened at the first denial: 10 s later a new one opens
    await hit('k', 2);
    expect(await hit()).toEqual([false, '', 1000]);
    expect(await hit('k', 3)).toEqual([false, '', Number.POSITIVE_INFINITY]);
    expect(await hit('k', 3)).toEqual([false, 'banned', 60_000]);
  });

  test('peek shows the ban; refund does not lift it; reset forgets it', async () => {
    const { limiter, hit } = setup();
    for (let i = 0; i < 5; i++) await hit();
    const peeked = await limiter.peek('k');
    expect([peeked.allowed, peeked.reason, peeked.retryAfterMs, peeked.remaining]).toEqual([
      false,
      'banned',
      60_000,
      0,
    ]);
    await limiter.refund('k', 2);
    expect(await hit()).toEqual([false, 'banned', 60_000]);
    await limiter.reset('k');
    expect(await hit()).toEqual([true, '', 0]);
  });

  test('keys are banned apart', async () => {
    const { hit } = setup();
    for (let i = 0; i < 5; i++) await hit('a');
    expect(await hit('a')).toEqual([false, 'banned', 60_000]);
    expect(await hit('b')).toEqual([true, '', 0]);
  });

  test('several policies: a ban refuses every policy, with the ban as every wait', async () => {
    const { limiter } = setup({
      policies: [
        { name: 'burst', algorithm: 'fixed-window', limit: 1, window: '1s' },
        { name: 'hour', limit: 100, window: '1h' },
      ],
      ban: { after: 2, within: '1m', for: '2h' },
    });
    await limiter.consume('k');
    await limiter.consume('k');
    const banned = await limiter.consume('k');
    expect(banned.reason).toBe('banned');
    expect(banned.policies.map((p) => [p.name, p.allowed, p.retryAfterMs])).toEqual([
      ['burst', false, 7_200_000],
      ['hour', false, 7_200_000],
    ]);
  });
});

describe('limiter.ban() and limiter.unban()', () => {
  test('a manual ban replaces any ban, keeps the offence count; unban lifts the ban and the count', async () => {
    const { clock, limiter, hit } = setup();
    await limiter.ban('k', '30s');
    expect(await hit()).toEqual([false, 'banned', 30_000]);
    await limiter.ban('k', 5);
    expect(await hit()).toEqual([false, 'banned', 5]);
    clock.now += 5;
    expect(await hit()).toEqual([true, '', 0]);
    // A manual ban is no offence: the first automatic one lasts `for`.
    for (let i = 0; i < 4; i++) await hit();
    expect(await hit()).toEqual([false, 'banned', 60_000]);
    await limiter.unban('k');
    clock.now += 1000;
    expect(await hit()).toEqual([true, '', 0]);
    // Unban forgot the offence: the next ban is a first one again.
    for (let i = 0; i < 4; i++) await hit();
    expect(await hit()).toEqual([false, 'banned', 60_000]);
  });

  test('once max has passed since the last ban, a manual ban finds no offence, swept or not', async () => {
    const bans = listenBans();
    const { clock, store, limiter, hit } = setup();
    for (const key of ['a', 'b']) for (let i = 0; i < 5; i++) await hit(key);
    expect(bans.map((b) => b.offence)).toEqual([1, 1]);
    clock.now += 60_000 + 300_000;
    // 'a' is still stored; 'b' goes with the sweep (a timer, in real time) first.
    await limiter.ban('a', '1s');
    expect(store.sweep()).toBe(1);
    await limiter.ban('b', '1s');
    expect(bans.slice(2).map((b) => [b.key, b.offence])).toEqual([
      ['a', 0],
      ['b', 0],
    ]);
    clock.now += 1000;
    // The next automatic ban is a first one on both: `for`, not twice it.
    for (const key of ['a', 'b']) {
      for (let i = 0; i < 4; i++) await hit(key);
      expect(await hit(key)).toEqual([false, 'banned', 60_000]);
    }
  });

  test('a ban refuses a key whatever the policies: a set of shadow policies alone too', async () => {
    const { limiter } = setup({
      policies: { algorithm: 'fixed-window', limit: 1, window: '1s', mode: 'shadow' },
      ban: {},
    });
    await limiter.ban('k', '1m');
    const d = await limiter.consume('k');
    expect([d.allowed, d.reason, d.retryAfterMs, d.shadowLimited]).toEqual([
      false,
      'banned',
      60_000,
      undefined,
    ]);
  });

  test('ban: {} gives manual bans only; denials ban nothing', async () => {
    const { limiter, hit } = setup({ ban: {} });
    for (let i = 0; i < 20; i++) expect((await hit())[1]).toBe('');
    await limiter.ban('k', '1h');
    expect(await hit()).toEqual([false, 'banned', 3_600_000]);
  });

  test('unban of a key never banned, and of an unknown key, does nothing', async () => {
    const { limiter, store, hit } = setup();
    await limiter.unban('nobody');
    expect(store.size).toBe(0);
    await hit();
    await limiter.unban('k');
    expect(await hit()).toEqual([true, '', 0]);
    expect(await hit()).toEqual([false, '', 1000]);
  });

  test('bad arguments and a limiter without `ban` are ConfigErrors naming the fix', async () => {
    const { limiter } = setup();
    await expect(limiter.ban('k', 0)).rejects.toThrow(/`duration`/);
    await expect(limiter.ban('k', '1 hour' as never)).rejects.toThrow(/`duration`/);
    await expect(limiter.ban(7 as never, '1h')).rejects.toThrow(/`key`/);
    const plain = createLimiter({ policies: POLICY, logger: quiet });
    await expect(plain.ban('k', '1h')).rejects.toThrow(/needs the limiter's `ban` option/);
    await expect(plain.unban('k')).rejects.toThrow(/needs the limiter's `ban` option/);
  });
});

describe('tollgate:ban events', () => {
  test('an automatic ban, once, by the request that started it; manual bans and unbans', async () => {
    const bans = listenBans();
    const { clock, limiter, hit } = setup({ name: 'api' });
    for (let i = 0; i < 8; i++) await hit('ip:1.2.3.4');
    expect(bans).toEqual([
      {
        limiter: 'api',
        key: 'ip:1.2.3.4',
        action: 'ban',
        durationMs: 60_000,
        until: 1_000_000 + 60_000,
        offence: 1,
        manual: false,
      },
    ]);
    clock.now += 60_000;
    for (let i = 0; i < 5; i++) await hit('ip:1.2.3.4');
    expect(bans[1]).toMatchObject({ durationMs: 120_000, offence: 2, until: 1_060_000 + 120_000 });
    await limiter.ban('ip:1.2.3.4', '1h');
    expect(bans[2]).toEqual({
      limiter: 'api',
      key: 'ip:1.2.3.4',
      action: 'ban',
      durationMs: 3_600_000,
      until: 1_060_000 + 3_600_000,
      offence: 2,
      manual: true,
    });
    await limiter.unban('ip:1.2.3.4');
    expect(bans[3]).toMatchObject({ action: 'unban', durationMs: 0, offence: 0, manual: true });
    expect(bans).toHaveLength(4);
  });
});

describe('options', () => {
  const make = (ban: unknown, extra: Partial<LimiterOptions> = {}) =>
    createLimiter({ policies: POLICY, ban: ban as BanOptions, logger: quiet, ...extra });
  test.each([
    [{ after: 3, within: '1m' }, /needs `after`, `within` and `for` together.*Got after, within/],
    [{ after: 0, within: '1m', for: '1h' }, /`ban.after`.*1 to 1000000/],
    [{ after: 2.5, within: '1m', for: '1h' }, /`ban.after`/],
    [{ after: 3, within: '1 minute', for: '1h' }, /`ban.within`/],
    [{ after: 3, within: '1m', for: -5 }, /`ban.for`/],
    [{ after: 3, within: '1m', for: '1h', escalate: { factor: 2 } }, /`ban.escalate.max`/],
    [
      { after: 3, within: '1m', for: '1h', escalate: { max: '30m' } },
      /`ban.escalate.max`.*at least `ban.for`/,
    ],
    [{ after: 3, within: '1m', for: '1h', escalate: { factor: 1, max: '1d' } }, /`ban.escalate.factor`/],
    [
      { after: 3, within: '1m', for: '1h', escalate: { factor: 2, max: '1d', cap: 1 } },
      /Unknown option `cap`/,
    ],
    [{ escalate: { max: '1d' } }, /`ban.escalate` needs automatic bans/],
    [{ after: 3, within: '1m', for: '1h', recheck: 'soon' }, /`ban.recheck`/],
    [{ afer: 3 }, /Did you mean `after`/],
    ['5m', /`ban`/],
  ])('%j is a ConfigError', (ban, message) => {
    let error: unknown;
    try {
      make(ban);
    } catch (e) {
      error = e;
    }
    expect(isConfigError(error)).toBe(true);
    expect((error as Error).message).toMatch(message);
  });

  test('a store without ban and unban methods is a ConfigError', () => {
    const inner = new MemoryStore();
    const bare: Store = {
      consume: (k, s, c, i) => inner.consume(k, s, c, i),
      peek: (k, s) => inner.peek(k, s),
      refund: (k, s, c) => inner.refund(k, s, c),
      reset: (k, s) => inner.reset(k, s),
    };
    expect(() => make({}, { store: bare })).toThrow(/store that keeps bans.*`store`/);
    expect(() => make({}, { fallback: bare })).toThrow(/`fallback` given has no `ban`/);
  });

  test('TOLLGATE_BAN_CONCURRENCY: automatic bans beside a concurrency policy', () => {
    const warned: string[] = [];
    const logger = { warn: (m: string) => warned.push(m), error: () => undefined };
    const policies: Policy[] = [
      { limit: 100, window: '1m' },
      { name: 'slots', algorithm: 'concurrency', limit: 2, lease: '30s' },
    ];
    make({ after: 3, within: '1m', for: '1h' }, { policies, logger });
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(/^\[TOLLGATE_BAN_CONCURRENCY\] .*'slots'/);
    // Manual bans only: no denial counts, no warning.
    warned.length = 0;
    make({}, { policies, logger });
    expect(warned).toEqual([]);
  });

  test('TOLLGATE_BAN_SHORT: the longest ban is shorter than the longest window', () => {
    const warned: string[] = [];
    const logger = { warn: (m: string) => warned.push(m), error: () => undefined };
    make({ after: 3, within: '1m', for: '10m' }, { policies: { limit: 100, window: '1h' }, logger });
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(/^\[TOLLGATE_BAN_SHORT\] .*'100-per-1h'/);
    // Escalation to at least the window is fine.
    warned.length = 0;
    make(
      { after: 3, within: '1m', for: '10m', escalate: { max: '1h' } },
      { policies: { limit: 100, window: '1h' }, logger },
    );
    expect(warned).toEqual([]);
    // Buckets refuse only until their next unit, shadow policies never: no warning for them.
    make(
      { after: 3, within: '1m', for: '10m' },
      {
        policies: [
          { name: 'tb', algorithm: 'token-bucket', limit: 1000, window: '1h' },
          { name: 'sh', limit: 100, window: '1h', mode: 'shadow' },
          { name: 'sw', limit: 10, window: '1m' },
        ],
        logger,
      },
    );
    expect(warned).toEqual([]);
  });

  test('automatic bans turn the denied-key cache off; asking for it warns TOLLGATE_BAN_BLOCKED_CACHE', async () => {
    const warned: string[] = [];
    const logger = { warn: (m: string) => warned.push(m), error: () => undefined };
    const remote = new CountingStore(new MemoryStore());
    const limiter = make({ after: 3, within: '1m', for: '1h' }, { store: remote, logger });
    for (let i = 0; i < 5; i++) await limiter.consume('k');
    // Every denial reached the store (no 'blocked-cache'), so the third one banned.
    expect(remote.calls.consume).toBe(5);
    expect((await limiter.consume('k')).reason).toBe('banned');
    expect(warned).toEqual([]);
    make({ after: 3, within: '1m', for: '1h' }, { store: remote, logger, blockedCache: true });
    expect(warned[0]).toMatch(/^\[TOLLGATE_BAN_BLOCKED_CACHE\] /);
    expect(WARNINGS.BAN_BLOCKED_CACHE).toBe('TOLLGATE_BAN_BLOCKED_CACHE');
  });
});

/** A real MemoryStore behind a remote-looking face that counts the calls reaching it. */
class CountingStore implements Store {
  readonly remote = true;
  readonly calls = { consume: 0, peek: 0, ban: 0, unban: 0 };
  readonly clock;
  constructor(readonly inner: MemoryStore) {
    this.clock = inner.clock;
  }
  consume(key: string, set: PolicySet, cost: number, info?: ConsumeInfo): Promise<Outcome[]> {
    this.calls.consume++;
    return this.inner.consume(key, set, cost, info);
  }
  peek(key: string, set: PolicySet, info?: ConsumeInfo): Promise<Outcome[]> {
    this.calls.peek++;
    return this.inner.peek(key, set, info);
  }
  refund(key: string, set: PolicySet, cost: number, countedAt?: number): Promise<void> {
    return this.inner.refund(key, set, cost, countedAt);
  }
  reset(key: string, set: PolicySet): Promise<void> {
    return this.inner.reset(key, set);
  }
  ban(key: string, set: PolicySet, durationMs: number) {
    this.calls.ban++;
    return this.inner.ban(key, set, durationMs);
  }
  unban(key: string, set: PolicySet): Promise<void> {
    this.calls.unban++;
    return this.inner.unban(key, set);
  }
}

describe('the ban cache (remote stores)', () => {
  function remoteSetup(recheck: BanOptions['recheck']) {
    const clock = { now: 5_000_000 };
    const store = new CountingStore(new MemoryStore({ clock: () => clock.now }));
    const limiter = createLimiter({
      policies: POLICY,
      store,
      ban: { after: 2, within: '10s', for: '1m', ...(recheck === undefined ? {} : { recheck }) },
      logger: quiet,
    });
    return { clock, store, limiter };
  }

  test('recheck: false: a known ban costs no store call until it ends', async () => {
    const { clock, store, limiter } = remoteSetup(false);
    for (let i = 0; i < 4; i++) await limiter.consume('k');
    expect(store.calls.consume).toBe(4);
    for (let i = 0; i < 1000; i++) {
      const d = limiter.decide('k');
      // Answered synchronously, from the cache.
      expect(d instanceof Promise).toBe(false);
    }
    clock.now += 59_999;
    expect(await limiter.consume('k', { cost: 2 })).toMatchObject({ reason: 'banned', retryAfterMs: 1 });
    expect(store.calls.consume).toBe(4);
    clock.now += 1;
    expect((await limiter.consume('k')).allowed).toBe(true);
    expect(store.calls.consume).toBe(5);
  });

  test('by default a known ban is trusted for 1 s, then asked once: an unban elsewhere shows within it', async () => {
    const { clock, store, limiter } = remoteSetup(undefined);
    for (let i = 0; i < 4; i++) await limiter.consume('k');
    const atBan = store.calls.consume;
    for (let t = 0; t < 10_000; t += 10) {
      await limiter.consume('k');
      clock.now += 10;
    }
    // 10 s of requests every 10 ms: one store call per second after the first (at 1 s, ..., 9 s).
    expect(store.calls.consume - atBan).toBe(9);
    // A recheck (still banned), then another process unbans (straight on the shared store): this
    // one trusts what it knows for up to 1 s more, and lets the key through from then on.
    expect((await limiter.consume('k')).reason).toBe('banned');
    const calls = store.calls.consume;
    await store.inner.unban('k', limiter.resolve());
    clock.now += 999;
    expect((await limiter.consume('k')).reason).toBe('banned');
    expect(store.calls.consume).toBe(calls);
    clock.now += 1;
    expect((await limiter.consume('k')).allowed).toBe(true);
  });

  test("this process's unban and reset lift the cached ban at once; ban() is cached too", async () => {
    const { clock, store, limiter } = remoteSetup(false);
    for (let i = 0; i < 4; i++) await limiter.consume('k');
    clock.now += 1000; // the policy's window is over: only the ban refuses
    expect((await limiter.consume('k')).reason).toBe('banned');
    await limiter.unban('k');
    expect((await limiter.consume('k')).allowed).toBe(true);
    await limiter.ban('k', '1h');
    const calls = store.calls.consume;
    expect(await limiter.consume('k')).toMatchObject({ reason: 'banned', retryAfterMs: 3_600_000 });
    expect((await limiter.peek('k')).reason).toBe('banned');
    expect([store.calls.consume, store.calls.peek]).toEqual([calls, 0]);
    await limiter.reset('k');
    expect((await limiter.consume('k')).allowed).toBe(true);
  });
});

describe('property: random traffic against a model of the rules', () => {
  test('every decision of a banned limiter equals the model', async () => {
    const config = fc.record({
      limit: fc.integer({ min: 1, max: 4 }),
      window: fc.integer({ min: 1, max: 3000 }),
      after: fc.integer({ min: 1, max: 4 }),
      within: fc.integer({ min: 1, max: 5000 }),
      for: fc.integer({ min: 1, max: 20_000 }),
      factor: fc.constantFrom(2, 3, 1.5),
      extra: fc.integer({ min: 0, max: 100_000 }),
    });
    const op = fc.record({
      advance: fc.oneof(
        { arbitrary: fc.integer({ min: 0, max: 30 }), weight: 4 },
        { arbitrary: fc.integer({ min: 0, max: 30_000 }), weight: 1 },
        { arbitrary: fc.constant('retry' as const), weight: 2 },
      ),
      cost: fc.constantFrom(0, 1, 1, 1, 2, 9),
    });
    let banned = 0;
    let escalated = 0;
    await fc.assert(
      fc.asyncProperty(config, fc.array(op, { minLength: 1, maxLength: 80 }), async (c, ops) => {
        const clock = { now: 77_777 };
        const limiter = createLimiter({
          policies: { algorithm: 'fixed-window', limit: c.limit, window: c.window },
          store: new MemoryStore({ clock: () => clock.now }),
          ban: {
            after: c.after,
            within: c.within,
            for: c.for,
            escalate: { factor: c.factor, max: c.for + c.extra },
          },
          logger: quiet,
        });
        const max = c.for + c.extra;
        // The model: a fixed window (DESIGN.md) and the README's ban rules, with plain numbers.
        let start = Number.NEGATIVE_INFINITY;
        let count = 0;
        let until = 0;
        let offence = 0;
        let spanStart = 0;
        let denials = 0;
        let wait = 0;
        for (const { advance, cost } of ops) {
          clock.now += advance === 'retry' ? (Number.isFinite(wait) ? wait : 0) : advance;
          const t = clock.now;
          const d = await limiter.consume('k', { cost });
          let expected: [boolean, string, number];
          if (t < until) {
            expected = [false, 'banned', until - t];
          } else {
            if (t >= start + c.window) {
              start = Number.NEGATIVE_INFINITY;
              count = 0;
            }
            if (count + cost <= c.limit) {
              if (start === Number.NEGATIVE_INFINITY) start = t;
              count += cost;
              expected = [true, '', 0];
            } else {
              const retry = cost > c.limit ? Number.POSITIVE_INFINITY : start + c.window - t;
              if (denials === 0 || t >= spanStart + c.within) {
                spanStart = t;
                denials = 0;
              }
              denials++;
              if (denials >= c.after) {
                offence = offence > 0 && t < until + max ? offence + 1 : 1;
                let length = c.for;
                for (let i = 1; i < offence; i++) length = Math.min(length * c.factor, max);
                length = Math.floor(length);
                until = t + length;
                denials = 0;
                banned++;
                if (offence > 1) escalated++;
                expected = [false, 'banned', length];
              } else {
                expected = [false, '', retry];
              }
            }
          }
          wait = expected[2];
          expect([d.allowed, d.reason ?? '', d.retryAfterMs]).toEqual(expected);
        }
      }),
      { numRuns: 300 },
    );
    expect(banned).toBeGreaterThan(100);
    expect(escalated).toBeGreaterThan(20);
  });
});

describe('a banned answer and calendar periods', () => {
  test('states the period in force (April: 30 days), as the answers before the ban did', async () => {
    // 15 April 2026, noon UTC.
    let now = Date.UTC(2026, 3, 15, 12);
    const limiter = createLimiter({
      policies: { limit: 1, window: { calendar: 'month' } },
      store: new MemoryStore({ clock: () => now }),
      ban: { after: 1, within: '1h', for: '1h' },
    });
    const first = await limiter.consume('k');
    expect(first.policies[0]!.windowMs).toBe(30 * 86_400_000);
    now += 1000;
    const denied = await limiter.consume('k');
    expect(denied.reason).toBe('banned');
    expect(denied.policies[0]!.windowMs).toBe(30 * 86_400_000);
    // Answered from the ban alone (no policy state read): the same period.
    now += 1000;
    const again = await limiter.consume('k');
    expect([again.reason, again.policies[0]!.windowMs]).toEqual(['banned', 30 * 86_400_000]);
  });
});

/** A CountingStore that tells of lifted bans as a RedisStore does (`onLift`), driven by the test. */
class PushingStore extends CountingStore {
  readonly listeners = new Set<LiftListener>();
  onLift(listener: LiftListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  listening(on: boolean, cause?: Error): void {
    for (const l of this.listeners) l.listening(on, cause);
  }
  /** Another process unbans `key`: the shared state, then the news. */
  async unbanElsewhere(key: string, set: PolicySet): Promise<void> {
    await this.inner.unban(key, set);
    for (const l of this.listeners) l.lifted(liftId(key, set));
  }
}

describe('the ban cache with a store that tells of lifted bans (onLift)', () => {
  function pushSetup() {
    const clock = { now: 5_000_000 };
    const store = new PushingStore(new MemoryStore({ clock: () => clock.now }));
    const warned: string[] = [];
    const limiter = createLimiter({
      policies: POLICY,
      store,
      ban: { after: 2, within: '10s', for: '1m' },
      logger: { warn: (m: string) => warned.push(m), error: () => undefined },
    });
    const banned = async () => {
      for (let i = 0; i < 4; i++) await limiter.consume('k');
      clock.now += 1000; // the policy's window is over: only the ban refuses
    };
    return { clock, store, limiter, warned, banned };
  }

  test('while listening, a known ban costs no store call until it ends, whatever recheck says', async () => {
    const { clock, store, limiter, banned } = pushSetup();
    expect(store.listeners.size).toBe(1);
    store.listening(true);
    await banned();
    const calls = store.calls.consume;
    for (let t = 0; t < 58_000; t += 10) {
      expect((await limiter.consume('k')).reason).toBe('banned');
      clock.now += 10;
    }
    expect(store.calls.consume).toBe(calls);
    clock.now += 1000;
    expect((await limiter.consume('k')).allowed).toBe(true);
    expect(store.calls.consume).toBe(calls + 1);
  });

  test('an unban elsewhere is heard: the very next request reaches the store and is let through', async () => {
    const { store, limiter, banned } = pushSetup();
    store.listening(true);
    await banned();
    expect((await limiter.consume('k')).reason).toBe('banned');
    await store.unbanElsewhere('k', limiter.resolve());
    expect((await limiter.consume('k')).allowed).toBe(true);
  });

  test('not listening: trusted for recheck (1 s); losing the subscription clips known bans to it and warns once; each subscribe drops them', async () => {
    const { clock, store, limiter, warned, banned } = pushSetup();
    await banned(); // never subscribed yet: as a store that cannot tell
    await limiter.consume('k'); // the ban as known for 1 s has just run out: asked again
    let calls = store.calls.consume;
    clock.now += 999;
    await limiter.consume('k');
    expect(store.calls.consume).toBe(calls);
    clock.now += 1;
    await limiter.consume('k');
    expect(store.calls.consume).toBe(++calls);
    // Subscribed: what was known is dropped, asked once, then trusted to the end.
    store.listening(true);
    await limiter.consume('k');
    expect(store.calls.consume).toBe(++calls);
    clock.now += 5000;
    await limiter.consume('k');
    expect(store.calls.consume).toBe(calls);
    // The subscription drops: trusted for 1 s more at most, one warning.
    store.listening(false, new Error('Socket closed unexpectedly'));
    store.listening(false, new Error('Socket closed unexpectedly'));
    expect(warned).toEqual([
      expect.stringMatching(/^\[TOLLGATE_BAN_PUSH_LOST\] Limiter 'default' no longer hears .*Socket closed/),
    ]);
    clock.now += 999;
    await limiter.consume('k');
    expect(store.calls.consume).toBe(calls);
    clock.now += 1;
    await limiter.consume('k');
    expect(store.calls.consume).toBe(++calls);
    // Back: dropped again, and a later loss warns again.
    store.listening(true);
    await limiter.consume('k');
    expect(store.calls.consume).toBe(++calls);
    store.listening(false, new Error('again'));
    expect(warned).toHaveLength(2);
  });

  test('a ban answer that raced a lift is trusted for recheck only', async () => {
    const { clock, store, limiter, banned } = pushSetup();
    store.listening(true);
    await banned();
    store.listening(true); // subscribed again: the ban is asked of the store once more
    // A lift of another key is heard while this request is on its way to the store.
    const pending = limiter.consume('k');
    for (const l of store.listeners) l.lifted('some other key');
    expect((await pending).reason).toBe('banned');
    const calls = store.calls.consume;
    clock.now += 1000;
    await limiter.consume('k');
    expect(store.calls.consume).toBe(calls + 1);
  });

  test('a ban answer that raced a lift of its own key is not remembered: it predates the lift', async () => {
    const { store, limiter, banned } = pushSetup();
    store.listening(true);
    await banned();
    store.listening(true); // subscribed again: the ban is asked of the store once more
    // The store answers banned, and this key's unban elsewhere is heard before that answer is read.
    const pending = limiter.consume('k');
    for (const l of store.listeners) l.lifted(liftId('k', limiter.resolve()));
    expect((await pending).reason).toBe('banned');
    const calls = store.calls.consume;
    // The next request asks the store at once (within recheck): a cached ban would refuse it here.
    await limiter.consume('k');
    expect(store.calls.consume).toBe(calls + 1);
  });

  test('close() stops listening', async () => {
    const { store, limiter } = pushSetup();
    await limiter.close();
    expect(store.listeners.size).toBe(0);
  });
});
