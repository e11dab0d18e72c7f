import { parseDictionary, parseItem, parseList, Token } from 'structured-headers';
import { describe, expect, it } from 'vitest';
import { toDecision } from '../decision.js';
import { ConfigError } from '../errors.js';
import { resolvePolicySet } from '../policy.js';
import type { Outcome, Policy } from '../types.js';
import {
  decisionHeaders,
  resolveHeaderModes,
  retryAfterSeconds,
  windowSeconds,
  writeHeaders,
} from './headers.js';

const outcome = (o: Partial<Outcome>): Outcome => ({
  allowed: true,
  remaining: 0,
  resetMs: 0,
  retryAfterMs: 0,
  delayMs: 0,
  ...o,
});

function decide(policies: Policy[], outcomes: Partial<Outcome>[]) {
  return toDecision('ip:1.2.3.4', resolvePolicySet(policies, 'test'), outcomes.map(outcome));
}

const two: Policy[] = [
  { name: 'burst', limit: 10, window: '1s' },
  { name: 'hourly', limit: 1000, window: '1h' },
];
const allowed = decide(two, [
  { remaining: 9, resetMs: 1000 },
  { remaining: 5, resetMs: 3_599_001 },
]);
const denied = decide(two, [
  { allowed: false, remaining: 0, resetMs: 800, retryAfterMs: 1 },
  { remaining: 5, resetMs: 3_599_001 },
]);

