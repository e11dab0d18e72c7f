import { describe, expect, it } from 'vitest';
import { isConfigError } from '../errors.js';
import { MemoryUsageStore } from './memory-usage-store.js';
import type { UsageAddContext, UsageEntry, UsageStore } from './model.js';
import { usageReporter } from './report-handler.js';
import { createUsage } from './usage.js';

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 11, 1, 10, 0);

function virtual(start = T0) {
  const clock = { now: start };
  return { clock, read: () => clock.now };
}

describe('createUsage', () => {
  it('checks its options at construction, naming the option', () => {
    const cases: [unknown, RegExp][] = [
      [{ maxRoutes: 0 }, /`maxRoutes` to be a positive integer, got `0`/],
      [{ maxTenants: 1.5 }, /`maxTenants` to be a positive integer/],
      [{ flushIntervalMs: '1 s' }, /`flushIntervalMs`/],
      [{ tenant: 'org' }, /`tenant` to be a function/],
      [{ store: {} }, /`store` to be a usage store/],
      [{ store: { add() {}, read() {}, consume() {} } }, /got a rate-limit store/],
      [{ maxroutes: 5 }, /Unknown option `maxroutes`.*Did you mean `maxRoutes`/],
    ];
    for (const [options, message] of cases) {
      expect(() => createUsage(options as never)).toThrow(message);
    }
  });

  it('rejects a bad record or query as a ConfigError', async () => {
    const usage = createUsage();
    expect(() => usage.record({ tenant: '', result: 'allowed' })).toThrow(/`tenant`/);
    expect(() => usage.record({ tenant: 'a', result: 'ok' as never })).toThrow(/`result`/);
    await expect(usage.report({ period: 'year' as never })).rejects.toSatisfy(isConfigError);
    await usage.close();
  });

  it('reports rolling periods of whole UTC buckets, the busiest minute, and every result', async () => {
    const { clock, read } = virtual();
    const usage = createUsage({ clock: read });
    const at = (minutes: number) => T0 + minutes * MINUTE;
    usage.record({ tenant: 'a', route: 'GET /x', result: 'allowed', at: at(-70) }); // outside the hour
    for (let i = 0; i < 3; i++) usage.record({ tenant: 'a', route: 'GET /x', result: 'allowed', at: at(-5) });
    usage.record({ tenant: 'a', route: 'GET /y', result: 'limited', at: at(-2) });
    usage.record({ tenant: 'a', route: 'GET /y', result: 'store_error', at: at(-2) });
    usage.record({ tenant: 'a', route: 'GET /y', result: 'limited', at: at(-1) });
    usage.record({ tenant: 'b', result: 'allowed', at: at(-1) });
    clock.now = T0 + 30_000;
    const hour = await usage.report({ period: 'hour', tenant: 'a' });
    expect(hour).toEqual({
      period: 'hour',
      tenant: 'a',
      from: new Date(T0 - 59 * MINUTE).toISOString(),
      to: new Date(T0 + 30_000).toISOString(),
      granularity: 'minute',
      requests: 6,
      limited: 2,
      results: { allowed: 3, limited: 2, store_error: 1 },
      routes: [
        { route: 'GET /x', requests: 3, limited: 0, results: { allowed: 3 } },
        { route: 'GET /y', requests: 3, limited: 2, results: { limited: 2, store_error: 1 } },
      ],
      peak: { minute: new Date(at(-5)).toISOString(), requests: 3 },
    });
    const day = await usage.report({ period: 'day' });
    expect(day.from).toBe(new Date(T0 - 23 * 3_600_000).toISOString());
    expect(day.requests).toBe(8);
    expect(day.routes.map((r) => r.route)).toEqual(['GET /x', 'GET /y', '(unmatched)']);
    expect(day.tenants).toEqual([
      { tenant: 'a', requests: 7, limited: 2, results: { allowed: 4, limited: 2, store_error: 1 } },
      { tenant: 'b', requests: 1, limited: 0, results: { allowed: 1 } },
    ]);
    expect((await usage.report({ period: 'month' })).from).toBe(
      new Date(Date.UTC(2026, 10, 2)).toISOString(),
    );
    expect(await usage.topRoutes({ period: 'hour', tenant: 'a', limit: 1 })).toEqual([hour.routes[0]]);
    await usage.close();
  });

  it('folds tenants and routes past the caps into (other), keeping every count', async () => {
    const store = new MemoryUsageStore();
    const usage = createUsage({ store, maxTenants: 2, maxRoutes: 2, clock: () => T0 });
    for (const tenant of ['a', 'b', 'c', 'd']) {
      for (const route of ['/1', '/2', '/3']) usage.record({ tenant, route, result: 'allowed' });
    }
    const all = await usage.report({ period: 'hour' });
    expect(all.requests).toBe(12);
    expect(all.tenants!.map((t) => [t.tenant, t.requests])).toEqual([
      ['a', 3],
      ['b', 3],
      ['(other)', 6],
    ]);
    expect(all.routes.map((r) => [r.route, r.requests])).toEqual([
      ['/1', 4],
      ['/2', 4],
      ['(other)', 4],
    ]);
    expect(store.stats().tenants).toBe(2);
    await usage.close();
  });

  it('stores a huge or strange label as a digest', async () => {
    const usage = createUsage({ clock: () => T0 });
    usage.record({ tenant: 'x'.repeat(10_000), route: 'GET /a\tb', result: 'allowed' });
    const [tenant] = await usage.tenants({ period: 'hour' });
    expect(tenant!.tenant).toMatch(/^sha256:[\w-]{43}$/);
    expect((await usage.topRoutes({ period: 'hour' }))[0]!.route).toMatch(/^sha256:/);
    expect((await usage.report({ period: 'hour', tenant: 'x'.repeat(10_000) })).requests).toBe(1);
    await usage.close();
  });

  it('keeps a batch the store refused and sends it again as it was, once, before newer counts', async () => {
    const calls: { batch: string; entries: number }[] = [];
    let down = true;
    const memory = new MemoryUsageStore();
    const store: UsageStore = {
      add(entries: readonly UsageEntry[], context: UsageAddContext) {
        calls.push({ batch: context.batch, entries: entries.length });
        if (down) throw new Error('store down');
        memory.add(entries, context);
      },
      read: (...args) => memory.read(...args),
    };
    const errors: string[] = [];
    const usage = createUsage({
      store,
      clock: () => T0,
      logger: { warn: () => {}, error: (m) => errors.push(m) },
    });
    usage.record({ tenant: 'a', route: '/1', result: 'allowed' });
    await expect(usage.flush()).rejects.toThrow('store down');
    usage.record({ tenant: 'a', route: '/2', result: 'allowed' });
    await expect(usage.flush()).rejects.toThrow('store down');
    expect(errors).toHaveLength(1);
    down = false;
    await usage.flush();
    expect(calls.map((c) => c.entries)).toEqual([1, 1, 1, 1]);
    expect(calls[0]!.batch).toBe(calls[1]!.batch);
    expect(calls[2]!.batch).toBe(calls[0]!.batch);
    expect(calls[3]!.batch).not.toBe(calls[0]!.batch);
    expect((await usage.report({ period: 'hour' })).requests).toBe(2);
    await usage.close();
    usage.record({ tenant: 'a', route: '/3', result: 'allowed' }); // after close: not recorded
    expect(calls).toHaveLength(4);
  });

  it('holds at most 100 000 pending entries while the store is down, folding the rest, losing no count', async () => {
    const store: UsageStore = {
      add: () => {
        throw new Error('store down');
      },
      read: () => [],
    };
    const clock = { now: T0 };
    const usage = createUsage({
      store,
      clock: () => clock.now,
      logger: { warn: () => {}, error: () => {} },
    });
    const sent: UsageEntry[][] = [];
    // 250 minutes of 500 tenants: 125 000 distinct entries if nothing folded.
    for (let minute = 0; minute < 250; minute++) {
      clock.now = T0 + minute * MINUTE;
      for (let t = 0; t < 500; t++) usage.record({ tenant: `t${t}`, route: '/x', result: 'allowed' });
      if (minute === 0) await usage.flush().catch(() => undefined); // the first batch fails and is kept
    }
    store.add = (entries) => void sent.push([...entries]);
    await usage.flush();
    await usage.flush();
    const all = sent.flat();
    // The kept batch (minute 0), then at most 100 000 entries and one folded entry per minute.
    expect(all.length).toBeLessThanOrEqual(500 + 100_000 + 250);
    expect(all.filter((e) => e.tenant === '(other)').length).toBeGreaterThan(0);
    expect(all.reduce((sum, e) => sum + e.count, 0)).toBe(250 * 500);
    await usage.close();
  });
});

