// Budget on a virtual clock: a learned limit below a call's cost refuses it only until the limit
// may have changed (its reset, or a minute), then one call goes alone to learn it again.
import { describe, expect, it } from 'vitest';
import { Budget } from './budget.js';
import { CostExceedsLimitError } from './errors.js';
import type { HeaderReading } from './read-headers.js';
import { ServerClock } from './server-clock.js';
import type { FleetAnswer, FleetQuestion } from './shared.js';

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

describe('a fleet telling a legacy sliding window’s length (`shareLearned`)', () => {
  const flush = () => new Promise((resolve) => setImmediate(resolve));

  it('the window the fleet tells reaches the quota: the next question paces by it, until the fleet says it was refuted', async () => {
    let t = T0;
    const questions: FleetQuestion[] = [];
    const gate = async (question: FleetQuestion): Promise<FleetAnswer> => {
      questions.push(question);
      return {
        allowed: true,
        retryAfterMs: 0,
        giveBack: async () => {},
        held: true,
        told: [['legacy:', 'sliding']],
        windows: [['legacy:', 2000]],
        // From the third question on, another process's refusal refuted it.
        ...(questions.length >= 3 ? { refuted: [['legacy:', 2000]] as Array<[string, number]> } : {}),
      };
    };
    const budget = new Budget('http://x', undefined, new ServerClock(), () => t, 10, undefined, gate);
    const call = () => void budget.acquire({}, 0, undefined, undefined, budget.nextOrder());
    const at = async (ms: number) => {
      t = T0 + ms;
      budget.pump();
      await flush();
      await flush();
    };
    call();
    await at(0);
    budget.answer(0, legacy(20, 19, 3000), T0, T0 + 5, 200);
    call();
    await at(10);
    call();
    await at(400);
    call();
    await at(800);
    call();
    await at(1200);
    const paces = questions.map((q) => q.parts.map((p) => p.pace));
    expect(paces.slice(0, 2)).toEqual([
      [{ spacing: expect.any(Number), burst: 1 }],
      [{ spacing: 2000 / 19, burst: 1, slack: 0.1, sliding: { window: 2000, limit: 20 } }],
    ]);
    // Refuted (the third question's answer said so): paced by its own bounds again.
    expect(paces.length).toBe(4);
    expect(paces[3]?.[0]).not.toHaveProperty('sliding');
  });
});

describe('a fleet sharing a sliding window of stated length (`shareLearned`)', () => {
  /** A draft answer of a sliding window of 20 per 2 s (its reset past the window: a sliding one). */
  const sliding = (remaining: number): HeaderReading => ({
    quotas: [
      {
        key: '20;w=2',
        unit: 'requests',
        limit: 20,
        remaining,
        reset: { delta: 3000, grain: 1000 },
        windowMs: 2000,
      },
    ],
    retryAfter: undefined,
    date: undefined,
  });
  const flush = () => new Promise((resolve) => setImmediate(resolve));

  /** A Budget whose fleet gate permits every call, the store holding it (`held`) or failing open. */
  function fleetSetup(held: boolean) {
    let t = T0;
    const questions: FleetQuestion[] = [];
    const gate = async (question: FleetQuestion): Promise<FleetAnswer> => {
      questions.push(question);
      return { allowed: true, retryAfterMs: 0, giveBack: async () => {}, held };
    };
    const budget = new Budget('http://x', undefined, new ServerClock(), () => t, 10, undefined, gate);
    const call = () => {
      const state: { seq?: number } = {};
      budget.acquire({}, 0, undefined, undefined, budget.nextOrder()).then((seq) => {
        state.seq = seq;
      });
      return state;
    };
    const at = async (ms: number) => {
      t = T0 + ms;
      budget.pump();
      await flush();
      await flush();
    };
    return { budget, call, at, questions };
  }

  it('the call that taught the policy is counted with the time its answer came (it reached the server by then)', async () => {
    const { budget, call, at, questions } = fleetSetup(true);
    const first = call();
    await at(0);
    expect(first.seq).toBe(0);
    budget.answer(0, sliding(5), T0, T0 + 7, 200);
    call();
    await at(10);
    expect(questions.map((q) => [q.unregistered, q.unregisteredAt])).toEqual([[1, T0 + 7]]);
  });

  it('told `remaining: 0`, the next call waits for the store’s permit while the store holds the fleet; for its own count where it failed open', async () => {
    for (const held of [true, false]) {
      const { budget, call, at } = fleetSetup(held);
      call();
      await at(0);
      budget.answer(0, sliding(5), T0, T0 + 5, 200);
      const second = call();
      await at(10);
      expect(second.seq).toBe(1);
      budget.answer(1, sliding(0), T0 + 10, T0 + 15, 200);
      const third = call();
      let went: number | undefined;
      for (let ms = 11; ms <= 2000 && went === undefined; ms++) {
        await at(ms);
        if (third.seq !== undefined) went = ms;
      }
      // Held: at once (the store's permit paces it; its own spacing counts from when the last call
      // was due, at most LAG_MS back). Failed open: its own count leaves no room for 2 s.
      expect({ held, went }).toEqual({ held, went: held ? 11 : undefined });
    }
  });
});

