/**
 * One suite, every store: scripted traffic on a virtual clock, each answer compared exactly with the
 * pure TypeScript reference (`evaluate`, `peekOutcomes`, `refundStates` from @tollgate/core run on a
 * model state, and for a concurrency policy `takeSlot` on a model lease set). For the RedisStore
 * this is what ties the Lua scripts to the TypeScript algorithms.
 */
import { randomUUID } from 'node:crypto';
import {
  type BanOptions,
  banStates,
  type Clock,
  type ConsumeInfo,
  evaluate,
  GRAINS,
  type LeaseSet,
  MAX_WINDOW_MS,
  MemoryStore,
  MemoryUsageStore,
  OTHER,
  type Outcome,
  type Policy,
  type PolicySet,
  peekOutcomes,
  type RatePolicy,
  refundStates,
  resolveBan,
  resolvePolicySet,
  type Settlement,
  STEPS,
  type State,
  type Store,
  settleStates,
  takeSlot,
  USAGE_RESULTS,
  unbanStates,
} from '@tollgate/core/internal';
import { type RedisClientLike, RedisStore, RedisUsageStore } from '@tollgate/redis';
import fc from 'fast-check';
import { Cluster, Redis } from 'ioredis';
import { createClient } from 'redis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';

/** A virtual epoch that is not a multiple of any usual window, so window alignment matters. */
const START = 1_700_000_123_457;
const NY = 'America/New_York';

interface Variant {
  name: string;
  /** Connects once per suite; returns a store factory and a teardown. */
  setup(): Promise<{ make(clock: Clock): Store; teardown(): Promise<void> }>;
}

const prefix = () => `t:${randomUUID()}:`;

const variants: Variant[] = [
  {
    name: 'MemoryStore',
    async setup() {
      return { make: (clock) => new MemoryStore({ clock }), teardown: async () => undefined };
    },
  },
  {
    name: 'RedisStore on ioredis',
    async setup() {
      const client = new Redis({ host: '127.0.0.1', port: inject('redisPort'), lazyConnect: true });
      await client.connect();
      return {
        make: (clock) => new RedisStore({ client, clock, prefix: prefix() }),
        teardown: async () => void (await client.quit()),
      };
    },
  },
  {
    name: 'RedisStore on an ioredis Cluster',
    async setup() {
      const client = new Cluster(inject('clusterNodes'), { lazyConnect: true });
      await client.connect();
      return {
        make: (clock) => new RedisStore({ client, clock, prefix: prefix() }),
        teardown: async () => void (await client.quit()),
      };
    },
  },
  {
    name: 'RedisStore on node-redis',
    async setup() {
      const client = createClient({ socket: { host: '127.0.0.1', port: inject('redisPort') } });
      await client.connect();
      return {
        make: (clock) => new RedisStore({ client, clock, prefix: prefix() }),
        teardown: async () => void (await client.close()),
      };
    },
  },
];

/**
 * Runs every operation on the store under test and on the reference model at the same virtual
 * time, and requires identical answers.
 */
class Driver {
  now = START;
  readonly clock: Clock = () => this.now;
  readonly store: Store;
  private readonly model = new Map<string, (State | undefined)[]>();
  /** The model's requests in flight per (set, key), for sets with a concurrency policy. */
  private readonly leases = new Map<string, LeaseSet>();
  /** The lease ids the store handed out per (set, key), in order, released or not. */
  readonly held = new Map<string, string[]>();
  private readonly history: string[] = [];
  /** The `countedAt` of every allowed consume, in order. */
  readonly counted: number[] = [];
  /** Consumes refused for a ban, and bans they started: so that a generator that reaches none shows. */
  readonly bans = { refused: 0, started: 0 };

  constructor(make: (clock: Clock) => Store) {
    this.store = make(this.clock);
  }

  at(time: number): void {
    this.now = time;
  }

  advance(ms: number): void {
    this.now += ms;
    this.history.push(`+${ms}ms`);
  }

  async consume(set: PolicySet, key: string, cost = 1): Promise<Outcome[]> {
    this.history.push(`consume(${key}, ${cost})`);
    const id = `${set.id}\n${key}`;
    const leases = this.leasesOf(set, id);
    const expected = evaluate(this.model.get(id) ?? [], this.now, set, cost, leases);
    // A denial leaves the policies as they were; with bans it may count in the ban slot.
    this.model.set(id, expected.states);
    const info: ConsumeInfo = {};
    const actual = await this.store.consume(key, set, cost, info);
    expect(actual, this.context()).toEqual(expected.outcomes);
    // The store's time of the request: what a refund needs to find the window that counted it.
    expect(info.countedAt, this.context()).toBe(this.now);
    if (set.ban !== undefined) {
      if (expected.banLeftMs > 0) this.bans.refused++;
      if (expected.banOffence > 0) this.bans.started++;
      // 0 or absent alike: not banned, no ban started.
      expect([info.banLeftMs ?? 0, info.banOffence ?? 0], this.context()).toEqual([
        expected.banLeftMs,
        expected.banOffence,
      ]);
    }
    if (expected.allowed) this.counted.push(this.now);
    // A lease id exactly when the request took a slot; the model holds the same lease.
    const took =
      expected.allowed && leases !== undefined && takeSlot(set, leases, String(info.lease), this.now, cost);
    expect(info.lease !== undefined, this.context()).toBe(took);
    if (took) {
      const ids = this.held.get(id) ?? [];
      ids.push(info.lease!);
      this.held.set(id, ids);
    }
    return actual;
  }

  /** Lets go of lease `lease` (one the store handed out for `key`, released or not). */
  async release(set: PolicySet, key: string, lease: string): Promise<void> {
    this.history.push(`release(${key}, ${lease})`);
    this.leasesOf(set, `${set.id}\n${key}`)?.remove(lease);
    expect(await this.store.release!(key, set, lease), this.context()).toBe(this.now);
  }

  /** The model lease set of (set, key), made on first use; undefined without a concurrency policy. */
  private leasesOf(set: PolicySet, id: string): LeaseSet | undefined {
    if (set.holder < 0) return undefined;
    let leases = this.leases.get(id);
    if (leases === undefined) {
      leases = STEPS[set.policies[set.holder]!.algorithm].holds!.create();
      this.leases.set(id, leases);
    }
    return leases;
  }

  async peek(set: PolicySet, key: string): Promise<Outcome[]> {
    this.history.push(`peek(${key})`);
    const id = `${set.id}\n${key}`;
    const expectedInfo: ConsumeInfo = {};
    const expected = peekOutcomes(
      this.model.get(id) ?? [],
      this.now,
      set,
      expectedInfo,
      this.leasesOf(set, id),
    );
    const info: ConsumeInfo = {};
    const actual = await this.store.peek(key, set, info);
    expect(actual, this.context()).toEqual(expected);
    if (set.ban !== undefined) expect(info.banLeftMs || 0, this.context()).toBe(expectedInfo.banLeftMs ?? 0);
    return actual;
  }

