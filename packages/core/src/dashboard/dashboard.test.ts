import { channel } from 'node:diagnostics_channel';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { StoreError } from '../errors.js';
import { DECISION_CHANNEL, publishStoreError, publishStoreRecovered } from '../events.js';
import { createLimiter } from '../limiter.js';
import { MemoryStore } from '../memory-store.js';
import { Broadcaster, type StreamResponse } from './broadcaster.js';
import { Collector, keyKind, RESULTS } from './collector.js';
import { createDashboard } from './handler.js';
import { buildPage } from './page.js';
import { SecondRing } from './ring.js';
import { TopKeys } from './top-keys.js';
import { UsagePoller } from './usage-poller.js';

const quiet = { warn: () => undefined, error: () => undefined };
const collectors: Collector[] = [];
afterEach(() => {
  for (const c of collectors.splice(0)) c.stop();
  vi.useRealTimers();
});

/** A collector on a virtual wall clock, listening until the test ends. */
function collect(configured?: ConstructorParameters<typeof Collector>[0]) {
  const clock = { now: 1_700_000_000_000 };
  const collector = new Collector(configured, () => clock.now);
  collector.start();
  collectors.push(collector);
  return { collector, clock };
}

const column = (name: string) => RESULTS.indexOf(name as (typeof RESULTS)[number]);

describe('SecondRing', () => {
  test('keeps 60 seconds, clears a second when time reaches it again, sums and takes maxima', () => {
    const ring = new SecondRing(2, 60);
    ring.data[ring.row(100)]! += 3;
    ring.data[ring.row(101)]! += 4;
    ring.data[ring.row(101) + 1] = 0.5;
    expect(ring.over(0, 101, 60)).toBe(7);
    expect(ring.over(0, 101, 1)).toBe(1 * 4);
    expect(ring.over(1, 101, 10, true)).toBe(0.5);
    // 59 s later second 100 is still in; at 60 s it is gone, and its row is clean for second 160.
    expect(ring.over(0, 159, 60)).toBe(7);
    expect(ring.over(0, 160, 60)).toBe(4);
    expect(ring.rows(160).at(-1)).toEqual([0, 0]);
    // A wall clock stepped back counts in the newest row.
    ring.data[ring.row(150)]!++;
    expect(ring.rows(160).at(-1)).toEqual([1, 0]);
    // A long pause clears everything, once.
    expect(ring.over(0, 10_000, 60)).toBe(0);
    expect(ring.rows(10_000)).toHaveLength(60);
  });
});

