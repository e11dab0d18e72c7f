// Budget on a virtual clock: a learned limit below a call's cost refuses it only until the limit
// may have changed (its reset, or a minute), then one call goes alone to learn it again.
import { describe, expect, it } from 'vitest';
import { Budget } from './budget.js';
import { CostExceedsLimitError } from './errors.js';
import type { HeaderReading } from './read-headers.js';
import { ServerClock } from './server-clock.js';

const T0 = 1_700_000_000_000;

const legacy = (limit: number, remaining: number, resetMs?: number): HeaderReading => ({
  quotas: [
    {
      key: 'legacy:',
      unit: 'requests',
      limit,
      remaining,
      reset: resetMs === undefined ? undefined : { delta: resetMs, grain: 1000 },
      windowMs: undefined,
    },
  ],
  retryAfter: undefined,
  date: undefined,
});

function setup() {
  let t = T0;
  const budget = new Budget('http://x', undefined, new ServerClock(), () => t, 10, undefined);
  const call = () =>
    budget.acquire({}, 0, undefined, undefined, budget.nextOrder()).then(
      (seq) => seq,
      (error: unknown) => error,
    );
  const at = (ms: number) => {
    t = T0 + ms;
  };
  return { budget, call, at };
}

describe('a learned limit below the cost', () => {
  it('X-RateLimit-Limit: 0 with a reset in 1 s: refused until the reset, then one probe learns 100', async () => {
    const { budget, call, at } = setup();
    const first = await call();
    budget.answer(first as number, legacy(0, 0, 1000), T0, T0, 200);
    at(500);
    expect(await call()).toBeInstanceOf(CostExceedsLimitError);
    at(1000);
    const probe = await call();
    expect(probe).toBe(1);
    // The probe goes alone: the next waits for its answer.
    const next = call();
    expect([budget.snapshot(T0 + 1000).queued, budget.snapshot(T0 + 1000).inFlight]).toEqual([1, 1]);
    budget.answer(probe as number, legacy(100, 99, 1000), T0 + 1000, T0 + 1000, 200);
    // 99 left for 1 s: paced 1000 / 99 ms apart.
    at(1100);
    budget.pump();
    expect(await next).toBe(2);
    expect(budget.snapshot(T0 + 1000).quotas.map((q) => q.limit)).toEqual([100]);
  });

  it('a limit of 0 with no reset: refused for a minute, then probed', async () => {
    const { budget, call, at } = setup();
    budget.answer((await call()) as number, legacy(0, 0), T0, T0, 200);
    at(59_999);
    expect(await call()).toBeInstanceOf(CostExceedsLimitError);
    at(60_000);
    const probe = await call();
    expect(probe).toBe(1);
    // Still 0: refused again for the next minute.
    budget.answer(probe as number, legacy(0, 0), T0 + 60_000, T0 + 60_000, 200);
    at(60_001);
    expect(await call()).toBeInstanceOf(CostExceedsLimitError);
  });
});
