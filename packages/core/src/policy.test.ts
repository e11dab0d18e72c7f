import { describe, expect, test } from 'vitest';
import { formatDuration, MAX_WINDOW_MS, parseDuration } from './duration.js';
import { ConfigError, isConfigError, isTollgateError } from './errors.js';
import { resolvePolicy, resolvePolicySet } from './policy.js';
import type { Policy } from './types.js';

/** Runs `fn`, requires a ConfigError, and requires every fragment in its message. */
function configError(fn: () => unknown, ...fragments: string[]): ConfigError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, 'expected a ConfigError to be thrown').toBeInstanceOf(ConfigError);
  const error = thrown as ConfigError;
  expect(isConfigError(error)).toBe(true);
  expect(isTollgateError(error)).toBe(true);
  expect(error.name).toBe('ConfigError');
  expect(error.code).toBe('TOLLGATE_CONFIG');
  for (const fragment of fragments) expect(error.message).toContain(fragment);
  return error;
}

const bad = (policy: Record<string, unknown>) => () => resolvePolicy(policy as unknown as Policy);

describe('durations', () => {
  test.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    [1500, 1500],
    ['1500ms', 1500],
    // Past the longest timer (24.8 days): no timer waits for a window (issue 12).
    ['25d', 25 * 86_400_000],
    ['365d', 365 * 86_400_000],
    [MAX_WINDOW_MS, MAX_WINDOW_MS],
  ] as const)('%j is %d ms', (input, ms) => {
    expect(parseDuration(input, 'window', MAX_WINDOW_MS)).toBe(ms);
    expect(resolvePolicy({ limit: 1, window: input }).window).toBe(ms);
  });

  test.each([
    [1000, '1s'],
    [90_000, '90s'],
    [60_000, '1m'],
    [3_600_000, '1h'],
    [86_400_000, '1d'],
    [1500, '1500ms'],
  ])('formats %d ms as %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('resolvePolicy fills in defaults', () => {
  test('sliding-window by default, burst = limit, no delay, enforced, a readable name', () => {
    expect(resolvePolicy({ limit: 10, window: '1s' })).toEqual({
      name: '10-per-1s',
      algorithm: 'sliding-window',
      limit: 10,
      window: 1000,
      burst: 10,
      delay: false,
      mode: 'enforce',
      maxDebt: 10,
      id: 'sw:10:1000',
    });
  });

  test('maxDebt: the capacity by default, shrunk so that (capacity + maxDebt) x window stays safe', () => {
    expect(resolvePolicy({ algorithm: 'token-bucket', limit: 5, window: '1m', burst: 8 }).maxDebt).toBe(8);
    expect(resolvePolicy({ limit: 5, window: '1m', maxDebt: 0 }).maxDebt).toBe(0);
    // Not part of the state's identity: changing it keeps the counters.
    expect(resolvePolicy({ limit: 5, window: '1m', maxDebt: 3 }).id).toBe(
      resolvePolicy({ limit: 5, window: '1m' }).id,
    );
    const big = { limit: 100_000_007, window: 90_000_001 };
    const most = Math.floor(Number.MAX_SAFE_INTEGER / big.window) - big.limit;
    expect(most).toBe(79_983);
    expect(resolvePolicy(big).maxDebt).toBe(most);
    expect(resolvePolicy({ ...big, maxDebt: most }).maxDebt).toBe(most);
    configError(
      () => resolvePolicy({ ...big, maxDebt: most + 1 }),
      '`policy.maxDebt` is 79984',
      'at most 79983',
    );
    for (const value of [-1, 1.5, '3', Number.POSITIVE_INFINITY]) {
      configError(
        bad({ limit: 1, window: '1s', maxDebt: value }),
        '`policy.maxDebt`',
        'a non-negative integer',
      );
    }
  });

  test('buckets: burst defaults to limit; leaky-bucket delays by default', () => {
    expect(resolvePolicy({ algorithm: 'token-bucket', limit: 5, window: '1m' })).toMatchObject({
      burst: 5,
      delay: false,
    });
    expect(resolvePolicy({ algorithm: 'leaky-bucket', limit: 5, window: '1m' })).toMatchObject({
      burst: 5,
      delay: true,
    });
    expect(
      resolvePolicy({ algorithm: 'leaky-bucket', limit: 5, window: '1m', burst: 9, delay: false }),
    ).toMatchObject({ burst: 9, delay: false });
  });

  test('the result is frozen', () => {
    expect(Object.isFrozen(resolvePolicy({ limit: 1, window: 1 }))).toBe(true);
  });
});