describe('TopKeys', () => {
  test('holds at most its capacity, however many keys are denied, and keeps a heavy hitter', () => {
    const top = new TopKeys(8, 60_000);
    // 100 000 distinct keys and one key with 1/6 of all denials: more than 1/capacity, so it stays.
    for (let i = 0; i < 100_000; i++) {
      top.add('api', `ip:10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, 'limited', i);
      if (i % 5 === 0) top.add('api', 'ip:6.6.6.6', 'limited', i);
    }
    expect(top.size).toBe(8);
    const [first] = top.top(3, 100_000);
    expect(first!.key).toBe('ip:6.6.6.6');
    // Space-Saving never under-counts, and over-counts by at most `error`.
    expect(first!.count).toBeGreaterThanOrEqual(20_000);
    expect(first!.count - first!.error).toBeLessThanOrEqual(20_000);
    expect(first!.limited).toBe(first!.count - first!.error);
  });

  test('holds a long key as its digest, counts each kind of denial, and drops idle keys', () => {
    const top = new TopKeys(4, 1000);
    const long = `hdr:x-org:${'x'.repeat(20_000)}`;
    top.add('api', long, 'limited', 0);
    top.add('api', long, 'banned', 1);
    top.add('api', long, 'shadow_limited', 2);
    const [entry] = top.top(1, 2);
    expect(entry!.key).toMatch(/^#[A-Za-z0-9_-]{43}$/);
    expect(entry).toMatchObject({ count: 3, limited: 1, banned: 1, shadowLimited: 1, error: 0 });
    expect(top.top(10, 1003)).toEqual([]);
    expect(top.size).toBe(0);
  });
});

describe('Collector', () => {
  test('folds real decisions into per-second counts by result, policy use, and hashed top keys', async () => {
    const { collector, clock } = collect();
    const store = new MemoryStore({ clock: () => clock.now });
    const limiter = createLimiter({
      name: 'api',
      store,
      policies: [
        { name: 'burst', limit: 3, window: '10s', algorithm: 'fixed-window' },
        { name: 'daily', limit: 100, window: '1d', algorithm: 'fixed-window' },
      ],
      logger: quiet,
    });
    for (let i = 0; i < 5; i++) await limiter.consume('ip:1.2.3.4');
    clock.now += 1000;
    await limiter.consume('ip:5.6.7.8');
    await limiter.consume('ip:1.2.3.4');

    const snap = collector.snapshot();
    expect(snap.series).toHaveLength(60);
    expect(snap.series.at(-2)![column('allowed')]).toBe(3);
    expect(snap.series.at(-2)![column('limited')]).toBe(2);
    expect(snap.series.at(-1)).toEqual([1, 1, 0, 0, 0, 0]);
    expect(snap.total).toEqual([4, 3, 0, 0, 0, 0]);
    const [api] = snap.limiters;
    expect(api).toMatchObject({ name: 'api', configured: false, lastMinute: [4, 3, 0, 0, 0, 0] });
    expect(api!.policies).toEqual([
      {
        name: 'burst',
        algorithm: 'fixed-window',
        mode: 'enforce',
        limit: 3,
        windowMs: 10_000,
        peak: 1,
        limited: 3,
        limitedShare: 3 / 7,
      },
      {
        name: 'daily',
        algorithm: 'fixed-window',
        mode: 'enforce',
        limit: 100,
        windowMs: 86_400_000,
        peak: 0.03,
        limited: 0,
        limitedShare: 0,
      },
    ]);
    expect(api!.store).toEqual({ state: 'ok', fallback: false, errors: 0 });
    expect(snap.topKeys).toEqual([
      {
        limiter: 'api',
        kind: 'ip',
        label: collector.keyLabel('ip:1.2.3.4'),
        count: 3,
        limited: 3,
        banned: 0,
        shadowLimited: 0,
        lastSeen: clock.now,
      },
    ]);
    expect(JSON.stringify(snap)).not.toContain('1.2.3.4');
    await limiter.close();
  });

  test('counts what a shadow policy would have denied, as shadow_limited and on that policy', async () => {
    const { collector, clock } = collect();
    const limiter = createLimiter({
      name: 'rollout',
      store: new MemoryStore({ clock: () => clock.now }),
      policies: [
        { name: 'now', limit: 10, window: '1m', algorithm: 'fixed-window' },
        { name: 'next', limit: 2, window: '1m', algorithm: 'fixed-window', mode: 'shadow' },
      ],
      logger: quiet,
    });
    for (let i = 0; i < 4; i++) await limiter.consume('ip:9.9.9.9');
    const snap = collector.snapshot();
    expect(snap.total).toEqual([2, 0, 2, 0, 0, 0]);
    expect(snap.limiters[0]!.policies.map((p) => [p.name, p.mode, p.limited, p.limitedShare])).toEqual([
      ['now', 'enforce', 0, 0],
      ['next', 'shadow', 2, 0.5],
    ]);
    expect(snap.topKeys.map((k) => [k.count, k.shadowLimited])).toEqual([[2, 2]]);
    await limiter.close();
  });

  test('labels keys by an HMAC under its own secret: stable within a dashboard, unlinkable across', () => {
    const a = collect().collector;
    const b = collect().collector;
    expect(a.keyLabel('ip:1.2.3.4')).toMatch(/^[0-9a-f]{12}$/);
    expect(a.keyLabel('ip:1.2.3.4')).toBe(a.keyLabel('ip:1.2.3.4'));
    expect(a.keyLabel('ip:1.2.3.4')).not.toBe(b.keyLabel('ip:1.2.3.4'));
    expect(['ip:1.2.3.4', 'key:abc', 'hdr:x-org:acme', 'user:42', 'hdr:X Bad:1'].map(keyKind)).toEqual([
      'ip',
      'api key',
      'header x-org',
      'custom',
      'custom',
    ]);
  });

  test('tracks store health from store-error and store-recovered, and the fallback answering meanwhile', () => {
    const { collector, clock } = collect();
    publishStoreError(
      'search',
      new StoreError('Redis unavailable: the ioredis client is not ready'),
      'store',
    );
    clock.now += 500;
    publishStoreError('search', new StoreError(`x${'y'.repeat(500)}`), 'shard');
    let [search] = collector.snapshot().limiters;
    expect(search!.store).toEqual({
      state: 'failing',
      since: clock.now - 500,
      fallback: false,
      errors: 2,
      scope: 'shard',
      lastError: `StoreError: x${'y'.repeat(187)}…`,
      lastErrorAt: clock.now,
    });
    clock.now += 1500;
    publishStoreRecovered('search', 2000);
    [search] = collector.snapshot().limiters;
    expect(search!.store).toMatchObject({
      state: 'ok',
      fallback: false,
      recoveredAt: clock.now,
      lastDownMs: 2000,
    });
  });

  test('with `limiters`, lists their policies before any decision and ignores every other limiter', async () => {
    const shown = createLimiter({
      name: 'shown',
      policies: { name: 'p', limit: 5, window: '1m' },
      logger: quiet,
    });
    const other = createLimiter({ name: 'other', policies: { limit: 5, window: '1m' }, logger: quiet });
    const { collector } = collect([shown]);
    await other.consume('k');
    const snap = collector.snapshot();
    expect(snap.total).toEqual([0, 0, 0, 0, 0, 0]);
    expect(snap.limiters).toHaveLength(1);
    expect(snap.limiters[0]).toMatchObject({ name: 'shown', configured: true });
    expect(snap.limiters[0]!.policies).toEqual([
      {
        name: 'p',
        algorithm: 'sliding-window',
        mode: 'enforce',
        limit: 5,
        windowMs: 60_000,
        peak: 0,
        limited: 0,
        limitedShare: 0,
      },
    ]);
    await Promise.all([shown.close(), other.close()]);
  });

  test('counts banned decisions apart from limited ones, in the totals and on the key', async () => {
    const { collector, clock } = collect();
    const limiter = createLimiter({
      name: 'login',
      store: new MemoryStore({ clock: () => clock.now }),
      policies: { limit: 1, window: '1m', algorithm: 'fixed-window' },
      ban: { after: 2, within: '1m', for: '10m' },
      logger: quiet,
    });
    const reasons: (string | undefined)[] = [];
    for (let i = 0; i < 6; i++) {
      const decision = await limiter.consume('ip:6.6.6.6');
      reasons.push(decision.allowed ? 'allowed' : decision.reason === 'banned' ? 'banned' : 'limited');
    }
    const count = (what: string) => reasons.filter((r) => r === what).length;
    expect(count('banned')).toBeGreaterThan(0);
    const snap = collector.snapshot();
    expect(snap.total).toEqual([count('allowed'), count('limited'), 0, count('banned'), 0, 0]);
    expect(snap.topKeys.map((k) => [k.limited, k.banned])).toEqual([[count('limited'), count('banned')]]);
    await limiter.close();
  });

  test('names a calendar window by its unit', () => {
    const quota = createLimiter({
      name: 'quota',
      policies: { name: 'monthly', limit: 1000, window: { calendar: 'month' }, algorithm: 'fixed-window' },
      logger: quiet,
    });
    const [policy] = collect([quota]).collector.snapshot().limiters[0]!.policies;
    expect(policy).toMatchObject({ name: 'monthly', calendar: 'month', limit: 1000 });
  });

  test('tracks at most 64 limiters; decisions of more still count in the totals', async () => {
    const { collector } = collect();
    for (let i = 0; i < 70; i++) {
      const limiter = createLimiter({ name: `l${i}`, policies: { limit: 5, window: '1m' }, logger: quiet });
      await limiter.consume('k');
      await limiter.close();
    }
    const snap = collector.snapshot();
    expect(snap.limiters).toHaveLength(64);
    expect(snap.total[column('allowed')]).toBe(70);
  });

  test('subscribes on start and not before; stop unsubscribes', () => {
    const decisions = channel(DECISION_CHANNEL);
    const collector = new Collector(undefined);
    expect(decisions.hasSubscribers).toBe(false);
    collector.start();
    expect(decisions.hasSubscribers).toBe(true);
    collector.stop();
    expect(decisions.hasSubscribers).toBe(false);
  });
});

/** A stream that records what it is sent; `slow` makes it report a full buffer. */
function stream(slow = false) {
  const written: string[] = [];
  let onClose = () => {};
  const res: StreamResponse & { written: string[]; hangUp(): void; ended: boolean } = {
    written,
    ended: false,
    writableNeedDrain: slow,
    write: (chunk: string) => written.push(chunk) > 0,
    end() {
      res.ended = true;
    },
    once: (_event: 'close', listener: () => void) => {
      onClose = listener;
    },
    hangUp: () => onClose(),
  };
  return res;
}

describe('Broadcaster', () => {
  test('runs one timer while a stream is open, skips a slow stream, stops when the last one leaves', () => {
    vi.useFakeTimers();
    let n = 0;
    const broadcaster = new Broadcaster(1000, () => `frame ${++n}\n`);
    expect(broadcaster.running).toBe(false);
    const fast = stream();
    const slow = stream(true);
    broadcaster.add(fast);
    broadcaster.add(slow);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(2000);
    expect(fast.written).toEqual(['frame 1\n', 'frame 3\n', 'frame 4\n']);
    expect(slow.written).toEqual(['frame 2\n']);
    fast.hangUp();
    expect([broadcaster.size, broadcaster.running]).toEqual([1, true]);
    slow.hangUp();
    expect([broadcaster.size, broadcaster.running, vi.getTimerCount()]).toEqual([0, false, 0]);
    vi.advanceTimersByTime(5000);
    expect(n).toBe(4);
  });

  test('closeAll ends every stream and the timer', () => {
    vi.useFakeTimers();
    const broadcaster = new Broadcaster(1000, () => 'x');
    const a = stream();
    broadcaster.add(a);
    broadcaster.closeAll();
    expect([a.ended, broadcaster.size, vi.getTimerCount()]).toEqual([true, 0, 0]);
  });
});

describe('createDashboard options', () => {
  const guard = () => true;
  test.each([
    [{ guard: 'yes' }, /Expected `guard` to be a function/],
    [{ guard, path: 'tollgate' }, /Expected `path` to be a path such as '\/tollgate'/],
    [{ guard, path: '/a?b' }, /Expected `path`/],
    [{ guard, interval: 50 }, /Expected `interval` to be at least 100 ms, got `50` \(number\)/],
    [{ guard, interval: '1 s' }, /interval/],
    [{ guard, maxClients: 0 }, /Expected `maxClients` to be a positive integer/],
    [{ guard, limiters: [{}] }, /Expected `limiters\[0\]` to be a `rateLimit\(\)` middleware or a limiter/],
    [
      { guard, limiter: [] },
      /Unknown option `limiter` in `dashboard\(\)` options. Did you mean `limiters`\?/,
    ],
  ])('%o is a ConfigError', (options, message) => {
    expect(() => createDashboard(options as never)).toThrow(message);
    expect(channel(DECISION_CHANNEL).hasSubscribers).toBe(false);
  });
});

test('the page carries its script and style inline, allowed by hash, and loads nothing from elsewhere', () => {
  const { html, headers } = buildPage();
  expect(html).not.toMatch(/\b(src|href)=["']?(https?:)?\/\//);
  expect(html).not.toContain('${');
  const csp = headers['Content-Security-Policy']!;
  expect(csp).toMatch(
    /^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]+=*'; script-src 'sha256-[A-Za-z0-9+/]+=*'; connect-src 'self'/,
  );
});

describe('UsagePoller', () => {
  test('reads at most once per interval, never waits in a frame, and keeps the last routes on failure', async () => {
    const clock = { now: 0 };
    const answers: (() => Promise<
      { route: string; requests: number; limited: number; results: object }[]
    >)[] = [
      async () => [{ route: 'GET /a', requests: 3, limited: 1, results: { allowed: 2, limited: 1 } }],
      async () => {
        throw new Error('usage store down');
      },
    ];
    let reads = 0;
    const poller = new UsagePoller({ topRoutes: () => answers[reads++]!() }, 5000, () => clock.now);
    expect(poller.current()).toBeUndefined();
    await poller.refresh();
    clock.now = 4999;
    expect(poller.current()).toEqual({
      period: 'hour',
      routes: [{ route: 'GET /a', requests: 3, limited: 1 }],
      at: 0,
    });
    expect(reads).toBe(1);
    clock.now = 5000;
    poller.current();
    await poller.refresh();
    expect(reads).toBe(2);
    expect(poller.current()).toEqual({
      period: 'hour',
      routes: [{ route: 'GET /a', requests: 3, limited: 1 }],
      at: 0,
      error: 'usage store down',
    });
  });
});
