import { describe, expect, test } from 'vitest';
import { isConfigError } from '../../errors.js';
import { createLimiter } from '../../limiter.js';
import { MemoryStore } from '../../memory-store.js';
import { resolvePolicy, resolvePolicySet } from '../../policy.js';
import type { Policy, Store } from '../../types.js';
import { no, ok, scenario } from '../scenario.test-helper.js';
import { concurrency } from './index.js';
import { Leases } from './leases.js';

const policy: Policy = { algorithm: 'concurrency', limit: 3, lease: 1000 };

/** The ConfigError message `build` throws. */
function configMessage(build: () => unknown): string {
  try {
    build();
  } catch (error) {
    expect(isConfigError(error)).toBe(true);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('concurrency (at most L in flight; a slot held until released or its lease ends)', () => {
  test('one slot per request; denied while full, until the first lease ends (tight), reset at the last', async () => {
    const s = scenario(policy);
    s.at(10_000);
    expect(await s.hit()).toEqual(ok(2, 1000));
    s.at(10_100);
    expect(await s.hit(7)).toEqual(ok(1, 1000)); // one slot, whatever the cost
    s.at(10_200);
    expect(await s.hit()).toEqual(ok(0, 1000));
    s.at(10_300);
    expect(await s.hit()).toEqual(no(0, 900, 700));
    expect(await s.hit(0)).toEqual(ok(0, 900)); // cost 0 takes no slot
    expect(await s.peek()).toEqual(no(0, 900, 700));
    s.at(10_999);
    expect(await s.hit()).toEqual(no(0, 201, 1));
    s.at(11_000);
    expect(await s.hit()).toEqual(ok(0, 1000));
  });

  test('release frees a slot at once, once; a lease that ended frees nothing more', async () => {
    const s = scenario(policy);
    s.at(0);
    const first = await s.limiter.consume('k');
    const second = await s.limiter.consume('k');
    await s.limiter.consume('k');
    expect((await s.limiter.consume('k')).allowed).toBe(false);
    await second.release!();
    await second.release!();
    expect(await s.hit()).toEqual(ok(0, 1000));
    expect(await s.hit()).toEqual(no(0, 1000, 1000));
    s.at(1500);
    await first.release!(); // ended at 1000: already free
    expect(await s.peek()).toEqual(ok(3, 0));
  });

  test('a denied or a cost-0 decision has no release; a refund gives back no slot', async () => {
    const s = scenario({ algorithm: 'concurrency', limit: 1, lease: '1s' });
    expect((await s.limiter.consume('k', { cost: 0 })).release).toBeUndefined();
    expect((await s.limiter.consume('k')).release).toBeTypeOf('function');
    const denied = await s.limiter.consume('k');
    expect(denied.allowed).toBe(false);
    expect(denied.release).toBeUndefined();
    await s.limiter.refund('k', 5);
    expect((await s.limiter.consume('k')).allowed).toBe(false);
    await s.limiter.reset('k');
    expect((await s.limiter.consume('k')).allowed).toBe(true);
  });

  test('keeps at most `limit` leases per key: ended ones go as new ones come', async () => {
    const s = scenario({ algorithm: 'concurrency', limit: 4, lease: 100 });
    for (let t = 0; t < 5000; t += 30) {
      s.at(t);
      await s.limiter.consume('k');
    }
    // Reads the lease set the store keeps for the key (`MemoryStore` internals, for the bound).
    const table = [
      ...(s.store as unknown as { tables: Map<string, { leases: Map<number, Leases> }> }).tables.values(),
    ][0]!;
    const [leases] = [...table.leases.values()];
    expect(leases!.size).toBeLessThanOrEqual(4);
    expect(leases!.size).toBeGreaterThan(0);
  });

  test('the pure step reads the leases it is given, and never changes them', () => {
    const p = resolvePolicy(policy);
    const leases = new Leases();
    leases.add('a', 0, 500);
    leases.add('b', 0, 800);
    leases.add('c', 0, 900);
    const denied = concurrency.step([900], 100, p, 1, leases);
    expect(denied).toEqual({ state: [900], outcome: no(0, 800, 400) });
    expect(concurrency.step([900], 600, p, 1, leases)).toEqual({ state: [1600], outcome: ok(0, 1000) });
    expect(leases.size).toBe(3);
    expect(concurrency.step(undefined, 5, p, 0)).toEqual({ state: [5], outcome: ok(3, 0) });
    expect(concurrency.expiresAt([900], p)).toBe(900);
    expect(concurrency.refund([900], 899, p, 1)).toEqual([900]);
    expect(concurrency.refund([900], 900, p, 1)).toBeUndefined();
  });

  test('Leases: sorted by end, ended ones dropped as one is added, removed by id', () => {
    const leases = new Leases();
    leases.add('x', 0, 300);
    leases.add('y', 0, 100);
    leases.add('z', 0, 200);
    expect([leases.live(0), leases.firstEnd(0), leases.lastEnd()]).toEqual([3, 100, 300]);
    expect([leases.live(100), leases.firstEnd(100)]).toEqual([2, 200]);
    leases.add('w', 250, 400);
    expect([leases.size, leases.live(250), leases.firstEnd(250)]).toEqual([2, 2, 300]);
    expect(leases.remove('x')).toBe(true);
    expect(leases.remove('x')).toBe(false);
    expect([leases.size, leases.firstEnd(0), leases.lastEnd()]).toEqual([1, 400, 400]);
    expect(leases.firstEnd(400)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('concurrency policies are validated', () => {
  test('lease is required, window and burst do not apply, lease only applies here', () => {
    expect(configMessage(() => resolvePolicy({ algorithm: 'concurrency', limit: 5 } as Policy))).toMatch(
      /`policy` is a 'concurrency' policy without `lease`.*lease: '30s'/,
    );
    expect(
      configMessage(() =>
        resolvePolicy({ algorithm: 'concurrency', limit: 5, window: '1s' } as unknown as Policy),
      ),
    ).toMatch(/`policy.window` does not apply to 'concurrency'.*`policy.lease`/);
    expect(
      configMessage(() =>
        resolvePolicy({ algorithm: 'concurrency', limit: 5, lease: '1s', burst: 9 } as unknown as Policy),
      ),
    ).toMatch(/`policy.burst` only applies to 'token-bucket' and 'leaky-bucket', not 'concurrency'/);
    expect(
      configMessage(() => resolvePolicy({ limit: 5, window: '1s', lease: '1s' } as unknown as Policy)),
    ).toMatch(/`policy.lease` only applies to 'concurrency', not 'sliding-window'/);
    expect(
      configMessage(() => resolvePolicy({ algorithm: 'concurrency', limit: 5, lease: '1 minute' } as never)),
    ).toMatch(/`policy.lease`/);
    expect(configMessage(() => resolvePolicy({ algorithm: 'concurrency', limit: 0, lease: '1s' }))).toMatch(
      /`policy.limit`/,
    );
  });

  test('resolved: the lease as the window, a default name, an id of its own', () => {
    expect(resolvePolicy({ algorithm: 'concurrency', limit: 10, lease: '30s' })).toMatchObject({
      name: '10-in-flight',
      algorithm: 'concurrency',
      limit: 10,
      window: 30_000,
      id: 'cc:10:30000',
    });
  });

  test('one per set; the set knows which it is', () => {
    const cc: Policy = { algorithm: 'concurrency', limit: 2, lease: '1s' };
    expect(resolvePolicySet([{ limit: 5, window: '1s' }, cc], 'n').holder).toBe(1);
    expect(resolvePolicySet({ limit: 5, window: '1s' }, 'n').holder).toBe(-1);
    expect(
      configMessage(() => resolvePolicySet([cc, { limit: 5, window: '1s' }, { ...cc, name: 'b' }], 'n')),
    ).toMatch(/`policies\[2\]` is a second 'concurrency' policy, after `policies\[0\]`/);
  });

  test('a store that cannot release is refused, for the limiter and for tiers', () => {
    const memory = new MemoryStore();
    const store: Store = {
      consume: (k, s, c, i) => memory.consume(k, s, c, i),
      peek: (k, s) => memory.peek(k, s),
      refund: (k, s, c) => memory.refund(k, s, c),
      reset: (k, s) => memory.reset(k, s),
    };
    expect(
      configMessage(() =>
        createLimiter({ store, policies: { algorithm: 'concurrency', limit: 1, lease: '1s' } }),
      ),
    ).toMatch(/`store` has no `release` method.*concurrency policy '1-in-flight'/);
    const tiers = createLimiter({ store });
    expect(() =>
      tiers.decide('k', { policies: { algorithm: 'concurrency', limit: 1, lease: '1s' } }),
    ).toThrow(/`store` has no `release` method/);
  });
});

describe('mistakes with leases become coded warnings', () => {
  function rig(lease = 1000) {
    let t = 0;
    const warnings: string[] = [];
    const store = new MemoryStore({ clock: () => t });
    const limiter = createLimiter({
      store,
      policies: { algorithm: 'concurrency', limit: 5, lease },
      logger: { warn: (m) => warnings.push(m), error: (m) => warnings.push(m) },
    });
    return {
      limiter,
      warnings,
      at: (ms: number) => {
        t = ms;
      },
    };
  }

  test('TOLLGATE_LEASE_EXPIRED: a release after the lease ended (the lease is shorter than the request)', async () => {
    const r = rig();
    const d = await r.limiter.consume('k');
    r.at(999);
    await d.release!();
    expect(r.warnings).toEqual([]);
    const late = await r.limiter.consume('k');
    r.at(1999);
    await late.release!();
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(
      /^\[TOLLGATE_LEASE_EXPIRED\] A release came 1s after its request was admitted, past the 1s lease of concurrency policy '5-in-flight' of limiter 'default'.*Make `lease` longer than the slowest request\.$/,
    );
  });

  test('TOLLGATE_LEASE_NOT_RELEASED: a lease that ended with no release (a limiter used without release)', async () => {
    const r = rig();
    await r.limiter.consume('k');
    const released = await r.limiter.consume('k');
    await released.release!();
    r.at(999);
    await r.limiter.consume('k');
    expect(r.warnings).toEqual([]);
    r.at(1000);
    await r.limiter.consume('k');
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(
      /^\[TOLLGATE_LEASE_NOT_RELEASED\] A request held a slot of concurrency policy '5-in-flight' of limiter 'default' until its 1s lease ended, with no release.*decision\.release\(\)/,
    );
  });

  test('a failed release is logged, never thrown; the slot ends with its lease', async () => {
    const r = rig();
    const d = await r.limiter.consume('k');
    await r.limiter.store.close?.();
    await expect(d.release!()).resolves.toBeUndefined();
    expect(r.warnings[0]).toMatch(/^\[TOLLGATE_STORE_ERROR\] Release of a slot of limiter 'default' failed/);
  });
});

describe('the denied-key cache never holds a concurrency denial', () => {
  test('a release lets the next request in at once, while a rate denial stays cached', async () => {
    let t = 0;
    const store = new MemoryStore({ clock: () => t });
    const limiter = createLimiter({
      store,
      blockedCache: true,
      policies: [
        { name: 'cc', algorithm: 'concurrency', limit: 1, lease: '1m' },
        { name: 'rate', algorithm: 'fixed-window', limit: 3, window: '1m' },
      ],
    });
    const first = await limiter.consume('k');
    expect((await limiter.consume('k')).allowed).toBe(false);
    await first.release!();
    const second = await limiter.consume('k');
    expect(second.allowed).toBe(true);
    await second.release!();
    expect((await limiter.consume('k')).allowed).toBe(true);
    t = 10;
    // The rate policy is spent: that denial is cached (its slot was free).
    const denied = await limiter.consume('k');
    expect(denied.policies.map((p) => p.allowed)).toEqual([false, false]);
    const cached = await limiter.consume('k');
    expect(cached.reason).toBe('blocked-cache');
  });
});

describe('reservations on a set with a concurrency policy', () => {
  test('settle or release frees the slot; the estimate is no slot count (no capacity warning)', async () => {
    const warnings: string[] = [];
    const limiter = createLimiter({
      store: new MemoryStore({ clock: () => 0 }),
      policies: [
        { name: 'cc', algorithm: 'concurrency', limit: 1, lease: '1m' },
        { name: 'tokens', limit: 10_000, window: '1m' },
      ],
      logger: { warn: (m) => warnings.push(m), error: (m) => warnings.push(m) },
    });
    const first = await limiter.reserve('k', { cost: 2000 });
    expect(first.decision.allowed).toBe(true);
    expect((await limiter.reserve('k', { cost: 10 })).decision.policies.map((p) => p.allowed)).toEqual([
      false,
      true,
    ]);
    const settled = await first.settle(2500);
    expect(settled.policies[1]!.remaining).toBe(7500);
    const second = await limiter.reserve('k', { cost: 100 });
    expect(second.decision.allowed).toBe(true);
    await second.release();
    expect((await limiter.peek('k')).policies[0]!.remaining).toBe(1);
    expect(warnings).toEqual([]);
  });
});