describe('usageReporter', () => {
  const usage = createUsage({ tenant: (req: { org?: string }, key) => req.org ?? key, clock: () => T0 });
  usage.record({ tenant: 'acme', route: 'GET /a', result: 'allowed' });
  usage.record({ tenant: 'other', route: 'GET /a', result: 'limited' });
  const answer = usageReporter({
    usage,
    admin: (req: { org?: string; admin?: boolean }) => req.admin === true,
  });
  const ask = async (req: { org?: string; admin?: boolean }, query: string, key?: string) => {
    const { status, headers, body } = await answer(req, new URLSearchParams(query), key);
    return { status, type: headers['Content-Type'], body: JSON.parse(body) };
  };

  it("answers the caller's own tenant, from the usage's tenant function and the limiter's key", async () => {
    const own = await ask({ org: 'acme' }, 'period=hour', 'ip:1.2.3.4');
    expect(own.status).toBe(200);
    expect(own.type).toBe('application/json; charset=utf-8');
    expect(own.body).toMatchObject({ tenant: 'acme', requests: 1, period: 'hour' });
    expect((await ask({}, '', 'other')).body).toMatchObject({ tenant: 'other', period: 'day', limited: 1 });
  });

  it('answers 400 for a bad period, 403 without a tenant or for ?tenant= without admin', async () => {
    expect(await ask({ org: 'acme' }, 'period=year', 'k')).toMatchObject({
      status: 400,
      type: 'application/problem+json; charset=utf-8',
    });
    expect((await ask({}, 'period=day')).status).toBe(403);
    expect((await ask({ org: 'acme' }, 'tenant=other', 'k')).status).toBe(403);
    expect((await ask({ admin: true }, 'tenant=other&period=hour')).body).toMatchObject({
      tenant: 'other',
      requests: 1,
    });
    const all = await ask({ admin: true }, 'tenant=*&period=hour');
    expect(all.body).toMatchObject({ tenant: null, requests: 2, limited: 1 });
    expect(all.body.tenants).toHaveLength(2);
  });

  it('checks its options', () => {
    expect(() => usageReporter({ usage: {} as never })).toThrow(
      /`usage` to be a usage made by `createUsage\(\)`/,
    );
    expect(() => usageReporter({ usage, admin: true as never })).toThrow(/`admin` to be a function/);
  });
});
