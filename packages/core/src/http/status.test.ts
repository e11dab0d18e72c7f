import { describe, expect, test } from 'vitest';
import { isCallbackError, isConfigError } from '../errors.js';
import { MemoryStore } from '../memory-store.js';
import type { Policy } from '../types.js';
import { type RateLimitOptions, rateLimit, rateLimitStatus } from './index.js';
import type { RequestView } from './request-view.js';
import type { RateLimitStatusBody } from './status.js';

interface Req {
  headers: Record<string, string>;
}
const quiet = { warn: () => undefined, error: () => undefined };
const view = (req: Req): RequestView => ({
  method: 'GET',
  path: '/rate_limit',
  header: (name) => req.headers[name],
  ip: '1.2.3.4',
  trustProxy: false,
});
const byUser = (req: Req) => req.headers['x-user'];

function limiter(options: Partial<RateLimitOptions<Req>>) {
  return rateLimit<Req>({ policies: { limit: 2, window: '1m' }, key: byUser, logger: quiet, ...options });
}

async function body(
  handler: ReturnType<typeof rateLimitStatus<Req>>,
  req: Req,
): Promise<RateLimitStatusBody> {
  const answer = await handler(view(req), req);
  expect(answer.status).toBe(200);
  expect(answer.headers).toEqual({
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
  });
  return JSON.parse(answer.body) as RateLimitStatusBody;
}

function configMessage(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(isConfigError(error)).toBe(true);
    return (error as Error).message;
  }
  throw new Error('no ConfigError');
}

describe('rateLimitStatus() options', () => {
  test('limiters: a non-empty array of rateLimit() results, each with its own name', () => {
    expect(configMessage(() => rateLimitStatus<Req>({ limiters: [] }))).toMatch(
      /Expected `limiters` to be a non-empty array of a limiter returned by `rateLimit\(\)`/,
    );
    expect(configMessage(() => rateLimitStatus<Req>({ limiters: [limiter({}).limiter as never] }))).toMatch(
      /Expected `limiters\[0\]` to be a limiter returned by `rateLimit\(\)` of `@tollgate\/core`/,
    );
    expect(configMessage(() => rateLimitStatus<Req>({ limiters: [limiter({}), limiter({})] }))).toBe(
      "`limiters[0]` and `limiters[1]` are both named 'default': the status answer lists limiters by name, so give each `rateLimit()` a distinct `name`.",
    );
    expect(
      configMessage(() => rateLimitStatus<Req>({ limiters: [limiter({})], keys: byUser } as never)),
    ).toMatch(/Unknown option `keys` in `rateLimitStatus\(\)` options. Did you mean `key`\?/);
    expect(
      configMessage(() => rateLimitStatus<Req>({ limiters: [limiter({})], tier: 'pro' as never })),
    ).toMatch(/Expected `tier` to be a function/);
  });
});

