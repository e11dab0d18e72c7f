import { describe, expect, it } from 'vitest';
import { CallbackError, ConfigError, isCallbackError, isTollgateError } from '../errors.js';
import { MemoryStore } from '../memory-store.js';
import type { Logger, Policy } from '../types.js';
import { type RateLimitOptions, rateLimit } from './index.js';
import type { RequestView } from './request-view.js';

interface Req {
  id: number;
  headers: Record<string, string>;
}

function logger(): Logger & { warnings: string[]; errors: string[] } {
  const warnings: string[] = [];
  const errors: string[] = [];
  return { warnings, errors, warn: (m) => warnings.push(m), error: (m) => errors.push(m) };
}

function view(req: Req, over: Partial<RequestView> = {}): RequestView {
  return {
    method: 'GET',
    path: '/x',
    header: (name) => req.headers[name],
    ip: '1.2.3.4',
    trustProxy: false,
    ...over,
  };
}

let ids = 0;
const request = (headers: Record<string, string> = {}): Req => ({ id: ids++, headers });

function limiter(options: Partial<RateLimitOptions<Req>> = {}) {
  const log = logger();
  const handle = rateLimit<Req>({ policies: { limit: 2, window: '1m' }, logger: log, ...options });
  const hit = (req = request(), over: Partial<RequestView> = {}) => handle(view(req, over), req);
  return { handle, hit, log };
}

describe('rateLimit options', () => {
  it('names the option, the expectation and the value', () => {
    const cases: [Record<string, unknown>, string][] = [
      [
        { policies: { limit: 0, window: '1s' } },
        'Expected `policies.limit` to be a positive integer, got `0` (number).',
      ],
      [
        // RateLimit-Limit would be 16 digits: no RFC 9651 Integer.
        { policies: { limit: 10 ** 15, window: '1ms' } },
        'Expected `policies.limit` to be at most 999999999999999 (15 digits, the most an RFC 9651 header Integer holds), got `1000000000000000` (number).',
      ],
      [
        { policies: { algorithm: 'token-bucket', limit: 1, burst: 10 ** 15, window: '1ms' } },
        'Expected `policies.burst` to be at most 999999999999999 (15 digits, the most an RFC 9651 header Integer holds), got `1000000000000000` (number).',
      ],
      [
        { policies: { limit: 1, window: '1s' }, cost: -1 },
        'Expected `cost` to be a non-negative integer or a function returning one, got `-1` (number).',
      ],
      [
        { policies: { limit: 1, window: '1s' }, status: 200 },
        'Expected `status` to be an HTTP error status from 400 to 599, got `200` (number).',
      ],
      [
        { policies: { limit: 1, window: '1s' }, skip: true },
        'Expected `skip` to be a function, got `true` (boolean).',
      ],
      [
        { policies: { limit: 1, window: '1s' }, headers: 'draft-5' },
        "Expected `headers` to be 'draft-6', 'draft-7', 'draft-8', 'legacy', `false` or an array of those, got \"draft-5\" (string).",
      ],
      [
        { policies: { limit: 1, window: '1s' }, refund: { onSucces: true } },
        'Unknown option `onSucces` in `refund`. Did you mean `onSuccess`? It takes `onSuccess`, `onFailure`, `onAbort`, `isFailure`.',
      ],
      [
        { policies: { limit: 1, window: '1s' }, refund: { onFailure: 'yes' } },
        'Expected `refund.onFailure` to be a boolean, got "yes" (string).',
      ],
      [
        { policies: { limit: 1, window: '1s' }, onStoreError: 'ignore' },
        "Expected `onStoreError` to be `'allow'` or `'deny'`, got \"ignore\" (string).",
      ],
      [
        { policies: { limit: 1, window: '1s' }, max: 5 },
        'Unknown option `max` in `rateLimit()` options. It takes `policies`, `key`, `store`, `name`, `cost`, `skip`, `allow`, `deny`, `refund`, `settle`, `headers`, `shadowHeaders`, `onLimited`, `onDecision`, `onStoreError`, `status`, `body`, `fallback`, `logger`, `probeIntervalMs`, `blockedCache`, `validate`, `usage`, `ban`.',
      ],
      [
        {},
        "Expected `policies` to be a policy such as `{ limit: 100, window: '1m' }`, an array or a function, got `undefined`.",
      ],
      [
        { policies: { limit: 1, window: '1s' }, probeIntervalMs: '2 s' },
        "Expected `probeIntervalMs` to be milliseconds as a number or a string of a whole number and a unit with no space: `'500ms'`, `'10s'`, `'1m'`, `'1h'` or `'1d'`, got \"2 s\" (string). Did you mean '2s'?",
      ],
    ];
    for (const [options, message] of cases) {
      expect(() => rateLimit(options as unknown as RateLimitOptions<Req>)).toThrow(new ConfigError(message));
    }
  });

  it('takes probeIntervalMs as a duration string', () => {
    expect(() =>
      rateLimit<Req>({ policies: { limit: 1, window: '1s' }, probeIntervalMs: '2s' }),
    ).not.toThrow();
  });
});

