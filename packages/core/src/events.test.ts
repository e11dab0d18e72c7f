import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterEach, describe, expect, test } from 'vitest';
import { StoreError } from './errors.js';
import {
  channels,
  DECISION_CHANNEL,
  type DecisionMessage,
  decisionResult,
  STORE_CALL_CHANNEL,
  STORE_ERROR_CHANNEL,
  STORE_RECOVERED_CHANNEL,
  type StoreCallMessage,
  type StoreErrorMessage,
} from './events.js';
import { createLimiter } from './limiter.js';
import { MemoryStore } from './memory-store.js';
import type { Decision } from './types.js';

const quiet = { warn: () => undefined, error: () => undefined };

/** Subscribes to `name` until the test ends; returns what arrives. */
function listen<T>(name: string): T[] {
  const seen: T[] = [];
  const listener = (message: unknown) => seen.push(message as T);
  subscribe(name, listener);
  active.push(() => unsubscribe(name, listener));
  return seen;
}
const active: (() => void)[] = [];
afterEach(() => {
  for (const stop of active.splice(0)) stop();
});

/** A virtual clock for the MemoryStore: the decisions below do not depend on the machine. */
function clockAt(start: number) {
  const clock = { now: start, read: () => clock.now };
  return clock;
}

describe('tollgate:decision', () => {
  test('one message per decision, with the limiter, key, decision, result and cost', async () => {
    const decisions = listen<DecisionMessage>(DECISION_CHANNEL);
    const clock = clockAt(1_000_000);
    const limiter = createLimiter({
      name: 'api',
      store: new MemoryStore({ clock: clock.read }),
      policies: { name: 'burst', limit: 3, window: '1s', algorithm: 'fixed-window' },
    });
    const first = await limiter.consume('ip:1.2.3.4', { cost: 2 });
    const second = limiter.decide('ip:1.2.3.4') as Decision;
    const third = await limiter.consume('ip:1.2.3.4');
    await limiter.peek('ip:1.2.3.4');

    expect(decisions).toEqual([
      { limiter: 'api', key: 'ip:1.2.3.4', decision: first, result: 'allowed', cost: 2 },
      { limiter: 'api', key: 'ip:1.2.3.4', decision: second, result: 'allowed', cost: 1 },
      { limiter: 'api', key: 'ip:1.2.3.4', decision: third, result: 'limited', cost: 1 },
    ]);
    // The very objects the caller got, not copies.
    expect(decisions[2]!.decision).toBe(third);
    expect([first.remaining, second.remaining, third.allowed]).toEqual([1, 0, false]);
  });

  test('nothing is built while nobody listens', async () => {
    expect(channels.decision.hasSubscribers).toBe(false);
    const limiter = createLimiter({ policies: { limit: 1, window: '1s' } });
    await limiter.consume('k');
    const decisions = listen<DecisionMessage>(DECISION_CHANNEL);
    await limiter.consume('k');
    expect(decisions.map((m) => m.result)).toEqual(['limited']);
  });

  test('store_error and fallback: a closed MemoryStore fails every call, with and without a fallback', async () => {
    const decisions = listen<DecisionMessage>(DECISION_CHANNEL);
    const errors = listen<StoreErrorMessage>(STORE_ERROR_CHANNEL);
    const broken = new MemoryStore();
    await broken.close();
    const open = createLimiter({
      name: 'open',
      store: broken,
      policies: { limit: 5, window: '1m' },
      logger: quiet,
    });
    const backed = createLimiter({
      name: 'backed',
      store: broken,
      fallback: new MemoryStore(),
      policies: { limit: 1, window: '1m' },
      logger: quiet,
    });
    await open.consume('a');
    await backed.consume('a');
    await backed.consume('a');

    expect(decisions.map((m) => [m.limiter, m.result, m.decision.allowed, m.decision.reason])).toEqual([
      ['open', 'store_error', true, 'store-error'],
      ['backed', 'fallback', true, 'fallback'],
      // The fallback's own denial is still a fallback decision: the primary did not decide it.
      ['backed', 'fallback', false, 'fallback'],
    ]);
    // The first call of each limiter failed; the second of `backed` skipped the store (probe interval).
    expect(errors).toEqual([
      { limiter: 'open', error: expect.any(StoreError), scope: 'store' },
      { limiter: 'backed', error: expect.any(StoreError), scope: 'store' },
    ]);
    expect(errors[0]!.error.message).toMatch(/closed/);
  });

  test('decisionResult: banned and shadow_limited as the other capabilities set them', () => {
    const base = { allowed: true, remaining: 1 } as Decision;
    expect(decisionResult(base)).toBe('allowed');
    expect(decisionResult({ ...base, allowed: false })).toBe('limited');
    expect(decisionResult({ ...base, allowed: false, reason: 'blocked-cache' })).toBe('limited');
    expect(decisionResult({ ...base, allowed: false, reason: 'store-error' })).toBe('store_error');
    expect(decisionResult({ ...base, allowed: false, reason: 'banned' } as unknown as Decision)).toBe(
      'banned',
    );
    expect(decisionResult({ ...base, shadowLimited: ['hourly'] } as unknown as Decision)).toBe(
      'shadow_limited',
    );
    expect(decisionResult({ ...base, shadowLimited: [] } as unknown as Decision)).toBe('allowed');
    // A denial by an enforced policy is `limited` even when a shadow policy would have denied too.
    expect(decisionResult({ ...base, allowed: false, shadowLimited: ['h'] } as unknown as Decision)).toBe(
      'limited',
    );
  });
});

describe('tollgate:store-call', () => {
  test('every call to the store, timed, with its operation and whether it worked', async () => {
    const calls = listen<StoreCallMessage>(STORE_CALL_CHANNEL);
    const limiter = createLimiter({ name: 'timed', policies: { limit: 2, window: '1m' } });
    await limiter.consume('k');
    await limiter.peek('k');
    await limiter.refund('k');
    await limiter.reset('k');
    expect(calls.map(({ durationMs, ...rest }) => rest)).toEqual([
      { limiter: 'timed', operation: 'consume', ok: true },
      { limiter: 'timed', operation: 'peek', ok: true },
      { limiter: 'timed', operation: 'refund', ok: true },
      { limiter: 'timed', operation: 'reset', ok: true },
    ]);
    for (const { durationMs } of calls) expect(durationMs).toBeGreaterThanOrEqual(0);
  });

  test('a failed call is ok: false, and a failing refund still rejects', async () => {
    const calls = listen<StoreCallMessage>(STORE_CALL_CHANNEL);
    const broken = new MemoryStore();
    await broken.close();
    const limiter = createLimiter({
      name: 'broken',
      store: broken,
      policies: { limit: 2, window: '1m' },
      logger: quiet,
    });
    await limiter.consume('k');
    await expect(limiter.refund('k')).rejects.toThrow(StoreError);
    expect(calls.map((m) => [m.operation, m.ok])).toEqual([
      ['consume', false],
      ['refund', false],
    ]);
  });
});

test('store-recovered is not published by a store that never failed', async () => {
  const recovered = listen(STORE_RECOVERED_CHANNEL);
  const limiter = createLimiter({ policies: { limit: 2, window: '1m' } });
  await limiter.consume('k');
  expect(recovered).toEqual([]);
});