describe('a fleet counting a window of unstated length (`shareLearned`)', () => {
  /** A legacy answer of 20 per window whose reset is an epoch second (it names the window). */
  const epoch = (remaining: number, reset: number): HeaderReading => ({
    quotas: [
      {
        key: 'legacy:',
        unit: 'requests',
        limit: 20,
        remaining,
        reset: { server: reset, grain: 1000 },
        windowMs: undefined,
      },
    ],
    retryAfter: undefined,
    date: undefined,
  });
  const flush = () => new Promise((resolve) => setImmediate(resolve));
  const R = Math.ceil((T0 + 2000) / 1000) * 1000;

  function fleetSetup(refuse: (question: FleetQuestion) => number | undefined = () => undefined) {
    let t = T0;
    const questions: Array<{ at: number; question: FleetQuestion }> = [];
    const gate = async (question: FleetQuestion): Promise<FleetAnswer> => {
      questions.push({ at: t - T0, question });
      const wait = question.countOnly === true ? 0 : refuse(question);
      return { allowed: wait === undefined, retryAfterMs: wait ?? 0, giveBack: async () => {}, held: true };
    };
    const budget = new Budget('http://x', undefined, new ServerClock(), () => t, 10, undefined, gate);
    const sent: number[] = [];
    const call = () =>
      void budget.acquire({}, 0, undefined, undefined, budget.nextOrder()).then((seq) => sent.push(seq));
    const at = async (ms: number) => {
      t = T0 + ms;
      budget.pump();
      await flush();
      await flush();
    };
    const windows = () =>
      questions.map(({ question }) => [
        question.countOnly === true,
        question.parts[0]?.window?.id,
        question.parts[0]?.window?.uncounted,
      ]);
    return { budget, call, at, questions, sent, windows };
  }

  it('a call its permit did not count in the window its answer names is counted there at once (a question that asks for no permit)', async () => {
    const { budget, call, at, sent, windows } = fleetSetup();
    // The first call goes before anything is known (no permit), and its answer names window R.
    call();
    await at(0);
    budget.answer(sent[0]!, epoch(19, R), T0, T0 + 5, 200);
    await at(5);
    expect(windows()).toEqual([[true, R, 1]]);
    // The next is asked in R (its permit counts it there), and answered in R: nothing more to count.
    call();
    await at(10);
    budget.answer(sent[1]!, epoch(18, R), T0 + 10, T0 + 15, 200);
    await at(15);
    expect(windows()).toEqual([
      [true, R, 1],
      [false, R, undefined],
    ]);
    // Asked in R, answered in the next window (sent at R's end): counted in that one.
    call();
    await at(1200);
    budget.answer(sent[2]!, epoch(19, R + 2000), T0 + 1200, T0 + 1205, 200);
    await at(1205);
    expect(windows().slice(2)).toEqual([
      [false, R, undefined],
      [true, R + 2000, 1],
    ]);
  });

  it('an answer that names a new window: the fleet’s refusal for the last one no longer holds, the next call is asked at once', async () => {
    // The fleet counts window R full from the second question for a permit on, a wait to its
    // latest end.
    const { budget, call, at, questions, sent } = fleetSetup((q) =>
      questions.filter((x) => x.question.countOnly !== true).length >= 2 && q.parts[0]?.window?.id === R
        ? 5000
        : undefined,
    );
    call();
    await at(0);
    budget.answer(sent[0]!, epoch(19, R), T0, T0 + 5, 200);
    call();
    await at(10);
    call();
    await at(20);
    // The third was refused (R full) for 5 s; the second, in flight, is answered in the next window.
    expect(sent.length).toBe(2);
    budget.answer(sent[1]!, epoch(19, R + 2000), T0 + 10, T0 + 1200, 200);
    await at(1200);
    expect(sent.length).toBe(3);
    expect(questions.at(-1)?.question.parts[0]?.window?.id).toBe(R + 2000);
  });
});
