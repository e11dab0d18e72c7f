import { describe, expect, it } from 'vitest';
import { parseGoDuration, readLegacyReset, readRetryAfter } from './header-values.js';
import { readHeaders } from './read-headers.js';

const read = (fields: Record<string, string>) => readHeaders(new Headers(fields));

describe('readHeaders', () => {
  it('draft-6: RateLimit-Limit/Remaining/Reset, named by the policy with that quota', () => {
    expect(
      read({
        'RateLimit-Limit': '10',
        'RateLimit-Remaining': '9',
        'RateLimit-Reset': '2',
        'RateLimit-Policy': '10;w=1, 1000;w=3600',
      }).quotas,
    ).toEqual([
      {
        key: 'policy:10;w=1',
        unit: 'requests',
        limit: 10,
        remaining: 9,
        reset: { delta: 2000, grain: 1000 },
        windowMs: 1000,
      },
    ]);
  });

  it('draft-7: the RateLimit dictionary', () => {
    expect(
      read({ RateLimit: 'limit=10, remaining=0, reset=5', 'RateLimit-Policy': '10;w=60' }).quotas,
    ).toEqual([
      {
        key: 'policy:10;w=60',
        unit: 'requests',
        limit: 10,
        remaining: 0,
        reset: { delta: 5000, grain: 1000 },
        windowMs: 60_000,
      },
    ]);
  });

  it('draft-8: one quota per named policy; content-bytes policies are left out', () => {
    expect(
      read({
        'RateLimit-Policy': '"burst";q=10;w=1, "daily";q=1000;w=86400, "bytes";q=1000;w=1;qu="content-bytes"',
        RateLimit: '"burst";r=9;t=1, "daily";r=999;t=86400, "bytes";r=5;t=1',
      }).quotas,
    ).toEqual([
      {
        key: 'policy:burst',
        unit: 'requests',
        limit: 10,
        remaining: 9,
        reset: { delta: 1000, grain: 1000 },
        windowMs: 1000,
      },
      {
        key: 'policy:daily',
        unit: 'requests',
        limit: 1000,
        remaining: 999,
        reset: { delta: 86_400_000, grain: 1000 },
        windowMs: 86_400_000,
      },
    ]);
  });

  it('a malformed structured field is ignored, not half read', () => {
    expect(read({ RateLimit: 'limit=10, remaining=', 'RateLimit-Remaining': 'x' }).quotas).toEqual([]);
  });

  it('X-RateLimit-*: epoch-second resets on the server clock', () => {
    expect(
      read({ 'X-RateLimit-Limit': '60', 'X-RateLimit-Remaining': '59', 'X-RateLimit-Reset': '1700000060' })
        .quotas,
    ).toEqual([
      {
        key: 'legacy:',
        unit: 'requests',
        limit: 60,
        remaining: 59,
        reset: { server: 1_700_000_060_000, grain: 1000 },
        windowMs: undefined,
      },
    ]);
  });

  it('OpenAI-style request and token quotas', () => {
    expect(
      read({
        'x-ratelimit-limit-requests': '500',
        'x-ratelimit-remaining-requests': '499',
        'x-ratelimit-reset-requests': '120ms',
        'x-ratelimit-limit-tokens': '30000',
        'x-ratelimit-remaining-tokens': '29000',
        'x-ratelimit-reset-tokens': '2s',
      }).quotas,
    ).toEqual([
      {
        key: 'openai:requests',
        unit: 'requests',
        limit: 500,
        remaining: 499,
        reset: { delta: 120, grain: 1 },
        windowMs: undefined,
      },
      {
        key: 'openai:tokens',
        unit: 'tokens',
        limit: 30_000,
        remaining: 29_000,
        reset: { delta: 2000, grain: 1 },
        windowMs: undefined,
      },
    ]);
  });

  it('Anthropic-style quotas with RFC 3339 resets', () => {
    expect(
      read({
        'anthropic-ratelimit-requests-limit': '50',
        'anthropic-ratelimit-requests-remaining': '49',
        'anthropic-ratelimit-requests-reset': '2030-01-01T00:00:01Z',
        'anthropic-ratelimit-input-tokens-limit': '40000',
        'anthropic-ratelimit-input-tokens-remaining': '39000',
        'anthropic-ratelimit-input-tokens-reset': '2030-01-01T00:00:00.500Z',
      }).quotas,
    ).toEqual([
      {
        key: 'anthropic:requests',
        unit: 'requests',
        limit: 50,
        remaining: 49,
        reset: { server: Date.UTC(2030, 0, 1, 0, 0, 1), grain: 1000 },
        windowMs: undefined,
      },
      {
        key: 'anthropic:input-tokens',
        unit: 'input-tokens',
        limit: 40_000,
        remaining: 39_000,
        reset: { server: Date.UTC(2030, 0, 1, 0, 0, 0, 500), grain: 1 },
        windowMs: undefined,
      },
    ]);
  });

  it('Date is read', () => {
    expect(read({ Date: 'Tue, 01 Jan 2030 00:00:30 GMT' }).date).toBe(Date.UTC(2030, 0, 1, 0, 0, 30));
  });
});

describe('header values', () => {
  it('Retry-After: delta seconds or an HTTP-date; anything else is ignored', () => {
    expect(readRetryAfter('120')).toEqual({ delta: 120_000, grain: 0 });
    expect(readRetryAfter('Tue, 01 Jan 2030 00:00:02 GMT')).toEqual({
      server: Date.UTC(2030, 0, 1, 0, 0, 2),
      grain: 0,
    });
    expect(readRetryAfter('-1')).toBeUndefined();
    expect(readRetryAfter('soon')).toBeUndefined();
    expect(readRetryAfter('1.5')).toBeUndefined();
  });

  it('X-RateLimit-Reset: epoch seconds, epoch milliseconds or delta seconds, told apart by size', () => {
    expect(readLegacyReset('1700000060')).toEqual({ server: 1_700_000_060_000, grain: 1000 });
    expect(readLegacyReset('1700000060123')).toEqual({ server: 1_700_000_060_123, grain: 1 });
    expect(readLegacyReset('30')).toEqual({ delta: 30_000, grain: 1000 });
    expect(readLegacyReset('1.5')).toEqual({ delta: 1500, grain: 1 });
    expect(readLegacyReset('x')).toBeUndefined();
  });

  it('Go-style durations as OpenAI sends them', () => {
    expect(parseGoDuration('6m0s')).toBe(360_000);
    expect(parseGoDuration('20ms')).toBe(20);
    expect(parseGoDuration('1s')).toBe(1000);
    expect(parseGoDuration('1h2m3.5s')).toBe(3_723_500);
    expect(parseGoDuration('0.5s')).toBe(500);
    expect(parseGoDuration('')).toBeUndefined();
    expect(parseGoDuration('5')).toBeUndefined();
    expect(parseGoDuration('m')).toBeUndefined();
  });
});