describe('decisionHeaders', () => {
  it('draft-6: the binding policy in three fields, every policy in RateLimit-Policy', () => {
    const headers = decisionHeaders(allowed, ['draft-6']);
    expect(headers).toEqual({
      'RateLimit-Limit': '1000',
      'RateLimit-Remaining': '5',
      'RateLimit-Reset': '3600',
      'RateLimit-Policy': '10;w=1, 1000;w=3600',
    });
    expect(parseItem(headers['RateLimit-Limit']!)).toEqual([1000, new Map()]);
    expect(parseItem(headers['RateLimit-Remaining']!)).toEqual([5, new Map()]);
    expect(parseItem(headers['RateLimit-Reset']!)).toEqual([3600, new Map()]);
    expect(parseList(headers['RateLimit-Policy']!)).toEqual([
      [10, new Map([['w', 1]])],
      [1000, new Map([['w', 3600]])],
    ]);
  });

  it('draft-7: one RateLimit dictionary plus RateLimit-Policy', () => {
    const headers = decisionHeaders(allowed, ['draft-7']);
    expect(headers).toEqual({
      RateLimit: 'limit=1000, remaining=5, reset=3600',
      'RateLimit-Policy': '10;w=1, 1000;w=3600',
    });
    expect(parseDictionary(headers.RateLimit!)).toEqual(
      new Map([
        ['limit', [1000, new Map()]],
        ['remaining', [5, new Map()]],
        ['reset', [3600, new Map()]],
      ]),
    );
  });

  it('draft-8: one item per policy, named', () => {
    const headers = decisionHeaders(allowed, ['draft-8']);
    expect(headers).toEqual({
      'RateLimit-Policy': '"burst";q=10;w=1, "hourly";q=1000;w=3600',
      RateLimit: '"burst";r=9;t=1, "hourly";r=5;t=3600',
    });
    expect(parseList(headers['RateLimit-Policy']!)).toEqual([
      [
        'burst',
        new Map([
          ['q', 10],
          ['w', 1],
        ]),
      ],
      [
        'hourly',
        new Map([
          ['q', 1000],
          ['w', 3600],
        ]),
      ],
    ]);
    expect(parseList(headers.RateLimit!)).toEqual([
      [
        'burst',
        new Map([
          ['r', 9],
          ['t', 1],
        ]),
      ],
      [
        'hourly',
        new Map([
          ['r', 5],
          ['t', 3600],
        ]),
      ],
    ]);
  });

  it('legacy: X-RateLimit-* with the reset as epoch seconds, rounded up', () => {
    expect(decisionHeaders(allowed, ['legacy'], 1_700_000_000_500)).toEqual({
      'X-RateLimit-Limit': '1000',
      'X-RateLimit-Remaining': '5',
      'X-RateLimit-Reset': String(Math.ceil((1_700_000_000_500 + 3_599_001) / 1000)),
    });
  });

  it('combines modes and sends nothing for none', () => {
    expect(Object.keys(decisionHeaders(allowed, ['draft-6', 'legacy']))).toEqual([
      'RateLimit-Limit',
      'RateLimit-Remaining',
      'RateLimit-Reset',
      'RateLimit-Policy',
      'X-RateLimit-Limit',
      'X-RateLimit-Remaining',
      'X-RateLimit-Reset',
    ]);
    expect(decisionHeaders(allowed, [])).toEqual({});
  });

  it('adds Retry-After to a denial, rounded up, at least 1, in every mode', () => {
    const headers = decisionHeaders(denied, ['draft-6']);
    expect(headers['Retry-After']).toBe('1');
    expect(headers['RateLimit-Limit']).toBe('10');
    expect(headers['RateLimit-Remaining']).toBe('0');
    expect(headers['RateLimit-Reset']).toBe('1');
    expect(parseItem(headers['Retry-After']!)).toEqual([1, new Map()]);
    expect(decisionHeaders(denied, [])).toEqual({ 'Retry-After': '1' });
    expect(decisionHeaders(allowed, ['draft-6'])['Retry-After']).toBeUndefined();
  });

  it('sends no Retry-After when no wait helps (cost above capacity)', () => {
    const never = decide(two, [
      { allowed: false, remaining: 10, retryAfterMs: Number.POSITIVE_INFINITY },
      {},
    ]);
    expect(decisionHeaders(never, ['draft-6'])['Retry-After']).toBeUndefined();
  });

  it('rounds RateLimit-Reset up: at least 1 while a window runs, 0 when none does', () => {
    const at = (resetMs: number) =>
      decisionHeaders(decide([{ limit: 5, window: '1m' }], [{ remaining: 4, resetMs }]), ['draft-6'])[
        'RateLimit-Reset'
      ];
    expect(at(1)).toBe('1');
    expect(at(1000)).toBe('1');
    expect(at(1001)).toBe('2');
    expect(at(0)).toBe('0');
  });

  it('states bucket policies as capacity over the time to refill it, in whole seconds rounded up', () => {
    const bucket = decide(
      [
        { name: 'tb', algorithm: 'token-bucket', limit: 10, window: '1s', burst: 15 },
        { name: 'half', limit: 3, window: '500ms' },
      ],
      [{ remaining: 14, resetMs: 100 }, { remaining: 2 }],
    );
    const headers = decisionHeaders(bucket, ['draft-8']);
    // 15 tokens refill in 1.5 s; 3 per 500 ms: the drafts' `w` is an Integer, rounded up (a lower rate).
    expect(headers['RateLimit-Policy']).toBe('"tb";q=15;w=2, "half";q=3;w=1');
    const parsed = parseList(headers['RateLimit-Policy']!);
    expect(parsed.map(([, params]) => params.get('w'))).toEqual([2, 1]);
    expect(parsed.every(([, params]) => Number.isInteger(params.get('w')))).toBe(true);
    expect(parseList(decisionHeaders(bucket, ['draft-6'])['RateLimit-Policy']!)).toHaveLength(2);
  });

  it('every field of every mode parses as RFC 9651 for odd policy names too', () => {
    const odd = decide(
      [{ name: 'a.b_c:d/e-1', limit: 7, window: 90_000 }],
      [{ remaining: 3, resetMs: 45_500 }],
    );
    const all = { ...decisionHeaders(odd, ['draft-8']), ...decisionHeaders(odd, ['draft-6']) };
    expect(parseList(decisionHeaders(odd, ['draft-8']).RateLimit!)[0]![0]).toBe('a.b_c:d/e-1');
    expect(parseList(all['RateLimit-Policy']!)).toEqual([[7, new Map([['w', 90]])]]);
    expect(parseItem(all['RateLimit-Reset']!)[0]).toBe(46);
    expect(parseItem(all['RateLimit-Limit']!)[0]).not.toBeInstanceOf(Token);
  });
});

