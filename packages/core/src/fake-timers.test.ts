import { afterEach, expect, test, vi } from 'vitest';
import { createLimiter } from './limiter.js';
import { MemoryStore } from './memory-store.js';

afterEach(() => {
  vi.useRealTimers();
});

test('the default clock follows vi.useFakeTimers(), so apps can test their limits without waiting', async () => {
  vi.useFakeTimers();
  const store = new MemoryStore();
  const limiter = createLimiter({ policies: { algorithm: 'fixed-window', limit: 2, window: '1m' }, store });
  expect((await limiter.consume('k')).allowed).toBe(true);
  expect((await limiter.consume('k')).allowed).toBe(true);
  const denied = await limiter.consume('k');
  expect(denied).toMatchObject({ allowed: false, retryAfterMs: 60_000 });
  vi.advanceTimersByTime(59_999);
  expect((await limiter.consume('k')).retryAfterMs).toBe(1);
  vi.advanceTimersByTime(1);
  expect(await limiter.consume('k')).toMatchObject({ allowed: true, remaining: 1 });
  await store.close();
});