describe('every bad policy option throws a ConfigError naming option, expectation and value', () => {
  test.each([
    [0, '`0` (number)'],
    [-1, '`-1` (number)'],
    [1.5, '`1.5` (number)'],
    [Number.NaN, '`NaN` (number)'],
    [Number.POSITIVE_INFINITY, '`Infinity` (number)'],
    ['10', '"10" (string)'],
  ])('limit %j', (limit, given) => {
    configError(bad({ limit, window: '1s' }), '`policy.limit`', 'a positive integer', given);
  });

  test('missing limit', () => {
    configError(bad({ window: '1s' }), '`policy.limit`', 'a positive integer', '`undefined`');
  });

  test.each([
    [0, 'a positive whole number of milliseconds', '`0` (number)'],
    [-5, 'a positive whole number of milliseconds', '`-5` (number)'],
    [1.5, 'a positive whole number of milliseconds', '`1.5` (number)'],
    ['1.5ms', 'a whole number and a unit with no space', '"1.5ms" (string)'],
    ['abc', 'a whole number and a unit with no space', '"abc" (string)'],
    ['10', 'a whole number and a unit with no space', '"10" (string)'],
    ['10 seconds', 'a whole number and a unit with no space', '"10 seconds" (string)'],
    ['-1s', 'a whole number and a unit with no space', '"-1s" (string)'],
    ['0s', 'a positive whole number of milliseconds', '"0s" (string)'],
    [2 ** 51 + 1, 'at most 2251799813685248 ms', '`2251799813685249` (number)'],
    ['26066336d', 'at most 2251799813685248 ms', '"26066336d" (string)'],
    [Number.NaN, 'a positive whole number of milliseconds', '`NaN` (number)'],
    [Number.POSITIVE_INFINITY, 'a positive whole number of milliseconds', '`Infinity` (number)'],
  ])('window %j', (window, expected, given) => {
    configError(bad({ limit: 10, window }), '`policy.window`', expected, given);
  });

  test('window of another type', () => {
    configError(
      bad({ limit: 10, window: true }),
      '`policy.window`',
      'milliseconds as a number',
      '`true` (boolean)',
    );
    configError(bad({ limit: 10 }), '`policy.window`', 'milliseconds as a number', '`undefined`');
  });

  test('unknown algorithm', () => {
    configError(
      bad({ algorithm: 'gcra', limit: 10, window: '1s' }),
      '`policy.algorithm`',
      "one of 'fixed-window', 'sliding-window', 'token-bucket', 'leaky-bucket'",
      '"gcra" (string)',
    );
  });

  test('unknown option name', () => {
    configError(
      bad({ limit: 10, window: '1s', max: 5 }),
      'Unknown option `max` in `policy`',
      '`name`, `algorithm`, `limit`, `window`, `burst`, `delay`, `mode`, `maxDebt`',
    );
    configError(
      bad({ limit: 10, windowMs: 1000, window: 1 }),
      'Unknown option `windowMs` in `policy`. Did you mean `window`?',
    );
  });

  test.each([
    [0, '`0` (number)'],
    [0.5, '`0.5` (number)'],
    [-3, '`-3` (number)'],
    ['5', '"5" (string)'],
  ])('burst %j on a bucket', (burst, given) => {
    for (const algorithm of ['token-bucket', 'leaky-bucket']) {
      configError(
        bad({ algorithm, limit: 10, window: '1s', burst }),
        '`policy.burst`',
        'a positive integer',
        given,
      );
    }
  });

  test.each(['fixed-window', 'sliding-window', undefined])(
    'burst on %s (a window algorithm)',
    (algorithm) => {
      const error = configError(
        bad({ algorithm, limit: 10, window: '1s', burst: 20 }),
        '`policy.burst`',
        "'token-bucket' and 'leaky-bucket'",
      );
      expect(error.message).toContain(`'${algorithm ?? 'sliding-window'}'`);
    },
  );

  test.each(['fixed-window', 'sliding-window', 'token-bucket'])('delay on %s', (algorithm) => {
    configError(
      bad({ algorithm, limit: 10, window: '1s', delay: true }),
      '`policy.delay`',
      "only applies to 'leaky-bucket'",
      `'${algorithm}'`,
    );
  });

  test('delay that is not a boolean', () => {
    configError(
      bad({ algorithm: 'leaky-bucket', limit: 10, window: '1s', delay: 'yes' }),
      '`policy.delay`',
      'a boolean',
      '"yes" (string)',
    );
  });

  test.each([
    ['report', '"report" (string)'],
    ['Shadow', '"Shadow" (string)'],
    [true, '`true` (boolean)'],
  ])('mode %j', (mode, given) => {
    const error = configError(
      bad({ limit: 10, window: '1s', mode }),
      '`policy.mode`',
      "`'enforce'` or `'shadow'`",
      given,
    );
    expect(error.message).toContain("Use 'shadow'");
  });

  test.each([
    ['', '"" (string)'],
    ['has space', '"has space" (string)'],
    ['x'.repeat(65), `"${'x'.repeat(65)}" (string)`],
    [7, '`7` (number)'],
  ])('name %j', (name, given) => {
    configError(bad({ name, limit: 10, window: '1s' }), '`policy.name`', 'a string of 1-64', given);
  });

  test.each([null, 5, 'policy', [{ limit: 1, window: 1 }]])('a policy that is %j', (input) => {
    configError(() => resolvePolicy(input as unknown as Policy), '`policy`', 'an object');
  });

  test('limit x window beyond exact integer arithmetic', () => {
    configError(bad({ limit: 2 ** 23, window: 2 ** 31 - 1 }), '`policy`', String(Number.MAX_SAFE_INTEGER));
  });
});