describe('shadow policies', () => {
  const mixed: Policy[] = [
    { name: 'api', limit: 10, window: '1s' },
    { name: 'next', limit: 5, window: '1s', mode: 'shadow' },
  ];
  // The shadow policy would deny: the request goes through on the enforced one's numbers.
  const decision = decide(mixed, [
    { remaining: 4, resetMs: 1000 },
    { allowed: false, remaining: 0, resetMs: 1500, retryAfterMs: 300 },
  ]);

  it('bind nothing: the decision is the enforced policies’ own, naming the shadow denial', () => {
    expect(decision).toMatchObject({ allowed: true, limit: 10, remaining: 4, retryAfterMs: 0 });
    expect(decision.policy.name).toBe('api');
    expect(decision.shadowLimited).toEqual(['next']);
  });

  it('are left out of every header unless asked', () => {
    expect(decisionHeaders(decision, ['draft-6'])).toEqual({
      'RateLimit-Limit': '10',
      'RateLimit-Remaining': '4',
      'RateLimit-Reset': '1',
      'RateLimit-Policy': '10;w=1',
    });
    expect(decisionHeaders(decision, ['draft-8'])).toEqual({
      'RateLimit-Policy': '"api";q=10;w=1',
      RateLimit: '"api";r=4;t=1',
    });
    expect(decisionHeaders(decision, ['draft-8'], undefined, true)).toEqual({
      'RateLimit-Policy': '"api";q=10;w=1, "next";q=5;w=1',
      RateLimit: '"api";r=4;t=1, "next";r=0;t=2',
    });
    expect(decisionHeaders(decision, ['draft-6'], undefined, true)['RateLimit-Policy']).toBe('10;w=1, 5;w=1');
    // And once more without: the cached field of one variant never answers for the other.
    expect(decisionHeaders(decision, ['draft-6'])['RateLimit-Policy']).toBe('10;w=1');
  });

  it('alone: no header unless asked, then the tightest one', () => {
    const only = decide(
      [
        { name: 'a', limit: 10, window: '1s', mode: 'shadow' },
        { name: 'b', limit: 3, window: '1s', mode: 'shadow' },
      ],
      [{ remaining: 7 }, { allowed: false, remaining: 0, resetMs: 900, retryAfterMs: 200 }],
    );
    expect(only).toMatchObject({ allowed: true, limit: 3, remaining: 0, retryAfterMs: 0 });
    expect(only.shadowLimited).toEqual(['b']);
    expect(decisionHeaders(only, ['draft-6', 'legacy'])).toEqual({});
    expect(decisionHeaders(only, ['draft-7'], undefined, true)).toEqual({
      RateLimit: 'limit=3, remaining=0, reset=1',
      'RateLimit-Policy': '10;w=1, 3;w=1',
    });
  });
});

describe('the largest limit', () => {
  it('still gives RFC 9651 Integers (15 digits) in every field of every mode', () => {
    const largest = decide(
      [{ name: 'max', limit: 999_999_999_999_999, window: '9ms' }],
      [{ remaining: 999_999_999_999_998, resetMs: 9 }],
    );
    for (const mode of ['draft-6', 'draft-7', 'draft-8', 'legacy'] as const) {
      const headers = decisionHeaders(largest, [mode], 0);
      for (const [name, value] of Object.entries(headers)) {
        if (name === 'RateLimit' && mode === 'draft-7') expect(() => parseDictionary(value)).not.toThrow();
        else if (name === 'RateLimit' || name === 'RateLimit-Policy')
          expect(() => parseList(value)).not.toThrow();
        else expect(Number.isInteger(parseItem(value)[0]), `${mode} ${name}`).toBe(true);
      }
    }
    expect(() => decide([{ limit: 10 ** 15, window: '1ms' }], [{}])).toThrow(ConfigError);
  });
});