describe('rateLimit handler', () => {
  it('counts, sets headers and denies with a problem body', async () => {
    const { hit } = limiter({
      policies: { algorithm: 'fixed-window', limit: 2, window: '1m' },
      store: new MemoryStore({ clock: () => 1_000 }),
    });
    const first = await hit();
    expect(first).toMatchObject({ action: 'next', delayMs: 0, headers: { 'RateLimit-Remaining': '1' } });
    expect(first.complete).toBeUndefined();
    await hit();
    const denied = await hit();
    expect(denied.action).toBe('limit');
    expect(denied.status).toBe(429);
    expect(denied.headers['Content-Type']).toBe('application/problem+json');
    expect(denied.headers['Retry-After']).toBe('60');
    expect(JSON.parse(denied.body as string)).toMatchObject({
      status: 429,
      'violated-policies': ['2-per-1m'],
    });
  });

  it('does not count CORS preflights, but counts other OPTIONS requests', async () => {
    const { hit } = limiter();
    const preflight = {
      method: 'OPTIONS',
      header: (n: string) => (n === 'access-control-request-method' ? 'PUT' : undefined),
    };
    for (let i = 0; i < 5; i++) expect((await hit(request(), preflight)).headers).toEqual({});
    expect((await hit(request(), { method: 'OPTIONS' })).headers['RateLimit-Remaining']).toBe('1');
  });

  it('counts a request once per limiter and warns when mounted twice', async () => {
    const { hit, log } = limiter();
    const req = request();
    expect((await hit(req)).headers['RateLimit-Remaining']).toBe('1');
    expect(await hit(req)).toMatchObject({ action: 'next', headers: {} });
    expect(await hit(req)).toMatchObject({ action: 'next', headers: {} });
    expect((await hit()).headers['RateLimit-Remaining']).toBe('0');
    expect(log.warnings).toEqual([
      "[TOLLGATE_DOUBLE_COUNT] Limiter 'default' ran twice for one request (GET /x); it counted it once. Mount it once per route.",
    ]);
  });

  it('counts a request without a key by IP and warns once', async () => {
    const { hit, log } = limiter({ key: (req) => req.headers['x-user'] });
    const result = await hit();
    expect(result.decision?.key).toBe('ip:1.2.3.4');
    await hit(request({ 'x-user': '' }));
    expect((await hit(request({ 'x-user': 'u1' }))).decision?.key).toBe('u1');
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]).toMatch(
      /^\[TOLLGATE_MISSING_KEY\] The key function of limiter 'default' returned no key/,
    );
    expect((await hit(request(), { ip: undefined })).decision?.key).toBe('ip:unknown');
  });

  it('checks the proxy setup for requests counted by IP as a fallback too', async () => {
    const { hit, log } = limiter({ key: () => undefined });
    await hit(request({ 'x-forwarded-for': '9.9.9.9' }));
    expect(log.warnings.map((w) => w.slice(0, w.indexOf(']') + 1))).toEqual([
      '[TOLLGATE_MISSING_KEY]',
      '[TOLLGATE_TRUST_PROXY]',
    ]);
  });

  it('hands a throwing or wrong callback to the framework without counting', async () => {
    const boom = new Error('boom');
    const { hit, handle } = limiter({
      key: (req) => (req.headers.bad ? (42 as never) : 'k'),
      cost: (req) =>
        req.headers.throw ? Promise.reject(boom) : req.headers.cost ? Number(req.headers.cost) : 1,
    });
    expect(await hit(request({ throw: '1' }))).toMatchObject({ action: 'error', error: boom, headers: {} });
    const wrong = await hit(request({ bad: '1' }));
    expect(wrong.action).toBe('error');
    expect(wrong.error).toEqual(
      new CallbackError(
        'key',
        "Expected the `key` function of limiter 'default' to return a string or undefined, got `42` (number).",
      ),
    );
    expect(wrong.error).toMatchObject({ name: 'CallbackError', code: 'TOLLGATE_CALLBACK', option: 'key' });
    expect(isCallbackError(wrong.error) && isTollgateError(wrong.error)).toBe(true);
    for (const cost of ['-1', '1.5', 'NaN']) {
      const result = await hit(request({ cost }));
      expect(result.action).toBe('error');
      expect(result.error).toEqual(
        new CallbackError(
          'cost',
          `Expected the \`cost\` function of limiter 'default' to return a non-negative integer, got \`${cost}\` (number).`,
        ),
      );
    }
    expect((await handle.limiter.peek('k')).remaining).toBe(2);
  });

  it('gives the request back when a hook throws after counting', async () => {
    const { hit, handle } = limiter({
      key: () => 'k',
      onDecision: () => {
        throw new Error('hook');
      },
    });
    expect((await hit()).action).toBe('error');
    expect((await hit()).action).toBe('error');
    expect((await handle.limiter.peek('k')).remaining).toBe(2);
  });

  it('refunds at most once, by outcome', async () => {
    const { hit, handle } = limiter({ key: () => 'k', refund: { onFailure: true } });
    const ok = await hit();
    ok.complete!(200);
    const failed = await hit();
    failed.complete!(500);
    failed.complete!(500);
    failed.complete!(0, 'unserved');
    await new Promise((resolve) => setImmediate(resolve));
    expect((await handle.limiter.peek('k')).remaining).toBe(1);
    const unserved = await hit();
    unserved.complete!(200, 'unserved');
    await new Promise((resolve) => setImmediate(resolve));
    expect((await handle.limiter.peek('k')).remaining).toBe(1);
    // An abort downstream is no failure: the handler ran.
    const aborted = await hit();
    aborted.complete!(500, 'aborted');
    await new Promise((resolve) => setImmediate(resolve));
    expect((await handle.limiter.peek('k')).remaining).toBe(0);
  });

  it('refunds an abort downstream only with onAbort', async () => {
    const { hit, handle } = limiter({ key: () => 'k', refund: { onAbort: true } });
    (await hit()).complete!(500, 'aborted');
    (await hit()).complete!(0, 'unserved');
    (await hit()).complete!(500, 'finished');
    await new Promise((resolve) => setImmediate(resolve));
    expect((await handle.limiter.peek('k')).remaining).toBe(1);
  });

  it('warns when the app trusts no proxy but X-Forwarded-For arrives, or trusts every hop', async () => {
    const { hit, log } = limiter();
    await hit(request());
    expect(log.warnings).toEqual([]);
    await hit(request({ 'x-forwarded-for': '9.9.9.9' }));
    expect(log.warnings[0]).toMatch(/^\[TOLLGATE_TRUST_PROXY\] X-Forwarded-For arrived/);
    const permissive = limiter();
    await permissive.hit(request({ 'x-forwarded-for': '9.9.9.9' }), {
      trustProxy: true,
      trustAnyProxy: true,
    });
    expect(permissive.log.warnings[0]).toMatch(/^\[TOLLGATE_PERMISSIVE_TRUST_PROXY\]/);
    const fine = limiter();
    await fine.hit(request({ 'x-forwarded-for': '9.9.9.9' }), { trustProxy: true });
    expect(fine.log.warnings).toEqual([]);
    const byUser = limiter({ key: () => 'user:1' });
    await byUser.hit(request({ 'x-forwarded-for': '9.9.9.9' }));
    expect(byUser.log.warnings).toEqual([]);
  });

  it('validates tier policies once per object and warns when they are rebuilt per request', async () => {
    const pro: Policy[] = [{ limit: 600, window: '1m' }];
    const stable = limiter({ policies: () => pro });
    expect((await stable.hit()).headers['RateLimit-Limit']).toBe('600');
    await stable.hit();
    expect(stable.log.warnings).toEqual([]);
    const rebuilt = limiter({ policies: () => [{ limit: 600, window: '1m' }] });
    await rebuilt.hit();
    await rebuilt.hit();
    expect(rebuilt.log.warnings[0]).toMatch(/^\[TOLLGATE_UNSTABLE_POLICIES\]/);
    const broken = limiter({ policies: () => [{ limit: -1, window: '1m' }] });
    const result = await broken.hit();
    expect(result.action).toBe('error');
    expect(result.error).toEqual(
      new CallbackError(
        'policies',
        "The `policies` function of limiter 'default' returned an invalid policy: Expected `policies[0].limit` to be a positive integer, got `-1` (number).",
      ),
    );
    expect((result.error as Error).cause).toBeInstanceOf(ConfigError);
    const none = limiter({ policies: () => undefined as never });
    const missing = await none.hit();
    expect(missing.action).toBe('error');
    expect(missing.error).toEqual(
      new CallbackError(
        'policies',
        "Expected the `policies` function of limiter 'default' to return a policy or an array of policies for every request, got `undefined`. Return a default tier rather than nothing, e.g. `(req) => TIERS[req.user?.plan] ?? TIERS.free`.",
      ),
    );
  });

  it('asks for policies when a tier limiter is used directly without them', async () => {
    const pro: Policy[] = [{ limit: 600, window: '1m' }];
    const { hit, handle } = limiter({ key: () => 'k', policies: () => pro });
    await hit();
    expect((await handle.limiter.peek('k', { policies: pro })).remaining).toBe(599);
    const message =
      "Limiter 'default' has no policies of its own (created without `policies`, or by `rateLimit()` with a policies function): pass them to each call, e.g. `limiter.peek(key, { policies: TIERS.pro })`.";
    await expect(handle.limiter.peek('k')).rejects.toThrow(new ConfigError(message));
    await expect(handle.limiter.consume('k')).rejects.toThrow(new ConfigError(message));
    await expect(handle.limiter.consume('k', { cost: 2 })).rejects.toThrow(new ConfigError(message));
    await expect(handle.limiter.refund('k')).rejects.toThrow(new ConfigError(message));
    await expect(handle.limiter.reset('k')).rejects.toThrow(new ConfigError(message));
    await handle.limiter.refund('k', 1, { policies: pro });
    expect((await handle.limiter.peek('k', { policies: pro })).remaining).toBe(600);
  });

  it('sets nothing on a response that already started, and says so once', async () => {
    const { hit, log } = limiter({ policies: { limit: 1, window: '1m' } });
    const started = { headersSent: () => true };
    expect(await hit(request(), started)).toMatchObject({ action: 'next', headers: {} });
    const denied = await hit(request(), started);
    expect(denied.action).toBe('limit');
    expect(denied.headers).toEqual({});
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]).toMatch(/^\[TOLLGATE_HEADERS_SENT\]/);
  });

  it('shows the most restrictive of stacked limiters', async () => {
    const store = new MemoryStore();
    const outer = limiter({ store, name: 'outer', policies: { limit: 100, window: '1m' } });
    const inner = limiter({ store, name: 'inner', policies: { limit: 3, window: '1m' } });
    const req = request();
    await outer.hit(req);
    const result = await inner.hit(req);
    expect(result.headers['RateLimit-Limit']).toBe('3');
    const reversed = request();
    await inner.hit(reversed);
    const after = await outer.hit(reversed);
    expect(after.headers['RateLimit-Limit']).toBe('3');
    expect(after.decision?.limit).toBe(3);
  });

  it('answers 503, not 429, when the store fails and onStoreError is deny; no headers when it allows', async () => {
    const broken = {
      consume: () => Promise.reject(new Error('down')),
      peek: () => Promise.reject(new Error('down')),
      refund: () => Promise.resolve(),
      reset: () => Promise.resolve(),
    };
    const deny = limiter({ store: broken, onStoreError: 'deny' });
    const denied = await deny.hit();
    expect(denied.status).toBe(503);
    expect(denied.decision).toMatchObject({ allowed: false, reason: 'store-error' });
    expect(denied.headers).toEqual({ 'Retry-After': '1', 'Content-Type': 'application/problem+json' });
    const allow = limiter({ store: broken, refund: { onFailure: true } });
    const allowed = await allow.hit();
    // Nothing was counted, so there is nothing to give back.
    expect(allowed.complete).toBeUndefined();
    expect(allowed).toMatchObject({
      action: 'next',
      headers: {},
      decision: { allowed: true, reason: 'store-error' },
    });
    expect(allow.log.warnings[0]).toMatch(/^\[TOLLGATE_STORE_ERROR\]/);
  });

  describe('decide: synchronous when nothing asynchronous runs', () => {
    const isPromise = (value: unknown) => value instanceof Promise;

    it('answers without a promise on a MemoryStore with synchronous callbacks, and counts the same', async () => {
      const { handle } = limiter({
        store: new MemoryStore({ clock: () => 1_000 }),
        policies: { algorithm: 'fixed-window', limit: 2, window: '1m' },
        key: (req) => req.headers['x-user'],
        cost: () => 1,
        skip: () => false,
        onDecision: () => undefined,
        onLimited: () => undefined,
      });
      const req = () => request({ 'x-user': 'u1' });
      const results = [1, 2, 3].map(() => {
        const r = req();
        return handle.decide(view(r), r);
      });
      expect(results.map(isPromise)).toEqual([false, false, false]);
      expect(results.map((r) => (r as { action: string }).action)).toEqual(['next', 'next', 'limit']);
      expect(
        results.map((r) => (r as { headers: Record<string, string> }).headers['RateLimit-Remaining']),
      ).toEqual(['1', '0', '0']);
      expect((await handle.limiter.peek('u1')).remaining).toBe(0);
    });

    it('returns a promise as soon as one step is asynchronous, with the same answer', async () => {
      const store = new MemoryStore({ clock: () => 1_000 });
      const policies: Policy = { algorithm: 'fixed-window', limit: 3, window: '1m' };
      const steps: Partial<RateLimitOptions<Req>>[] = [
        { skip: async () => false },
        { key: async () => 'k' },
        { cost: async () => 1 },
        { policies: async () => policies },
        { onDecision: async () => undefined },
      ];
      for (const [i, step] of steps.entries()) {
        const { handle } = limiter({ store, name: `step${i}`, policies, key: () => 'k', ...step });
        const r = request();
        const result = handle.decide(view(r), r);
        expect(isPromise(result)).toBe(true);
        expect(await result).toMatchObject({ action: 'next', headers: { 'RateLimit-Remaining': '2' } });
      }
    });

    it('never throws: a synchronous failure comes back as an error result, and a counted request is given back', async () => {
      const boom = new Error('boom');
      const { handle } = limiter({
        key: () => 'k',
        onDecision: () => {
          throw boom;
        },
      });
      const r = request();
      const result = handle.decide(view(r), r);
      // The refund is asynchronous, so this answer is a promise; it must not be a throw.
      expect(await result).toMatchObject({ action: 'error', error: boom });
      expect((await handle.limiter.peek('k')).remaining).toBe(2);
      const bad = limiter({ key: () => 42 as never });
      const r2 = request();
      const wrong = bad.handle.decide(view(r2), r2);
      expect(isPromise(wrong)).toBe(false);
      expect((wrong as { action: string }).action).toBe('error');
    });
  });
});