describe('resolvePolicySet', () => {
  test('names policies by their index in messages', () => {
    configError(
      () =>
        resolvePolicySet(
          [
            { limit: 1, window: '1s' },
            { limit: 0, window: '1s' },
          ],
          'ns',
        ),
      '`policies[1].limit`',
      'a positive integer',
      '`0` (number)',
    );
  });

  test('an empty array', () => {
    configError(() => resolvePolicySet([], 'ns'), '`policies`', 'at least one policy', 'an empty array');
  });

  test('duplicate names, given or defaulted', () => {
    configError(
      () =>
        resolvePolicySet(
          [
            { name: 'a', limit: 1, window: '1s' },
            { name: 'a', limit: 5, window: '1m' },
          ],
          'ns',
        ),
      '`policies[1]`',
      '"a" (string)',
      '`policies[0]`',
    );
    configError(
      () =>
        resolvePolicySet(
          [
            { limit: 10, window: '1s' },
            { limit: 10, window: 1000, algorithm: 'fixed-window' },
          ],
          'ns',
        ),
      '`policies[1]`',
      '"10-per-1s" (string)',
    );
  });

  test('a frozen set whose id holds the namespace and every policy id', () => {
    const set = resolvePolicySet(
      [
        { limit: 10, window: '1s' },
        { algorithm: 'token-bucket', limit: 100, window: '1h', burst: 20 },
      ],
      'api',
    );
    expect(set.namespace).toBe('api');
    expect(set.id).toBe('api|sw:10:1000,tb:100:3600000:20');
    expect(Object.isFrozen(set)).toBe(true);
    expect(Object.isFrozen(set.policies)).toBe(true);
  });
});
