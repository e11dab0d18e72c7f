import { readFileSync } from 'node:fs';
import { describe, expect, expectTypeOf, test } from 'vitest';
import { formatDuration, MAX_TIMER_MS, MAX_WINDOW_MS, parseDuration } from './duration.js';
import { ConfigError } from './errors.js';
import { createLimiter } from './limiter.js';
import type { Duration, DurationString, Logger, Policy } from './types.js';
import { WARNINGS } from './warnings.js';

function rejection(value: unknown, option = 'policies[0].window'): string {
  try {
    parseDuration(value, option);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error(`${JSON.stringify(value)} was accepted`);
}

describe('the duration grammar: a whole number and a unit, nothing else', () => {
  test.each([
    ['1ms', 1],
    ['500ms', 500],
    ['10s', 10_000],
    ['90s', 90_000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['24d', 24 * 86_400_000],
    [`${MAX_TIMER_MS}ms`, MAX_TIMER_MS],
    [1, 1],
    [60_000, 60_000],
  ] as const)('%j is %d ms', (input, ms) => {
    expect(parseDuration(input, 'window')).toBe(ms);
  });

  test.each([
    [' 1h', '1h'],
    ['1h ', '1h'],
    ['2 m', '2m'],
    ['1 minute', '1m'],
    ['90 seconds', '90s'],
    ['2 Hours', '2h'],
    ['10S', '10s'],
    ['1.5s', '1500ms'],
    ['0.1s', '100ms'],
    ['1.5h', '90m'],
    ['1.0s', '1s'],
    ['01s', '1s'],
  ])('%j is refused, naming the option, the value, the accepted forms and the likely fix', (input, meant) => {
    expect(rejection(input)).toBe(
      `Expected \`policies[0].window\` to be milliseconds as a number or a string of a whole number and a unit with no space: \`'500ms'\`, \`'10s'\`, \`'1m'\`, \`'1h'\` or \`'1d'\`, got ${JSON.stringify(input)} (string). Did you mean '${meant}'?`,
    );
  });

  test('a bare number in a string is told it needs a unit', () => {
    expect(rejection('60')).toContain(
      `got "60" (string). A string needs a unit: '60s', '60m' or '60ms'; the number 60 means 60 ms.`,
    );
  });

  test.each([
    '',
    '1e3s',
    '0x10s',
    '1_000s',
    '-1s',
    '+1s',
    '1 fortnight',
    '1.0001s',
    '0.5ms',
    'constructor',
    '1 constructor',
    '1w',
    '1y',
  ])('%j is refused without a guess', (input) => {
    const message = rejection(input);
    expect(message).toContain(`got ${JSON.stringify(input)} (string).`);
    expect(message).not.toContain('Did you mean');
  });

  test('zero and too long are refused by value', () => {
    expect(rejection('0s')).toContain('to be a positive whole number of milliseconds, got "0s"');
    // By default the longest timer; a policy's window asks for more.
    expect(rejection('25d')).toContain(
      'to be at most 2147483647 ms (about 24.8 days, the longest timer), got "25d"',
    );
    expect(parseDuration('25d', 'window', MAX_WINDOW_MS)).toBe(25 * 86_400_000);
    expect(parseDuration(MAX_WINDOW_MS, 'window', MAX_WINDOW_MS)).toBe(2 ** 51);
    expect(() => parseDuration(MAX_WINDOW_MS + 1, 'window', MAX_WINDOW_MS)).toThrow(
      'Expected `window` to be at most 2251799813685248 ms, got `2251799813685249` (number).',
    );
    expect(rejection(1.5)).toContain('a positive whole number of milliseconds, got `1.5` (number)');
  });

  test('other types are refused with the accepted forms', () => {
    expect(rejection(null, 'RATE_WINDOW')).toBe(
      "Expected `RATE_WINDOW` to be milliseconds as a number or a string of a whole number and a unit with no space: `'500ms'`, `'10s'`, `'1m'`, `'1h'` or `'1d'`, got `null`.",
    );
  });

  test('what formatDuration writes, parseDuration reads back', () => {
    for (const ms of [1, 999, 1000, 1500, 60_000, 90_000, 3_600_000, 5_400_000, 86_400_000, MAX_WINDOW_MS]) {
      expect(parseDuration(formatDuration(ms), 'window', MAX_WINDOW_MS)).toBe(ms);
    }
  });
});

describe('the DurationString type catches what the parser refuses', () => {
  test('at compile time (checked by `pnpm typecheck`)', () => {
    expectTypeOf<'500ms'>().toExtend<DurationString>();
    expectTypeOf<'10s'>().toExtend<Duration>();
    expectTypeOf<'1m' | '1h' | '1d'>().toExtend<Duration>();
    expectTypeOf<60_000>().toExtend<Duration>();
    expectTypeOf<'1 minute'>().not.toExtend<Duration>();
    expectTypeOf<'2 m'>().not.toExtend<Duration>();
    expectTypeOf<' 1h'>().not.toExtend<Duration>();
    expectTypeOf<'1.5s'>().not.toExtend<Duration>();
    expectTypeOf<'1e3s'>().not.toExtend<Duration>();
    expectTypeOf<'10'>().not.toExtend<Duration>();
    expectTypeOf<string>().not.toExtend<Duration>();

    const policies: Policy[] = [
      { limit: 10, window: '10s' },
      // @ts-expect-error `'1 minute'` is not a duration; `'1m'` is.
      { limit: 10, window: '1 minute' },
    ];
    expect(() => createLimiter({ policies })).toThrow('got "1 minute" (string). Did you mean \'1m\'?');
  });
});

describe(`${WARNINGS.NUMERIC_WINDOW}: a numeric window under 1000 ms`, () => {
  function recorder() {
    const warnings: string[] = [];
    const logger: Logger = { warn: (message: string) => void warnings.push(message), error: () => {} };
    return { warnings, logger };
  }

  test('warns once per limiter, naming the policy and the likely meaning', async () => {
    const { warnings, logger } = recorder();
    const limiter = createLimiter({
      policies: [
        { name: 'a', limit: 10, window: 60 },
        { name: 'b', limit: 10, window: 5 },
      ],
      logger,
    });
    await limiter.consume('k');
    expect(warnings).toEqual([
      "[TOLLGATE_NUMERIC_WINDOW] `policies[0].window` is 60, a number, so 60 ms. Did you mean '60s'? Write '60s', or '60ms' if milliseconds are meant.",
    ]);
  });

  test('warns for tier policies passed per call too, once', async () => {
    const { warnings, logger } = recorder();
    const limiter = createLimiter({ policies: { limit: 10, window: '1m' }, logger });
    const tier = { limit: 5, window: 30 };
    await limiter.consume('k', { policies: tier });
    await limiter.consume('k', { policies: { limit: 5, window: 10 } });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("`policies.window` is 30, a number, so 30 ms. Did you mean '30s'?");
  });

  test.each([
    ['1000 ms as a number', 1000],
    ['a string under a second', '999ms'],
    ['seconds', '60s'],
  ])('stays quiet for %s', (_, window) => {
    const { warnings, logger } = recorder();
    createLimiter({ policies: { limit: 10, window: window as Duration }, logger });
    expect(warnings).toEqual([]);
  });
});

describe("the READMEs' own policies", () => {
  test('each is valid and raises no warning', () => {
    const readmes = [
      '../../../README.md',
      ...['core', 'express', 'koa', 'redis'].map((p) => `../../${p}/README.md`),
    ];
    const code = readmes
      .map((path) => readFileSync(new URL(path, import.meta.url), 'utf8'))
      .flatMap((readme) => [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((block) => block[1]))
      .join('\n');
    const literals = [...code.matchAll(/\{[^{}]*\bwindow:[^{}]*\}/g)].map((match) => match[0]);
    expect(literals.length).toBeGreaterThanOrEqual(10);
    for (const literal of literals) {
      const policy = new Function(`return (${literal});`)() as Policy;
      const warnings: string[] = [];
      createLimiter({ policies: policy, logger: { warn: (m: string) => void warnings.push(m), error() {} } });
      expect({ literal, warnings }).toEqual({ literal, warnings: [] });
    }
  });
});