describe('allow and deny lists', () => {
  /** A MemoryStore that counts every call made to it. */
  class CountingStore extends MemoryStore {
    calls = 0;
    override consume(...args: Parameters<MemoryStore['consume']>) {
      this.calls++;
      return super.consume(...args);
    }
    override consumeSync(...args: Parameters<MemoryStore['consumeSync']>) {
      this.calls++;
      return super.consumeSync(...args);
    }
    override peek(...args: Parameters<MemoryStore['peek']>) {
      this.calls++;
      return super.peek(...args);
    }
  }

  it('names a malformed entry by index and value, with the fix', () => {
    const cases: [Record<string, unknown>, string][] = [
      [
        { allow: ['10.0.0.0/8', '192.168.1.0/33'] },
        "Expected `allow[1]` to be an IPv4 or IPv6 address or CIDR range ('203.0.113.7', '10.0.0.0/8', '2001:db8::/48') or a function `(req) => boolean`, got \"192.168.1.0/33\" (string). The prefix length of an IPv4 range is a whole number from 0 to 32.",
      ],
      [
        { deny: ['2001:db8::1/48'] },
        "Expected `deny[0]` to be an IPv4 or IPv6 address or CIDR range ('203.0.113.7', '10.0.0.0/8', '2001:db8::/48') or a function `(req) => boolean`, got \"2001:db8::1/48\" (string). It has address bits set past its /48 prefix: write '2001:db8::/48' for the range, or '2001:db8::1' for the one address.",
      ],
      [
        { deny: ['10.0.0.1', 42] },
        "Expected `deny[1]` to be an IPv4 or IPv6 address or CIDR range ('203.0.113.7', '10.0.0.0/8', '2001:db8::/48') or a function `(req) => boolean`, got `42` (number).",
      ],
      [
        { allow: '10.0.0.0/8' },
        "Expected `allow` to be an array of addresses, CIDR ranges and functions, e.g. `['10.0.0.0/8', '2001:db8::/48']`, got \"10.0.0.0/8\" (string). Wrap the entry in an array.",
      ],
    ];
    for (const [options, message] of cases) {
      expect(() => rateLimit<Req>({ policies: { limit: 1, window: '1s' }, ...options })).toThrow(
        new ConfigError(message),
      );
    }
  });

  it('refuses a denied client with 403 before any store call; lets an allowed one through uncounted', async () => {
    const store = new CountingStore();
    const { hit } = limiter({ store, allow: ['2001:db8:1234::/48'], deny: ['10.0.0.0/8'] });
    const denied = await hit(request(), { ip: '10.200.3.4' });
    expect(denied).toMatchObject({ action: 'limit', status: 403, denied: true, delayMs: 0 });
    expect(denied.decision).toBeUndefined();
    expect(denied.headers).toEqual({ 'Content-Type': 'application/problem+json' });
    expect(JSON.parse(denied.body as string)).toEqual({
      type: 'https://github.com/tollgate/tollgate#allow-and-deny-lists',
      title: 'Access denied',
      status: 403,
      detail: 'Requests from this client are refused by the deny list; waiting does not help.',
    });
    // Its IPv4-mapped spelling is the same client.
    expect((await hit(request(), { ip: '::ffff:10.0.0.1' })).status).toBe(403);
    for (let i = 0; i < 5; i++) {
      const allowed = await hit(request(), { ip: `2001:db8:1234:${i + 1}00::${i + 1}` });
      expect(allowed).toMatchObject({ action: 'next', headers: {}, delayMs: 0 });
      expect(allowed.decision).toMatchObject({
        allowed: true,
        reason: 'allowed',
        key: `ip:2001:db8:1234:${i + 1}00::/56`,
        limit: 999_999_999_999_999,
        remaining: 999_999_999_999_999,
        used: 0,
        retryAfterMs: 0,
      });
      expect(allowed.decision!.policy.name).toBe('allow-list');
    }
    expect(store.calls).toBe(0);
    // Anyone else is counted as usual.
    expect((await hit(request(), { ip: '2001:db8:1235::1' })).headers['RateLimit-Remaining']).toBe('1');
    expect(store.calls).toBe(1);
  });

  it('asks predicates, synchronous or not, after the ranges; deny wins', async () => {
    const store = new CountingStore();
    const asked: string[] = [];
    const { hit } = limiter({
      store,
      allow: [
        (req) => {
          asked.push('allow');
          return req.headers['x-health'] === 'yes';
        },
        async (req) => req.headers['x-partner'] === 'acme',
        '192.0.2.0/24',
      ],
      deny: [
        async (req) => {
          asked.push('deny');
          return req.headers['x-bad'] === '1';
        },
        '198.51.100.7',
      ],
    });
    expect((await hit(request({ 'x-health': 'yes' }))).decision?.reason).toBe('allowed');
    expect((await hit(request({ 'x-partner': 'acme' }))).decision?.reason).toBe('allowed');
    expect((await hit(request({ 'x-health': 'yes', 'x-bad': '1' }))).status).toBe(403);
    asked.length = 0;
    // A denied range is refused without asking any predicate; an allowed one asks the deny predicates.
    expect((await hit(request({ 'x-bad': '1' }), { ip: '198.51.100.7' })).status).toBe(403);
    expect(asked).toEqual([]);
    expect((await hit(request({ 'x-bad': '1' }), { ip: '192.0.2.9' })).status).toBe(403);
    expect((await hit(request(), { ip: '192.0.2.9' })).decision?.reason).toBe('allowed');
    expect(asked).toEqual(['deny', 'deny']);
    expect(store.calls).toBe(0);
    expect((await hit()).decision?.reason).toBeUndefined();
    expect(store.calls).toBe(1);
  });

  it('answers synchronously when ranges and predicates are synchronous', () => {
    const log = logger();
    const handle = rateLimit<Req>({
      policies: { limit: 2, window: '1m' },
      logger: log,
      allow: ['1.2.3.0/24'],
    });
    const req = request();
    const result = handle.decide(view(req), req);
    expect(result).not.toBeInstanceOf(Promise);
    expect((result as { decision?: { reason?: string } }).decision?.reason).toBe('allowed');
  });

  it('hands a throwing predicate to the framework, counting nothing', async () => {
    const store = new CountingStore();
    const { hit } = limiter({
      store,
      deny: [
        () => {
          throw new Error('lookup failed');
        },
      ],
    });
    const result = await hit();
    expect(result.action).toBe('error');
    expect((result.error as Error).message).toBe('lookup failed');
    expect(store.calls).toBe(0);
  });

  it('warns when allow and deny overlap (deny wins), and of private addresses matched with no proxy trusted', async () => {
    const { hit, log } = limiter({
      allow: ['192.0.2.1', '10.0.0.0/8', '2001:db8::/32'],
      deny: ['198.51.100.0/24', '10.9.0.0/16'],
    });
    expect(log.warnings).toEqual([
      "[TOLLGATE_LIST_OVERLAP] Limiter 'default': `allow[1]` and `deny[1]` share addresses; the deny list wins, so those addresses are refused. Narrow the deny entry if they are meant to get through.",
    ]);
    expect((await hit(request(), { ip: '10.9.1.1' })).status).toBe(403);
    await hit(request(), { ip: '10.1.1.1' });
    await hit(request(), { ip: '10.1.1.2' });
    expect(log.warnings).toHaveLength(2);
    expect(log.warnings[1]).toMatch(
      /^\[TOLLGATE_LIST_PRIVATE_ADDRESS\] Limiter 'default': a request from "10.9.1.1", a private address, matched the deny list while the app trusts no proxy\./,
    );
    // Trusting the proxy (and a public address) is what the warning asks for: nothing more to say.
    const trusted = limiter({ allow: ['10.0.0.0/8', '192.0.2.0/24'] });
    await trusted.hit(request(), { ip: '10.1.1.1', trustProxy: true });
    await trusted.hit(request(), { ip: '192.0.2.1' });
    expect(trusted.log.warnings).toEqual([]);
  });

  it('warns when every proxy hop is trusted: a client could claim an allowed address', async () => {
    const { hit, log } = limiter({ allow: ['192.0.2.0/24'] });
    await hit(request({ 'x-forwarded-for': '192.0.2.1' }), {
      ip: '192.0.2.1',
      trustProxy: true,
      trustAnyProxy: true,
    });
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]).toMatch(
      /^\[TOLLGATE_PERMISSIVE_TRUST_PROXY\] Limiter 'default': the app trusts every/,
    );
  });

  it('leaves an enforced decision of a limiter before it in view', async () => {
    const log = logger();
    const first = rateLimit<Req>({ name: 'first', policies: { limit: 5, window: '1m' }, logger: log });
    const second = rateLimit<Req>({
      name: 'second',
      policies: { limit: 1, window: '1m' },
      logger: log,
      allow: ['1.2.3.4'],
    });
    const req = request();
    await first(view(req), req);
    const result = await second(view(req), req);
    expect(result.decision).toMatchObject({ limit: 5, remaining: 4 });
    expect(result.decision?.reason).toBeUndefined();
  });
});
