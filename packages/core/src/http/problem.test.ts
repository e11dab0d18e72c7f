import { describe, expect, it } from 'vitest';
import { openDecision, toDecision } from '../decision.js';
import { resolvePolicySet } from '../policy.js';
import { encodeBody, QUOTA_EXCEEDED_TYPE, quotaExceededProblem, storeUnavailableProblem } from './problem.js';

const set = resolvePolicySet(
  [
    { name: 'burst', limit: 10, window: '1s' },
    { name: 'hourly', limit: 1000, window: '1h' },
  ],
  'test',
);

describe('quotaExceededProblem', () => {
  it('is an RFC 9457 quota-exceeded problem with the binding numbers', () => {
    const decision = toDecision('k', set, [
      { allowed: false, remaining: 0, resetMs: 2500, retryAfterMs: 1200, delayMs: 0 },
      { allowed: true, remaining: 500, resetMs: 3_600_000, retryAfterMs: 0, delayMs: 0 },
    ]);
    expect(quotaExceededProblem(decision)).toEqual({
      type: QUOTA_EXCEEDED_TYPE,
      title: 'Request cannot be satisfied as assigned quota has been exceeded',
      status: 429,
      detail: "Rate limit exceeded (policy 'burst'). Retry after 2 seconds.",
      'violated-policies': ['burst'],
      retryAfter: 2,
      limit: 10,
      remaining: 0,
      reset: 3,
    });
  });

  it('names every violated policy and takes the configured status', () => {
    const decision = toDecision('k', set, [
      { allowed: false, remaining: 0, resetMs: 900, retryAfterMs: 100, delayMs: 0 },
      { allowed: false, remaining: 0, resetMs: 60_000, retryAfterMs: 60_000, delayMs: 0 },
    ]);
    const problem = quotaExceededProblem(decision, 403);
    expect(problem['violated-policies']).toEqual(['burst', 'hourly']);
    expect(problem.status).toBe(403);
    expect(problem.retryAfter).toBe(60);
    expect(problem.detail).toBe("Rate limit exceeded (policy 'burst', 'hourly'). Retry after 60 seconds.");
  });

  it('names no shadow policy among the violated ones, though it would have denied too', () => {
    const withShadow = resolvePolicySet(
      [
        { name: 'burst', limit: 10, window: '1s' },
        { name: 'trial', limit: 5, window: '1m', mode: 'shadow' },
      ],
      'test',
    );
    const decision = toDecision('k', withShadow, [
      { allowed: false, remaining: 0, resetMs: 900, retryAfterMs: 100, delayMs: 0 },
      { allowed: false, remaining: 0, resetMs: 60_000, retryAfterMs: 60_000, delayMs: 0 },
    ]);
    const problem = quotaExceededProblem(decision);
    expect(problem['violated-policies']).toEqual(['burst']);
    expect(problem.retryAfter).toBe(1);
    expect(decision.shadowLimited).toEqual(['trial']);
  });

  it('has no retryAfter when the cost can never fit', () => {
    const decision = toDecision('k', set, [
      { allowed: false, remaining: 10, resetMs: 0, retryAfterMs: Number.POSITIVE_INFINITY, delayMs: 0 },
      { allowed: true, remaining: 1000, resetMs: 0, retryAfterMs: 0, delayMs: 0 },
    ]);
    const problem = quotaExceededProblem(decision);
    expect('retryAfter' in problem).toBe(false);
    expect(problem.detail).toBe(
      "This request costs more than policy 'burst' allows at once (10); it can never succeed.",
    );
    expect(JSON.parse(JSON.stringify(problem))).toEqual(problem);
  });
});

describe('storeUnavailableProblem', () => {
  it('is a 503 problem with the retry time', () => {
    const decision = { ...openDecision('k', set, 'store-error'), allowed: false, retryAfterMs: 1000 };
    expect(storeUnavailableProblem(decision)).toEqual({
      type: 'about:blank',
      title: 'Service Unavailable',
      status: 503,
      detail: 'The rate limiter cannot reach its store, so requests are refused until it recovers.',
      retryAfter: 1,
    });
  });
});

describe('encodeBody', () => {
  it('sends strings as text, bytes as they are (as a Buffer) and the rest as JSON', () => {
    expect(encodeBody('slow down')).toEqual({ body: 'slow down', contentType: 'text/plain; charset=utf-8' });
    const bytes = encodeBody(new Uint8Array([1, 2, 3]));
    expect(Buffer.isBuffer(bytes.body)).toBe(true);
    expect([...(bytes.body as Buffer)]).toEqual([1, 2, 3]);
    expect(bytes.contentType).toBe('application/octet-stream');
    expect(encodeBody({ error: 'x' })).toEqual({
      body: '{"error":"x"}',
      contentType: 'application/json; charset=utf-8',
    });
    expect(encodeBody({ type: 'about:blank' }, true).contentType).toBe('application/problem+json');
    expect(encodeBody(null).body).toBe('null');
  });
});