describe('the answer', () => {
  test('every policy of every limiter, counting nothing; buckets state their burst and refill window', async () => {
    const store = new MemoryStore({ clock: () => 0 });
    const api = limiter({
      name: 'api',
      store,
      policies: [
        { name: 'tokens', limit: 10, window: '1m', algorithm: 'token-bucket', burst: 5 },
        { name: 'queue', limit: 2, window: '1s', algorithm: 'leaky-bucket' },
      ],
    });
    const req = { headers: { 'x-user': 'ann' } };
    await api(view(req), req);
    const status = rateLimitStatus<Req>({ limiters: [api] });
    const first = await body(status, req);
    expect(first).toEqual({
      limiters: {
        api: {
          allowed: true,
          retryAfter: 0,
          policies: [
            // 5 tokens refill at 10 per minute: full in 30 s; one missing comes back in 6 s.
            {
              name: 'tokens',
              algorithm: 'token-bucket',
              limit: 5,
              remaining: 4,
              used: 1,
              reset: 6,
              window: 30,
            },
            {
              name: 'queue',
              algorithm: 'leaky-bucket',
              limit: 2,
              remaining: 1,
              used: 1,
              reset: 1,
              window: 1,
            },
          ],
        },
      },
    });
    for (let i = 0; i < 10; i++) await body(status, req);
    expect(await body(status, req)).toEqual(first);
  });

  test('a denied caller: allowed false and the Retry-After seconds', async () => {
    const clock = { now: 0 };
    const api = limiter({ name: 'api', store: new MemoryStore({ clock: () => clock.now }) });
    const ann = () => ({ headers: { 'x-user': 'ann' } });
    // One request object each: the same one twice is counted once (TOLLGATE_DOUBLE_COUNT).
    for (let i = 0; i < 2; i++) {
      const req = ann();
      await api(view(req), req);
    }
    clock.now = 30_000;
    const { limiters } = await body(rateLimitStatus<Req>({ limiters: [api] }), ann());
    // Sliding window: the two fade through the next window until half remains, at 90 s: 60 s from now.
    expect(limiters.api).toMatchObject({
      allowed: false,
      retryAfter: 60,
      policies: [{ remaining: 0, used: 2 }],
    });
  });

  test('key: another caller on every limiter; undefined falls back to each limiter own key', async () => {
    const api = limiter({ name: 'api' });
    const other = limiter({ name: 'other' });
    const bob = { headers: { 'x-user': 'bob' } };
    await api(view(bob), bob);
    const status = rateLimitStatus<Req>({ limiters: [api, other], key: (req) => req.headers['x-as'] });
    const as = await body(status, { headers: { 'x-user': 'ann', 'x-as': 'bob' } });
    expect([as.limiters.api!.policies[0]!.remaining, as.limiters.other!.policies[0]!.remaining]).toEqual([
      1, 2,
    ]);
    const own = await body(status, { headers: { 'x-user': 'ann' } });
    expect(own.limiters.api!.policies[0]!.remaining).toBe(2);
  });

  test('tier: asked per tiered limiter, by name; shown on those only', async () => {
    const TIERS: Record<string, Policy> = { free: { name: 'free', limit: 1, window: '1h' } };
    const tiered = limiter({ name: 'tiered', policies: () => TIERS.free! });
    const org = limiter({ name: 'org', policies: () => TIERS.free! });
    const plain = limiter({ name: 'plain' });
    const req = { headers: { 'x-user': 'ann' } };
    const asked: string[] = [];
    const tier = (_req: Req, name: string) => {
      asked.push(name);
      return name === 'org' ? 'enterprise' : 'free';
    };
    const { limiters } = await body(rateLimitStatus<Req>({ limiters: [tiered, plain, org], tier }), req);
    expect(asked.sort()).toEqual(['org', 'tiered']);
    expect([limiters.tiered!.tier, limiters.org!.tier]).toEqual(['free', 'enterprise']);
    expect(limiters.tiered!.policies.map((p) => p.name)).toEqual(['free']);
    expect('tier' in limiters.plain!).toBe(false);
    expect(Object.keys(limiters)).toEqual(['tiered', 'plain', 'org']);
  });

  test('shadow policies are left out, as from the headers, unless shadowHeaders', async () => {
    const policies: Policy[] = [
      { name: 'now', limit: 5, window: '1m' },
      { name: 'next', limit: 2, window: '1m', mode: 'shadow' },
    ];
    const quietly = limiter({ name: 'quietly', policies });
    const openly = limiter({ name: 'openly', policies, shadowHeaders: true });
    const { limiters } = await body(rateLimitStatus<Req>({ limiters: [quietly, openly] }), {
      headers: { 'x-user': 'ann' },
    });
    expect(limiters.quietly!.policies.map((p) => p.name)).toEqual(['now']);
    expect(limiters.openly!.policies.map((p) => p.name)).toEqual(['now', 'next']);
  });

  test("a failing store: reason 'store-error' (and 'fallback' with a fallback), still 200", async () => {
    const broken = new MemoryStore();
    await broken.close();
    const open = limiter({ name: 'open', store: broken });
    const backed = limiter({ name: 'backed', store: broken, fallback: new MemoryStore() });
    const req = { headers: { 'x-user': 'ann' } };
    await backed(view(req), req);
    const { limiters } = await body(rateLimitStatus<Req>({ limiters: [open, backed] }), req);
    expect(limiters.open).toMatchObject({ reason: 'store-error', allowed: true });
    expect(limiters.backed).toMatchObject({ reason: 'fallback', policies: [{ remaining: 1 }] });
  });

  test('callbacks returning the wrong kind of value reject with a CallbackError naming the option', async () => {
    const api = limiter({ name: 'api' });
    const req = { headers: { 'x-user': 'ann' } };
    const badKey = rateLimitStatus<Req>({ limiters: [api], key: () => 42 as never });
    const error = await badKey(view(req), req).catch((e: unknown) => e);
    expect(isCallbackError(error) && error.option).toBe('key');
    const tiered = limiter({ name: 'tiered', policies: () => ({ limit: 1, window: '1h' }) as const });
    const badTier = rateLimitStatus<Req>({ limiters: [tiered], tier: () => 1 as never });
    const tierError = await badTier(view(req), req).catch((e: unknown) => e);
    expect(isCallbackError(tierError) && tierError.option).toBe('tier');
  });
});

describe('rateLimitStatus() and the other answers a caller can get', () => {
  test("the caller's address on the deny or allow list: said so, no policies, nothing asked of the store", async () => {
    const store = new MemoryStore();
    const denied = limiter({ name: 'denied', store, deny: ['1.2.3.0/24'] });
    const allowed = limiter({ name: 'allowed', store, allow: ['1.2.3.4'] });
    const plain = limiter({ name: 'plain', store });
    const handler = rateLimitStatus<Req>({ limiters: [denied, allowed, plain] });
    const answer = await body(handler, { headers: { 'x-user': 'u' } });
    expect(answer.limiters.denied).toEqual({ allowed: false, retryAfter: 0, reason: 'denied', policies: [] });
    expect(answer.limiters.allowed).toEqual({
      allowed: true,
      retryAfter: 0,
      reason: 'allowed',
      policies: [],
    });
    expect(answer.limiters.plain!.reason).toBeUndefined();
    expect(answer.limiters.plain!.policies).toHaveLength(1);
  });

  test('a banned key: reason banned, retryAfter the ban left', async () => {
    let now = 1_000_000;
    const mw = limiter({
      name: 'b',
      store: new MemoryStore({ clock: () => now }),
      ban: { after: 1, within: '1m', for: '10m' },
    });
    const req = { headers: { 'x-user': 'u' } };
    await mw.limiter.consume('u');
    await mw.limiter.consume('u');
    await mw.limiter.consume('u');
    now += 60_000;
    const answer = await body(rateLimitStatus<Req>({ limiters: [mw] }), req);
    expect(answer.limiters.b).toMatchObject({ allowed: false, retryAfter: 540, reason: 'banned' });
  });
});