describe('windowSeconds', () => {
  it('is the window for window algorithms and burst / rate for buckets', () => {
    const d = decide(
      [
        { name: 'w', limit: 60, window: '1m' },
        { name: 'lb', algorithm: 'leaky-bucket', limit: 3, window: '1s', burst: 1 },
      ],
      [{}, {}],
    );
    // 1 token every 333.3 ms: at least one whole second.
    expect(d.policies.map(windowSeconds)).toEqual(['60', '1']);
  });
});

describe('retryAfterSeconds', () => {
  it('rounds up to whole seconds, never 0, none for Infinity', () => {
    expect(retryAfterSeconds(1)).toBe(1);
    expect(retryAfterSeconds(0)).toBe(1);
    expect(retryAfterSeconds(1000)).toBe(1);
    expect(retryAfterSeconds(1001)).toBe(2);
    expect(retryAfterSeconds(59_999)).toBe(60);
    expect(retryAfterSeconds(Number.POSITIVE_INFINITY)).toBeUndefined();
  });
});

describe('resolveHeaderModes', () => {
  it('defaults to draft-6, takes one mode, several or none', () => {
    expect(resolveHeaderModes(undefined)).toEqual(['draft-6']);
    expect(resolveHeaderModes('legacy')).toEqual(['legacy']);
    expect(resolveHeaderModes(['draft-7', 'legacy', 'draft-7'])).toEqual(['draft-7', 'legacy']);
    expect(resolveHeaderModes(false)).toEqual([]);
    expect(resolveHeaderModes([])).toEqual([]);
  });

  it('rejects unknown modes and modes that define RateLimit-Policy differently', () => {
    expect(() => resolveHeaderModes('draft-9')).toThrow(
      new ConfigError(
        "Expected `headers` to be 'draft-6', 'draft-7', 'draft-8', 'legacy', `false` or an array of those, got \"draft-9\" (string).",
      ),
    );
    expect(() => resolveHeaderModes(true)).toThrow(ConfigError);
    expect(() => resolveHeaderModes(['draft-6', 'draft-8'])).toThrow(/pick one of them/);
  });
});

describe('writeHeaders', () => {
  it('sets every field under its lower-case wire name, and other names as they are', () => {
    const set: [string, string][] = [];
    writeHeaders(
      { setHeader: (name: string, value: string) => set.push([name, value]) },
      {
        'RateLimit-Limit': '10',
        'RateLimit-Remaining': '9',
        'RateLimit-Reset': '1',
        'RateLimit-Policy': '10;w=1',
        RateLimit: 'limit=10, remaining=9, reset=1',
        'X-RateLimit-Limit': '10',
        'X-RateLimit-Remaining': '9',
        'X-RateLimit-Reset': '1700000000',
        'Retry-After': '1',
        'Content-Type': 'application/problem+json',
        'X-Other': 'kept',
      },
    );
    expect(set).toEqual([
      ['ratelimit-limit', '10'],
      ['ratelimit-remaining', '9'],
      ['ratelimit-reset', '1'],
      ['ratelimit-policy', '10;w=1'],
      ['ratelimit', 'limit=10, remaining=9, reset=1'],
      ['x-ratelimit-limit', '10'],
      ['x-ratelimit-remaining', '9'],
      ['x-ratelimit-reset', '1700000000'],
      ['retry-after', '1'],
      ['content-type', 'application/problem+json'],
      ['X-Other', 'kept'],
    ]);
  });
});