  /** `limiter.ban()`: banned for `durationMs` from now; answers the ban's end and the offence kept. */
  async ban(set: PolicySet, key: string, durationMs: number): Promise<{ until: number; offence: number }> {
    this.history.push(`ban(${key}, ${durationMs})`);
    const id = `${set.id}\n${key}`;
    const states = banStates(this.model.get(id) ?? [], this.now, set, durationMs);
    this.model.set(id, states);
    const answer = await this.store.ban!(key, set, durationMs);
    expect(answer, this.context()).toEqual({
      until: this.now + durationMs,
      offence: states[set.policies.length]![1],
    });
    return answer;
  }

  async unban(set: PolicySet, key: string): Promise<void> {
    this.history.push(`unban(${key})`);
    const id = `${set.id}\n${key}`;
    this.model.set(id, unbanStates(this.model.get(id) ?? [], set));
    await this.store.unban!(key, set);
  }

  /** Gives back `cost`, counted at `countedAt` if given (the time of an earlier allowed consume). */
  async refund(set: PolicySet, key: string, cost = 1, countedAt?: number): Promise<void> {
    this.history.push(`refund(${key}, ${cost}${countedAt === undefined ? '' : `, counted at ${countedAt}`})`);
    const id = `${set.id}\n${key}`;
    const states = refundStates(this.model.get(id) ?? [], this.now, set, cost, countedAt);
    if (states.every((s) => s === undefined)) {
      this.model.delete(id);
      // Only when every lease has ended (a concurrency state outlives its last lease).
      this.leases.delete(id);
    } else this.model.set(id, states);
    await this.store.refund(key, set, cost, countedAt);
  }

  /**
   * A reservation's settle: `delta` more units (past the limit, up to maxDebt) or, negative, given
   * back to the state that counted them at `countedAt`. Answers as a peek after it.
   */
  async settle(set: PolicySet, key: string, delta: number, countedAt?: number): Promise<Settlement> {
    this.history.push(
      `settle(${key}, ${delta}${countedAt === undefined ? '' : `, counted at ${countedAt}`})`,
    );
    const id = `${set.id}\n${key}`;
    const { states, uncharged } = settleStates(this.model.get(id) ?? [], this.now, set, delta, countedAt);
    const leases = this.leasesOf(set, id);
    if (states.every((s) => s === undefined)) {
      this.model.delete(id);
      this.leases.delete(id);
    } else this.model.set(id, states);
    const expected: Settlement = {
      outcomes: peekOutcomes(states, this.now, set, undefined, leases),
      uncharged,
    };
    const actual = await this.store.settle!(key, set, delta, countedAt);
    expect(actual, this.context()).toEqual(expected);
    return actual;
  }

  async reset(set: PolicySet, key: string): Promise<void> {
    this.history.push(`reset(${key})`);
    this.model.delete(`${set.id}\n${key}`);
    this.leases.delete(`${set.id}\n${key}`);
    await this.store.reset(key, set);
  }

  async close(): Promise<void> {
    await this.store.close?.();
  }

  private context(): string {
    return `at ${this.now} (start ${START}) after: ${this.history.slice(-12).join(', ')}`;
  }
}

const set = (policies: Policy | Policy[], namespace = 'conformance', ban?: BanOptions) =>
  resolvePolicySet(policies, namespace, 'policies', undefined, ban && resolveBan(ban).ban);

/** The longest finite `field` of the last answer, 0 if none. */
const announced = (outcomes: Outcome[], field: 'retryAfterMs' | 'resetMs') =>
  Math.max(0, ...outcomes.map((o) => o[field]).filter(Number.isFinite));

/** Denied with a finite wait r: denied at r - 1, allowed at r (with no other traffic). */
async function expectTightRetry(d: Driver, s: PolicySet, key: string, cost: number, denied: Outcome[]) {
  const wait = Math.max(...denied.filter((o) => !o.allowed).map((o) => o.retryAfterMs));
  expect(Number.isFinite(wait) && wait > 0).toBe(true);
  if (wait > 1) {
    d.advance(wait - 1);
    expect((await d.consume(s, key, cost)).every((o) => o.allowed)).toBe(false);
    d.advance(1);
  } else {
    d.advance(wait);
  }
  expect((await d.consume(s, key, cost)).every((o) => o.allowed)).toBe(true);
}

