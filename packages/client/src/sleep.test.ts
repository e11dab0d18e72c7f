// Waits longer than setTimeout holds (2^31 - 1 ms): Node, and the fake timers here, clamp such a
// delay to 1 ms; the client waits them out in chunks instead, one timer at a time.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Budget } from './budget.js';
import { ServerClock } from './server-clock.js';
import { MAX_TIMEOUT_MS, sleep } from './sleep.js';

beforeEach(() => {
  vi.useFakeTimers({ now: 1_700_000_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

const DAY = 86_400_000;

describe('waits beyond 2^31 - 1 ms', () => {
  it('sleep(30 days) resolves after 30 days, not before, with one timer at a time', async () => {
    let done = false;
    void sleep(30 * DAY, undefined).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(1000);
    expect(done).toBe(false);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(MAX_TIMEOUT_MS);
    expect(done).toBe(false);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(30 * DAY - MAX_TIMEOUT_MS - 1001);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an abort clears the chunked wait', async () => {
    const ac = new AbortController();
    const slept = sleep(9e15, ac.signal).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(10);
    ac.abort(new Error('stop'));
    expect(((await slept) as Error).message).toBe('stop');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a quota spent out until a reset 30 days away: the queued call wakes no pump before then', async () => {
    const now = () => Date.now();
    const budget = new Budget('http://x', undefined, new ServerClock(), now, 10, undefined);
    const seq = await budget.acquire({}, 0, undefined, undefined, budget.nextOrder());
    const t = now();
    budget.answer(
      seq,
      {
        quotas: [
          {
            key: 'legacy:',
            unit: 'requests',
            limit: 1000,
            remaining: 0,
            reset: { delta: 30 * DAY, grain: 1000 },
            windowMs: undefined,
          },
        ],
        retryAfter: undefined,
        date: undefined,
      },
      t,
      t,
      200,
    );
    const pump = vi.spyOn(budget, 'pump');
    let sent = false;
    void budget.acquire({}, 0, undefined, undefined, budget.nextOrder()).then(() => {
      sent = true;
    });
    expect(pump).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(10_000);
    // Clamped to 1 ms, the timer would have woken the pump 10 000 times by now.
    expect(pump).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(30 * DAY - 10_000 - 1);
    expect(sent).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(sent).toBe(true);
    expect(pump).toHaveBeenCalledTimes(2);
  });
});