/** The traffic every single-policy scenario goes through; `capacity` is limit (windows) or burst. */
async function standardTraffic(d: Driver, s: PolicySet, capacity: number) {
  const key = `user:${randomUUID()}`;
  await d.peek(s, key);
  await d.consume(s, key, 0);
  await d.consume(s, key, 1);
  await d.consume(s, key, 3);
  // Larger than the capacity: denied for ever, consuming nothing.
  const never = await d.consume(s, key, capacity + 1);
  expect(never[0]!.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
  let last: Outcome[] = [];
  for (let i = 0; i < capacity + 2; i++) {
    last = await d.consume(s, key, 1);
    if (!last[0]!.allowed) break;
  }
  expect(last[0]!.allowed).toBe(false);
  await d.peek(s, key);
  await d.consume(s, key, 0);
  await expectTightRetry(d, s, key, 1, await d.consume(s, key, 1));
  await d.refund(s, key, 2);
  await d.peek(s, key);
  await d.consume(s, key, 3);
  d.advance(7);
  await d.consume(s, key, 2);
  await d.refund(s, key, capacity * 10);
  await d.peek(s, key);
  for (let i = 0; i < capacity; i++) await d.consume(s, key, 1);
  const denied = await d.consume(s, key, 2);
  if (!denied[0]!.allowed) await expectTightRetry(d, s, key, 2, denied);
  // Time passing in odd steps, across window and bucket boundaries; refunds of units counted now,
  // one step ago and two steps ago (in this window, the previous one, or earlier).
  for (const step of [1, 13, 250, 999, 1, 3_001, 10_000, 86_400_000]) {
    const earlier = d.counted.slice(-6);
    d.advance(step);
    await d.peek(s, key);
    await d.consume(s, key, 1);
    await d.consume(s, key, 2);
    await d.refund(s, key, 1);
    for (const at of [earlier[0], earlier.at(-1), d.counted.at(-1)]) {
      if (at !== undefined) await d.refund(s, key, 1, at);
    }
    await d.peek(s, key);
  }
  await d.reset(s, key);
  await d.peek(s, key);
  await d.consume(s, key, capacity);
  await d.consume(s, key, 1);
}

/**
 * Reservations settled above and below their estimates (issue 12): a charge before any state, debt
 * past the limit with a tight retry, maxDebt stopping a charge (the rest uncharged), units given
 * back to the state that counted them, and time passing over a debt.
 */
async function debtTraffic(d: Driver, s: PolicySet, capacity: number) {
  const key = `debt:${randomUUID()}`;
  await d.settle(s, key, 2);
  await d.consume(s, key, 1);
  const at = d.counted.at(-1)!;
  const owed = await d.settle(s, key, capacity + 3);
  expect(owed.outcomes[0]!.allowed).toBe(false);
  await expectTightRetry(d, s, key, 1, await d.consume(s, key, 1));
  const capped = await d.settle(s, key, capacity * 5);
  expect(capped.uncharged[0]).toBeGreaterThan(0);
  await d.peek(s, key);
  await d.consume(s, key, 0);
  await expectTightRetry(d, s, key, 2, await d.consume(s, key, 2));
  await d.settle(s, key, -2, at);
  await d.settle(s, key, -1, d.counted.at(-1));
  await d.settle(s, key, -3);
  await d.settle(s, key, 0);
  for (const step of [1, 13, 333, 1000, 3_001, 86_400_000]) {
    d.advance(step);
    await d.settle(s, key, capacity + 1);
    await d.peek(s, key);
    await d.consume(s, key, 1);
    await d.settle(s, key, -1, d.counted.at(-1));
  }
  await d.reset(s, key);
  await d.settle(s, key, -4);
  await d.peek(s, key);
}

describe.each(variants)('$name', (variant) => {
  let env: Awaited<ReturnType<Variant['setup']>>;
  let d: Driver;

  beforeAll(async () => {
    env = await variant.setup();
  });
  afterAll(async () => {
    await env?.teardown();
  });
  beforeEach(() => {
    d = new Driver(env.make);
  });
  afterEach(async () => {
    await d.close();
  });

  describe('single policies', () => {
    const cases: [string, RatePolicy, number][] = [
      ['fixed-window 5/s', { algorithm: 'fixed-window', limit: 5, window: '1s' }, 5],
      ['fixed-window 3 per 7ms', { algorithm: 'fixed-window', limit: 3, window: 7 }, 3],
      ['sliding-window 10/s', { algorithm: 'sliding-window', limit: 10, window: '1s' }, 10],
      ['sliding-window 7 per 333ms', { algorithm: 'sliding-window', limit: 7, window: 333 }, 7],
      ['token-bucket 5/s', { algorithm: 'token-bucket', limit: 5, window: '1s' }, 5],
      ['token-bucket 3/s burst 10', { algorithm: 'token-bucket', limit: 3, window: '1s', burst: 10 }, 10],
      ['leaky-bucket 4/s (delay)', { algorithm: 'leaky-bucket', limit: 4, window: '1s' }, 4],
      [
        'leaky-bucket 2 per 300ms burst 6 (delay)',
        { algorithm: 'leaky-bucket', limit: 2, window: 300, burst: 6 },
        6,
      ],
      [
        'leaky-bucket 5/s burst 8 (no delay)',
        { algorithm: 'leaky-bucket', limit: 5, window: '1s', burst: 8, delay: false },
        8,
      ],
      // Calendar windows (issue 12): the scripts get the period from the store, and must agree.
      ['fixed-window 5 per clock hour (UTC)', { limit: 5, window: { calendar: 'hour' } }, 5],
      ['fixed-window 6 per day (New York)', { limit: 6, window: { calendar: 'day', timeZone: NY } }, 6],
      ['fixed-window 4 per week from Sunday', { limit: 4, window: { calendar: 'week', startDay: 7 } }, 4],
      [
        'fixed-window 7 per month from the 15th (Kolkata)',
        { limit: 7, window: { calendar: 'month', startDay: 15, timeZone: 'Asia/Kolkata' } },
        7,
      ],
    ];
    it.each(cases)('%s', async (_name, policy, capacity) => {
      await standardTraffic(d, set(policy), capacity);
    });
    it.each(cases)('%s, settled past its limit', async (_name, policy, capacity) => {
      await debtTraffic(d, set(policy), capacity);
      await debtTraffic(d, set({ ...policy, maxDebt: 0 }), capacity);
      await debtTraffic(d, set({ ...policy, maxDebt: 7 }), capacity);
    });
  });

  it('counts exactly (sliding window 10/s, by hand)', async () => {
    const s = set({ limit: 10, window: '1s' });
    d.at(1_700_000_000_000); // a multiple of 1000: the window starts here
    for (let i = 0; i < 10; i++) expect((await d.consume(s, 'k'))[0]!.allowed).toBe(true);
    const [denied] = await d.consume(s, 'k');
    expect(denied).toEqual({ allowed: false, remaining: 0, resetMs: 2000, retryAfterMs: 1100, delayMs: 0 });
    d.advance(1100); // estimate 10 * 900/1000 = 9
    expect(await d.consume(s, 'k')).toEqual([
      { allowed: true, remaining: 0, resetMs: 1900, retryAfterMs: 0, delayMs: 0 },
    ]);
  });

  it('leaky bucket holds admitted requests for their place in the queue', async () => {
    const s = set({ algorithm: 'leaky-bucket', limit: 4, window: '1s', burst: 3 });
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) delays.push((await d.consume(s, 'q'))[0]!.delayMs);
    expect(delays).toEqual([0, 250, 500]);
    expect((await d.consume(s, 'q'))[0]).toEqual({
      allowed: false,
      remaining: 0,
      resetMs: 750,
      retryAfterMs: 250,
      delayMs: 0,
    });
  });

  describe('concurrency: requests in flight, released or ended by their lease', () => {
    /** Every lease the store handed out for `key` so far, released or not. */
    const heldOf = (s: PolicySet, key: string) => d.held.get(`${s.id}\n${key}`) ?? [];

    it('one policy: one slot per request, a tight retry, releases, ended leases, refund, reset', async () => {
      const s = set({ algorithm: 'concurrency', limit: 3, lease: 1000 });
      const key = `cc:${randomUUID()}`;
      await d.peek(s, key);
      await d.consume(s, key, 0); // takes no slot
      await d.consume(s, key, 1);
      d.advance(100);
      await d.consume(s, key, 5); // one slot, whatever the cost
      d.advance(100);
      await d.consume(s, key, 1);
      const denied = await d.consume(s, key, 1);
      // Retry when the first lease ends (admitted 200 ms ago); reset when the last does.
      expect(denied).toEqual([
        { allowed: false, remaining: 0, resetMs: 1000, retryAfterMs: 800, delayMs: 0 },
      ]);
      expect((await d.consume(s, key, 0))[0]!.allowed).toBe(true);
      await d.peek(s, key);
      await expectTightRetry(d, s, key, 1, denied);
      const [, second, third] = heldOf(s, key);
      await d.release(s, key, second!);
      await d.release(s, key, second!); // twice: nothing more
      await d.release(s, key, 'never-held');
      expect((await d.consume(s, key, 1))[0]!.allowed).toBe(true);
      expect((await d.consume(s, key, 1))[0]!.allowed).toBe(false);
      d.advance(1000); // every lease has ended
      await d.peek(s, key);
      await d.release(s, key, third!); // after its lease: nothing
      for (let i = 0; i < 4; i++) await d.consume(s, key, 1);
      await d.refund(s, key, 2); // a refund gives back units, never a slot
      expect((await d.consume(s, key, 1))[0]!.allowed).toBe(false);
      await d.reset(s, key);
      await d.peek(s, key);
      await d.consume(s, key, 1);
      d.advance(86_400_000);
      await d.refund(s, key, 1);
      await d.peek(s, key);
      await d.consume(s, key, 1);
    });

    it('with rate policies: a rate denial takes no slot, a full policy consumes no units', async () => {
      const s = set([
        { name: 'cc', algorithm: 'concurrency', limit: 2, lease: '10s' },
        { name: 'fw', algorithm: 'fixed-window', limit: 3, window: '1m' },
      ]);
      const key = `cc:${randomUUID()}`;
      await d.consume(s, key);
      await d.consume(s, key);
      const [cc, fw] = await d.consume(s, key);
      expect(cc!.allowed).toBe(false);
      expect(fw).toEqual({ allowed: true, remaining: 1, resetMs: 60_000, retryAfterMs: 0, delayMs: 0 });
      await d.release(s, key, heldOf(s, key)[0]!);
      await d.consume(s, key);
      await d.release(s, key, heldOf(s, key)[1]!);
      const [cc2, fw2] = await d.consume(s, key);
      expect(fw2!.allowed).toBe(false);
      expect(cc2).toEqual({ allowed: true, remaining: 1, resetMs: 10_000, retryAfterMs: 0, delayMs: 0 });
      expect(heldOf(s, key)).toHaveLength(3);
      await d.peek(s, key);
    });

    const sets: [string, Policy[]][] = [
      [
        'concurrency + sliding window',
        [
          { name: 'cc', algorithm: 'concurrency', limit: 3, lease: 700 },
          { name: 'sw', limit: 10, window: '1s' },
        ],
      ],
      [
        'fixed + concurrency + token bucket',
        [
          { name: 'fw', algorithm: 'fixed-window', limit: 20, window: '5s' },
          { name: 'cc', algorithm: 'concurrency', limit: 4, lease: '2s' },
          { name: 'tb', algorithm: 'token-bucket', limit: 5, window: '1s', burst: 8 },
        ],
      ],
    ];
    it.each(sets)('%s, all or nothing', async (_name, policies) => {
      const s = set(policies);
      const key = `cc:${randomUUID()}`;
      let released = 0;
      for (const advance of [0, 1, 37, 100, 250, 699, 700, 999, 2000, 4000, 61_000]) {
        d.advance(advance);
        for (let i = 0; i < 5; i++) await d.consume(s, key, 1);
        const held = heldOf(s, key);
        if (released < held.length) await d.release(s, key, held[released++]!);
        await d.consume(s, key, 3);
        await d.consume(s, key, 0);
        await d.consume(s, key, 100);
        await d.peek(s, key);
        await d.refund(s, key, 2);
        while (released < held.length - 1) await d.release(s, key, held[released++]!);
        await d.peek(s, key);
      }
      await d.reset(s, key);
      await d.peek(s, key);
    });
  });

  describe('several policies, all or nothing', () => {
    const sets: [string, Policy[]][] = [
      [
        '10/s sliding + 50/min fixed',
        [
          { name: 'second', limit: 10, window: '1s' },
          { name: 'minute', algorithm: 'fixed-window', limit: 50, window: '1m' },
        ],
      ],
      [
        'token-bucket burst + leaky-bucket + sliding',
        [
          { name: 'tb', algorithm: 'token-bucket', limit: 5, window: '1s', burst: 12 },
          { name: 'lb', algorithm: 'leaky-bucket', limit: 8, window: '1s', burst: 6 },
          { name: 'sw', limit: 30, window: '10s' },
        ],
      ],
      [
        'leaky without delay + fixed',
        [
          { name: 'lb', algorithm: 'leaky-bucket', limit: 3, window: 500, burst: 4, delay: false },
          { name: 'fw', algorithm: 'fixed-window', limit: 9, window: '2s' },
        ],
      ],
      [
        'sliding + tighter shadow token-bucket + shadow fixed',
        [
          { name: 'sw', limit: 10, window: '1s' },
          { name: 'tb', algorithm: 'token-bucket', limit: 2, window: '1s', burst: 4, mode: 'shadow' },
          { name: 'fw', algorithm: 'fixed-window', limit: 20, window: '1m', mode: 'shadow' },
        ],
      ],
      [
        'shadow only: leaky (delay) + sliding',
        [
          { name: 'lb', algorithm: 'leaky-bucket', limit: 4, window: '1s', burst: 3, mode: 'shadow' },
          { name: 'sw', limit: 6, window: '2s', mode: 'shadow' },
        ],
      ],
      [
        'calendar month (New York) + calendar hour + 10/s sliding + 40-day rolling fixed',
        [
          { name: 'month', limit: 60, window: { calendar: 'month', timeZone: NY } },
          { name: 'hour', limit: 25, window: { calendar: 'hour' }, mode: 'shadow' },
          { name: 'second', limit: 10, window: '1s' },
          { name: 'forty-days', algorithm: 'fixed-window', limit: 70, window: '40d' },
        ],
      ],
    ];
    it.each(sets)('%s', async (_name, policies) => {
      const s = set(policies);
      const key = `multi:${randomUUID()}`;
      for (const advance of [0, 1, 37, 100, 250, 999, 1000, 4000, 30_000, 61_000]) {
        d.advance(advance);
        for (let i = 0; i < 8; i++) await d.consume(s, key, 1);
        await d.consume(s, key, 3);
        await d.consume(s, key, 0);
        await d.consume(s, key, 100);
        await d.peek(s, key);
        await d.refund(s, key, 2);
        const at = d.counted.at(-9);
        if (at !== undefined) await d.refund(s, key, 2, at);
        await d.peek(s, key);
        await d.settle(s, key, 25);
        await d.consume(s, key, 1);
        await d.settle(s, key, -3, d.counted.at(-1));
        await d.settle(s, key, 4);
      }
      await d.reset(s, key);
      await d.peek(s, key);
    });

    it('a shadow policy that would deny keeps its state and stops no other policy', async () => {
      const s = set([
        { name: 'a', algorithm: 'fixed-window', limit: 100, window: '1m' },
        { name: 's', algorithm: 'fixed-window', limit: 2, window: '1m', mode: 'shadow' },
      ]);
      await d.consume(s, 'k', 2);
      for (let i = 1; i <= 3; i++) {
        const [a, shadow] = await d.consume(s, 'k', 1);
        expect(a).toEqual({ allowed: true, remaining: 98 - i, resetMs: 60_000, retryAfterMs: 0, delayMs: 0 });
        expect(shadow).toEqual({
          allowed: false,
          remaining: 0,
          resetMs: 60_000,
          retryAfterMs: 60_000,
          delayMs: 0,
        });
      }
      // Denied by the enforced policy: nobody's state changes, the shadow one still reports its own.
      const [a, shadow] = await d.consume(s, 'k', 200);
      expect(a!.allowed).toBe(false);
      expect(shadow!.allowed).toBe(false);
      d.advance(60_000);
      expect((await d.consume(s, 'k', 2)).map((o) => o.allowed)).toEqual([true, true]);
    });

    it('a denied request consumes from no policy', async () => {
      const s = set([
        { name: 'a', algorithm: 'fixed-window', limit: 2, window: '1m' },
        { name: 'b', algorithm: 'fixed-window', limit: 100, window: '1m' },
      ]);
      await d.consume(s, 'k', 2);
      for (let i = 0; i < 5; i++) {
        const [a, b] = await d.consume(s, 'k', 1);
        expect(a!.allowed).toBe(false);
        expect(b).toEqual({ allowed: true, remaining: 98, resetMs: 60_000, retryAfterMs: 0, delayMs: 0 });
      }
    });
  });

  it('calendar windows in New York across both DST changes of 2026, day and month (issue 12)', async () => {
    const sets = [
      set({ name: 'day', limit: 4, window: { calendar: 'day', timeZone: NY } }),
      set({ name: 'month', limit: 9, window: { calendar: 'month', timeZone: NY } }),
      set([
        { name: 'day', limit: 4, window: { calendar: 'day', timeZone: NY } },
        { name: 'month', limit: 9, window: { calendar: 'month', timeZone: NY } },
      ]),
    ];
    // Local midnights: 1 and 8 March (EST), 9 March (EDT); 1 November (EDT), 2 November (EST).
    const midnights = [
      Date.UTC(2026, 2, 1, 5),
      Date.UTC(2026, 2, 8, 5),
      Date.UTC(2026, 2, 9, 4),
      Date.UTC(2026, 10, 1, 4),
      Date.UTC(2026, 10, 2, 5),
    ];
    for (const s of sets) {
      const key = `dst:${randomUUID()}`;
      for (const midnight of midnights) {
        for (const at of [midnight - 3_600_001, midnight - 1, midnight, midnight + 1, midnight + 7_200_000]) {
          d.at(at);
          await d.peek(s, key);
          for (let i = 0; i < 3; i++) await d.consume(s, key, 1);
          await d.consume(s, key, 2);
          await d.refund(s, key, 1, d.counted.at(-4));
          await d.peek(s, key);
        }
      }
    }
    // Exact numbers, on every store: the 23-hour day opens at 5:00 UTC and closes at 4:00 UTC.
    const day = sets[0]!;
    const key = `dst:${randomUUID()}`;
    const outcome = (allowed: boolean, remaining: number, resetMs: number, windowHours: number) => [
      {
        allowed,
        remaining,
        resetMs,
        retryAfterMs: allowed ? 0 : resetMs,
        delayMs: 0,
        windowMs: windowHours * 3_600_000,
      },
    ];
    d.at(Date.UTC(2026, 2, 8, 5));
    expect(await d.consume(day, key, 4)).toEqual(outcome(true, 0, 23 * 3_600_000, 23));
    d.at(Date.UTC(2026, 2, 9, 4) - 1);
    expect(await d.consume(day, key, 1)).toEqual(outcome(false, 0, 1, 23));
    d.at(Date.UTC(2026, 2, 9, 4));
    expect(await d.consume(day, key, 1)).toEqual(outcome(true, 3, 24 * 3_600_000, 24));
  });

  it('rolling windows past 24.8 days, up to the longest (issue 12)', async () => {
    const sets = [
      set({ algorithm: 'fixed-window', limit: 1_000_000_000, window: '90d' }),
      set({ algorithm: 'fixed-window', limit: 3, window: MAX_WINDOW_MS }),
      set({ algorithm: 'sliding-window', limit: 1000, window: '365d' }),
      set({ algorithm: 'token-bucket', limit: 3, window: MAX_WINDOW_MS }),
      set({ algorithm: 'leaky-bucket', limit: 4, window: '30d', delay: false }),
    ];
    for (const s of sets) {
      const key = `long:${randomUUID()}`;
      d.at(START);
      for (const step of [0, 1, 86_400_000, 25 * 86_400_000, 400 * 86_400_000]) {
        d.advance(step);
        await d.consume(s, key, 1);
        await d.consume(s, key, 3);
        await d.peek(s, key);
        await d.refund(s, key, 1);
      }
    }
  });

  it('keeps keys, sets and namespaces apart', async () => {
    const a = set({ limit: 2, window: '1m', algorithm: 'fixed-window' }, 'one');
    const b = set({ limit: 2, window: '1m', algorithm: 'fixed-window' }, 'two');
    const c = set({ limit: 3, window: '1m', algorithm: 'fixed-window' }, 'one');
    for (const s of [a, b, c]) for (const key of ['x', 'y', 'one|x', '']) await d.consume(s, key, 2);
    for (const s of [a, b, c]) for (const key of ['x', 'y', 'one|x', '']) await d.peek(s, key);
  });

  it('keeps exact values near 2^53', async () => {
    // limit x window close to Number.MAX_SAFE_INTEGER: scaled states have 16 digits.
    const big = { limit: 100_000_007, window: 90_000_001 };
    const sets = [
      set({ ...big, algorithm: 'fixed-window' }),
      set({ ...big, algorithm: 'sliding-window' }),
      set({ ...big, algorithm: 'token-bucket' }),
      set({ ...big, algorithm: 'leaky-bucket' }),
      set({ ...big, algorithm: 'leaky-bucket', delay: false }),
      set({ limit: 1_000_000, window: '1d', algorithm: 'token-bucket' }),
      set({ limit: 1_000_000, window: '1d', algorithm: 'sliding-window' }),
    ];
    for (const s of sets) {
      const key = `big:${randomUUID()}`;
      for (const cost of [1, 12_345, 99_999_999, 7, 0, 100_000_007, 3]) {
        await d.consume(s, key, cost);
        await d.peek(s, key);
        d.advance(3);
        await d.consume(s, key, 1);
        await d.refund(s, key, 2);
        d.advance(45_000_017);
      }
    }
  });

  describe('bans (the ban slot, in the same call as the counts)', () => {
    const layouts: [string, Policy | Policy[]][] = [
      ['fixed-window', { algorithm: 'fixed-window', limit: 3, window: '1s' }],
      ['sliding-window', { limit: 3, window: 700 }],
      ['token-bucket', { algorithm: 'token-bucket', limit: 2, window: '1s', burst: 3 }],
      ['leaky-bucket', { algorithm: 'leaky-bucket', limit: 3, window: '1s' }],
      [
        'several policies',
        [
          { name: 'a', limit: 3, window: '1s' },
          { name: 'b', algorithm: 'token-bucket', limit: 5, window: '10s' },
        ],
      ],
    ];
    const BAN: BanOptions = { after: 3, within: '5s', for: '10s', escalate: { factor: 2, max: '35s' } };
    /** Requests until one is refused for a ban; its wait. */
    async function hammer(s: PolicySet, key: string): Promise<number> {
      for (let i = 0; i < 20; i++) {
        const [first] = await d.consume(s, key);
        if (!first!.allowed && first!.retryAfterMs >= 10_000) return first!.retryAfterMs;
      }
      throw new Error('never banned');
    }

    it.each(layouts)(
      '%s: denials ban, bans escalate to max, manual bans, unbans',
      async (_name, policies) => {
        const s = set(policies, 'bans', BAN);
        const key = `ban:${randomUUID()}`;
        expect(await hammer(s, key)).toBe(10_000);
        await d.peek(s, key);
        d.advance(9_999);
        const [last] = await d.consume(s, key);
        expect([last!.allowed, last!.retryAfterMs]).toEqual([false, 1]);
        d.advance(1);
        await d.peek(s, key);
        // The next offence doubles the ban, the one after reaches max (40 s capped to 35 s).
        expect(await hammer(s, key)).toBe(20_000);
        d.advance(20_000);
        expect(await hammer(s, key)).toBe(35_000);
        // Requests, refunds and peeks while banned change nothing.
        d.advance(1234);
        await d.consume(s, key, 0);
        await d.refund(s, key, 5);
        await d.peek(s, key);
        // Offences are remembered until max has passed since the last ban ended.
        d.advance(35_000 - 1234 + 34_999);
        expect(await hammer(s, key)).toBe(35_000);
        d.advance(35_000 + 35_000);
        expect(await hammer(s, key)).toBe(10_000);
        // Denials outside `within` of the first do not add up.
        d.advance(10_000 + 100_000);
        await d.reset(s, key);
        for (let i = 0; i < 3; i++) await d.consume(s, key, 1);
        await d.consume(s, key, 100);
        await d.consume(s, key, 100);
        d.advance(5_000);
        const [fresh] = await d.consume(s, key, 100);
        expect(fresh!.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
        // Manual bans replace the ban and keep the offence count; unban lifts the ban and the count.
        await d.ban(s, key, 60_000);
        await d.consume(s, key);
        d.advance(30_000);
        await d.ban(s, key, 5);
        await d.consume(s, key);
        d.advance(5);
        await d.consume(s, key);
        await d.ban(s, key, 1_000_000);
        await d.unban(s, key);
        await d.peek(s, key);
        await d.consume(s, key);
        await d.unban(s, key);
        // A key with no state at all: banned and unbanned.
        const other = `ban:${randomUUID()}`;
        await d.unban(s, other);
        await d.ban(s, other, 777);
        await d.peek(s, other);
        await d.consume(s, other);
        d.advance(777);
        await d.consume(s, other);
        await d.refund(s, other, 1);
        await d.peek(s, other);
        // A settle on a key with a ban slot only, and on a fresh one.
        const third = `ban:${randomUUID()}`;
        await d.ban(s, third, 50);
        await d.settle(s, third, -1);
        await d.settle(s, third, 4);
        await d.consume(s, third);
        await d.settle(s, `ban:${randomUUID()}`, 3);
      },
    );

    it.each(layouts)(
      '%s: an offence past its memory is forgotten, whether the store still holds it or not',
      async (_name, policies) => {
        const s = set(policies, 'bans', BAN);
        const names = ['kept', 'refunded', 'denied', 'refunded-denied', 'swept'];
        const [kept, refunded, denied, refundedDenied, swept] = names.map((k) => `ban:${k}:${randomUUID()}`);
        const keys = [kept!, refunded!, denied!, refundedDenied!, swept!];
        for (const key of keys) expect(await hammer(s, key)).toBe(10_000);
        // The ban has ended and max has passed: the offence is forgotten, the policies' counts too.
        d.advance(10_000 + 35_000);
        // Still stored (a key's TTL on a caller's clock has a grace; the MemoryStore sweeps later).
        expect((await d.ban(s, kept!, 1000)).offence).toBe(0);
        // A refund with no policy state left: the RedisStore deletes the key, nothing in it mattering.
        await d.refund(s, refunded!, 1);
        expect((await d.ban(s, refunded!, 1000)).offence).toBe(0);
        // A denial (a cost no policy allows) opens a span: the slot matters again, with the old
        // offence in it, or after a refund without.
        await d.consume(s, denied!, 100);
        await d.refund(s, refundedDenied!, 1);
        await d.consume(s, refundedDenied!, 100);
        for (const key of [denied!, refundedDenied!]) expect((await d.ban(s, key, 1000)).offence).toBe(0);
        // The MemoryStore's sweep (on a timer, in real time) drops the last one.
        if (d.store instanceof MemoryStore) expect(d.store.sweep()).toBe(1);
        expect((await d.ban(s, swept!, 1000)).offence).toBe(0);
        d.advance(1000);
        // The next automatic ban is a first one, on every key.
        for (const key of keys) expect(await hammer(s, key)).toBe(10_000);
      },
    );

    it.each([
      ['one shadow policy', [{ algorithm: 'fixed-window', limit: 2, window: '1s', mode: 'shadow' }]],
      [
        'a shadow policy beside an enforced one',
        [
          { name: 'e', algorithm: 'fixed-window', limit: 100, window: '1s' },
          { name: 's', algorithm: 'fixed-window', limit: 2, window: '1s', mode: 'shadow' },
        ],
      ],
    ] as [string, Policy[]][])(
      '%s: its would-be denials never count toward a ban',
      async (_name, policies) => {
        const s = set(policies, 'bans', { after: 2, within: '5s', for: '10s' });
        const key = `ban:${randomUUID()}`;
        for (let i = 0; i < 10; i++) {
          const outcomes = await d.consume(s, key);
          expect(outcomes.at(-1)!.allowed).toBe(i < 2);
          expect(d.bans).toEqual({ refused: 0, started: 0 });
        }
        await d.peek(s, key);
      },
    );

    it('ban: {} keeps manual bans only: denials are not counted', async () => {
      const s = set({ algorithm: 'fixed-window', limit: 1, window: '1m' }, 'bans', {});
      for (let i = 0; i < 10; i++) await d.consume(s, 'k');
      await d.ban(s, 'k', 2000);
      await d.consume(s, 'k');
      d.advance(2000);
      await d.consume(s, 'k');
      await d.refund(s, 'k', 1);
      await d.peek(s, 'k');
    });

    it('matches the reference on random traffic with bans (property)', async () => {
      const ban: fc.Arbitrary<BanOptions> = fc.oneof(
        { arbitrary: fc.constant({}), weight: 1 },
        {
          arbitrary: fc.record({
            after: fc.integer({ min: 1, max: 3 }),
            within: fc.integer({ min: 1, max: 3000 }),
            for: fc.integer({ min: 1, max: 5000 }),
          }),
          weight: 2,
        },
        {
          weight: 3,
          arbitrary: fc
            .record({
              after: fc.integer({ min: 1, max: 3 }),
              within: fc.integer({ min: 1, max: 3000 }),
              for: fc.integer({ min: 1, max: 5000 }),
              factor: fc.oneof(fc.constantFrom(2, 3, 1.5), fc.double({ min: 1.01, max: 10, noNaN: true })),
              extra: fc.integer({ min: 0, max: 50_000 }),
            })
            .map(({ factor, extra, ...b }) => ({ ...b, escalate: { factor, max: b.for + extra } })),
        },
      );
      const policy: fc.Arbitrary<Policy> = fc.record({
        algorithm: fc.constantFrom(
          'fixed-window' as const,
          'sliding-window' as const,
          'token-bucket' as const,
          'leaky-bucket' as const,
        ),
        limit: fc.integer({ min: 1, max: 4 }),
        window: fc.integer({ min: 1, max: 2000 }),
      });
      const op = fc.record({
        advance: fc.oneof(
          { arbitrary: fc.constant(0), weight: 2 },
          { arbitrary: fc.integer({ min: 0, max: 50 }), weight: 2 },
          { arbitrary: fc.integer({ min: 0, max: 8000 }), weight: 1 },
          // Exactly the wait the last answer announced (a ban's end, among others).
          { arbitrary: fc.constant('retry' as const), weight: 2 },
        ),
        kind: fc.oneof(
          { arbitrary: fc.constant('consume'), weight: 12 },
          { arbitrary: fc.constantFrom('peek', 'refund', 'settle', 'reset', 'ban', 'unban'), weight: 3 },
        ),
        cost: fc.oneof(fc.constantFrom(0, 1, 1, 2), fc.integer({ min: 0, max: 9 })),
        duration: fc.integer({ min: 1, max: 9000 }),
      });
      await fc.assert(
        fc.asyncProperty(
          fc.array(policy, { minLength: 1, maxLength: 2 }),
          ban,
          fc.integer({ min: 0, max: 2 ** 42 }),
          fc.array(op, { minLength: 1, maxLength: 60 }),
          async (policies, banOptions, start, ops) => {
            const s = set(
              policies.map((p, i) => ({ ...p, name: `p${i}` })),
              'bans',
              banOptions,
            );
            const key = `prop:${randomUUID()}`;
            d.at(start);
            let last: Outcome[] = [];
            for (const { advance, kind, cost, duration } of ops) {
              d.advance(advance === 'retry' ? announced(last, 'retryAfterMs') : advance);
              if (kind === 'consume') last = await d.consume(s, key, cost);
              else if (kind === 'peek') last = await d.peek(s, key);
              else if (kind === 'refund') await d.refund(s, key, cost);
              else if (kind === 'settle') await d.settle(s, key, cost - 3);
              else if (kind === 'reset') await d.reset(s, key);
              else if (kind === 'ban') await d.ban(s, key, duration);
              else await d.unban(s, key);
            }
          },
        ),
        { numRuns: 40 },
      );
      // The generator reaches bans (escalation, rarer here, is pinned by the scripted test above).
      expect(d.bans.refused).toBeGreaterThan(15);
      expect(d.bans.started).toBeGreaterThan(5);
    });
  });

  it('matches the reference on random traffic (property)', async () => {
    const policy: fc.Arbitrary<Policy> = fc.oneof(
      fc.record({
        algorithm: fc.constant('fixed-window' as const),
        limit: fc.integer({ min: 1, max: 12 }),
        window: fc.oneof(
          fc.record({
            calendar: fc.constantFrom('hour' as const, 'day' as const),
            timeZone: fc.constantFrom('UTC', NY, 'Asia/Kolkata', 'Australia/Lord_Howe'),
          }),
          fc.record({
            calendar: fc.constantFrom('week' as const, 'month' as const),
            timeZone: fc.constantFrom('UTC', NY, 'Pacific/Apia'),
            startDay: fc.integer({ min: 1, max: 7 }),
          }),
        ),
      }),
      fc.record({
        algorithm: fc.constantFrom('fixed-window' as const, 'sliding-window' as const),
        limit: fc.integer({ min: 1, max: 12 }),
        window: fc.oneof(fc.integer({ min: 1, max: 3000 }), fc.constantFrom('1s', '1m', '1h')),
      }),
      fc.record(
        {
          algorithm: fc.constant('token-bucket' as const),
          limit: fc.integer({ min: 1, max: 12 }),
          window: fc.oneof(fc.integer({ min: 1, max: 3000 }), fc.constantFrom('1s', '1m')),
          burst: fc.integer({ min: 1, max: 20 }),
        },
        { requiredKeys: ['algorithm', 'limit', 'window'] },
      ),
      fc.record(
        {
          algorithm: fc.constant('leaky-bucket' as const),
          limit: fc.integer({ min: 1, max: 12 }),
          window: fc.oneof(fc.integer({ min: 1, max: 3000 }), fc.constantFrom('1s', '1m')),
          burst: fc.integer({ min: 1, max: 20 }),
          delay: fc.boolean(),
        },
        { requiredKeys: ['algorithm', 'limit', 'window'] },
      ),
      fc.record({
        algorithm: fc.constant('concurrency' as const),
        limit: fc.integer({ min: 1, max: 6 }),
        lease: fc.oneof(fc.integer({ min: 1, max: 3000 }), fc.constantFrom('1s', '1m')),
      }),
    );
    const op = fc.record({
      // A number of ms, or exactly the wait the last answer announced (as well-behaved clients do).
      advance: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 0, max: 50 }),
        fc.integer({ min: 0, max: 5000 }),
        fc.constantFrom('retry' as const, 'reset' as const),
      ),
      kind: fc.constantFrom(
        'consume',
        'consume',
        'consume',
        'consume',
        'peek',
        'refund',
        'refund-counted',
        'settle',
        'settle-counted',
        'reset',
        'release',
        'release',
      ),
      cost: fc.oneof(fc.constantFrom(0, 1, 1, 1, 2, 3), fc.integer({ min: 0, max: 25 })),
      /** A settle's delta: the actual cost minus the estimate. */
      delta: fc.integer({ min: -25, max: 40 }),
      /** Which earlier allowed consume a `refund-counted` refers to, counting back. */
      back: fc.nat({ max: 6 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.tuple(policy, fc.constantFrom('enforce' as const, 'enforce' as const, 'shadow' as const)),
          {
            minLength: 1,
            maxLength: 3,
          },
        ),
        fc.array(fc.option(fc.integer({ min: 0, max: 30 }), { nil: undefined }), {
          minLength: 3,
          maxLength: 3,
        }),
        fc.integer({ min: 0, max: 2 ** 42 }),
        fc.array(op, { minLength: 1, maxLength: 40 }),
        async (drawn, debts, start, ops) => {
          // At most one concurrency policy in a set, and it is always enforced (and has no maxDebt).
          const first = drawn.findIndex(([p]) => p.algorithm === 'concurrency');
          const policies = drawn.filter(([p], i) => p.algorithm !== 'concurrency' || i === first);
          const s = set(
            policies.map(([p, mode], i) =>
              p.algorithm === 'concurrency'
                ? { ...p, name: `p${i}` }
                : {
                    ...p,
                    mode,
                    name: `p${i}`,
                    ...(debts[i] === undefined ? {} : { maxDebt: debts[i] }),
                  },
            ),
          );
          const key = `prop:${randomUUID()}`;
          d.at(start);
          let last: Outcome[] = [];
          const counted = d.counted.length;
          for (const { advance, kind, cost, delta, back } of ops) {
            if (typeof advance === 'number') d.advance(advance);
            else d.advance(announced(last, advance === 'retry' ? 'retryAfterMs' : 'resetMs'));
            if (kind === 'consume') last = await d.consume(s, key, cost);
            else if (kind === 'peek') last = await d.peek(s, key);
            else if (kind === 'refund') await d.refund(s, key, cost);
            else if (kind === 'refund-counted') {
              const mine = d.counted.slice(counted);
              await d.refund(s, key, cost, mine[Math.max(0, mine.length - 1 - back)] ?? d.now);
            } else if (kind === 'settle') last = (await d.settle(s, key, delta)).outcomes;
            else if (kind === 'settle-counted') {
              const mine = d.counted.slice(counted);
              last = (await d.settle(s, key, delta, mine[Math.max(0, mine.length - 1 - back)] ?? d.now))
                .outcomes;
            } else if (kind === 'release') {
              const held = d.held.get(`${s.id}\n${key}`) ?? [];
              const lease = held[Math.max(0, held.length - 1 - back)];
              if (lease !== undefined && s.holder >= 0) await d.release(s, key, lease);
            } else await d.reset(s, key);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

/**
 * Usage buckets (issue 14): the RedisUsageStore's script is the Lua twin of MemoryUsageStore.add. The
 * same random batches (tenants and routes past small caps, minutes out of order, counts arriving
 * after their minute bucket's keep time) go to both, and every bucket must hold the same fields.
 */
describe('usage stores: the same batches give the same buckets', () => {
  const MINUTE = 60_000;
  const BASE = Date.UTC(2026, 10, 30, 22, 17);
  const tenants = ['a', 'b', 'c', 'd', OTHER];
  const routes = ['GET /r1', 'GET /r2', 'POST /r3', 'GET /r4', 'GET /r5', OTHER];
  const entry = fc.record({
    tenant: fc.constantFrom(...tenants),
    route: fc.constantFrom(...routes),
    result: fc.constantFrom(...USAGE_RESULTS),
    minute: fc.integer({ min: 0, max: 3000 }).map((k) => BASE + k * MINUTE),
    count: fc.integer({ min: 1, max: 5 }),
  });
  const batches = fc.array(
    fc.record({
      entries: fc.array(entry, { minLength: 1, maxLength: 20 }),
      lag: fc.integer({ min: 0, max: 3 * 3_600_000 }),
    }),
    { minLength: 1, maxLength: 6 },
  );
  const clients: Record<string, () => Promise<{ client: RedisClientLike; quit(): Promise<unknown> }>> = {
    'RedisUsageStore on ioredis': async () => {
      const client = new Redis({ host: '127.0.0.1', port: inject('redisPort') });
      return { client, quit: () => client.quit() };
    },
    'RedisUsageStore on an ioredis Cluster': async () => {
      const client = new Cluster(inject('clusterNodes'), { lazyConnect: true });
      await client.connect();
      return { client, quit: () => client.quit() };
    },
    'RedisUsageStore on node-redis': async () => {
      const client = createClient({ socket: { host: '127.0.0.1', port: inject('redisPort') } });
      await client.connect();
      return { client, quit: () => client.close() };
    },
  };

  it.each(Object.keys(clients))('%s', async (name) => {
    const { client, quit } = await clients[name]!();
    try {
      await fc.assert(
        fc.asyncProperty(batches, async (script) => {
          const reference = new MemoryUsageStore();
          const store = new RedisUsageStore({ client, prefix: prefix() });
          let now = 0;
          for (const { entries, lag } of script) {
            now = Math.max(now, ...entries.map((e) => e.minute)) + lag;
            const context = { now, maxTenants: 3, maxRoutes: 3, batch: randomUUID() };
            reference.add(entries, context);
            await store.add(entries, context);
            await store.add(entries, context); // the same batch again (a resend): added once
          }
          for (const grain of ['m', 'h', 'd'] as const) {
            const { length, keep } = GRAINS[grain];
            const starts = [
              ...new Set(script.flatMap((b) => b.entries.map((e) => Math.floor(e.minute / length) * length))),
            ].filter((start) => start + keep > now);
            for (const tenant of [...tenants, undefined]) {
              const want = reference.read(tenant, grain, starts, now).map((b) => Object.fromEntries(b));
              const got = (await store.read(tenant, grain, starts)).map((b) => Object.fromEntries(b));
              expect(got).toEqual(want);
            }
          }
        }),
        { numRuns: 12 },
      );
    } finally {
      await quit();
    }
  });
});
