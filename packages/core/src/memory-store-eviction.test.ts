/**
 * Which key a full MemoryStore evicts, and what choosing it costs (issue 9: when every tracked key
 * was denied, each new key walked all of them, 15.5 ms per key at maxKeys 100 000).
 *
 * The cost is counted, not timed: every run of an algorithm's kernel by the store is one look at one
 * key's state, so counting kernel runs counts the keys examined.
 */
import fc from 'fast-check';
import { describe, expect, test, vi } from 'vitest';
import { STEPS } from './algorithms/index.js';
import type { Kernel, State } from './algorithms/types.js';
import { evaluate, peekOutcomes, refundStates } from './evaluate.js';
import { createLimiter } from './limiter.js';
import { MemoryStore } from './memory-store.js';
import type { Policy, PolicySet } from './types.js';

const kernelRuns = vi.hoisted(() => ({ count: 0 }));

// The algorithm definitions are frozen: the store is given copies whose kernels count their runs.
// (The pure `step` functions, which the model below uses, keep the uncounted kernels.)
vi.mock('./algorithms/index.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('./algorithms/index.js')>();
  const counted = (run: Kernel): Kernel =>
    function counted(...args) {
      kernelRuns.count++;
      return run(...args);
    };
  const steps = Object.fromEntries(
    Object.entries(original.STEPS).map(([name, step]) => [name, { ...step, run: counted(step.run) }]),
  );
  return { ...original, STEPS: steps };
});

function rig(policies: Policy | Policy[], maxKeys: number) {
  const time = { t: 0 };
  const store = new MemoryStore({ clock: () => time.t, maxKeys });
  const limiter = createLimiter({ policies, store });
  const hit = (key: string) => limiter.consume(key);
  const allowed = async (key: string) => (await limiter.peek(key)).allowed;
  return { time, store, limiter, hit, allowed };
}

const once: Policy = { algorithm: 'fixed-window', limit: 1, window: '10m' };

describe('keys examined per eviction', () => {
  test.each([1_000, 10_000])(
    'every key denied, maxKeys %i: each new key costs its own request and one look at one key',
    async (maxKeys) => {
      const s = rig(once, maxKeys);
      for (let i = 0; i < maxKeys; i++) {
        s.time.t = i;
        await s.hit(`fill-${i}`);
      }
      // The first eviction looks at every key once and sets each aside (they are all denied).
      s.time.t = maxKeys;
      await s.hit('new-0');
      kernelRuns.count = 0;
      for (let i = 1; i <= 500; i++) {
        s.time.t = maxKeys + i;
        expect((await s.hit(`new-${i}`)).allowed).toBe(true);
      }
      // Per new key: its own request, and a look at the previous new key (denied: set aside). The
      // old scan made this 500 * (maxKeys + 1).
      expect(kernelRuns.count).toBe(1_000);
      expect(s.store.size).toBe(maxKeys);
      // Every key was denied: each time, the one whose denial ended first went (the oldest fills).
      for (const i of [0, 250, 500]) expect(await s.allowed(`fill-${i}`)).toBe(true);
      for (const i of [501, maxKeys - 1]) expect(await s.allowed(`fill-${i}`)).toBe(false);
      for (const i of [0, 250, 500]) expect(await s.allowed(`new-${i}`)).toBe(false);
    },
  );

  test('half the keys denied, half open: every key is looked at once per use', async () => {
    const twice: Policy = { algorithm: 'fixed-window', limit: 2, window: '10m' };
    const s = rig(twice, 2_000);
    for (let i = 0; i < 2_000; i++) {
      await s.hit(`fill-${i}`);
      if (i % 2 === 0) await s.hit(`fill-${i}`);
    }
    kernelRuns.count = 0;
    for (let i = 0; i < 2_000; i++) await s.hit(`new-${i}`);
    // 2 000 requests; the first 1 000 evictions look at 1 000 open keys (evicted) and set 1 000
    // denied ones aside, each looked at once; the next 1 000 look at one open new key each.
    expect(kernelRuns.count).toBe(2_000 + 2_000 + 1_000);
    for (let i = 0; i < 2_000; i += 2) expect(await s.allowed(`fill-${i}`)).toBe(false);
    for (let i = 1; i < 2_000; i += 200) expect((await s.limiter.peek(`fill-${i}`)).remaining).toBe(2);
  });
});

describe('the eviction rule', () => {
  test('every key denied: the one whose denial ends first goes, not the least recently used', async () => {
    const s = rig({ algorithm: 'fixed-window', limit: 1, window: '10s' }, 3);
    await s.hit('a'); // denied until 10 000
    s.time.t = 1_000;
    await s.hit('b'); // until 11 000
    s.time.t = 2_000;
    await s.hit('c'); // until 12 000
    s.time.t = 3_000;
    expect((await s.hit('a')).allowed).toBe(false); // a is now the most recently used
    s.time.t = 4_000;
    expect((await s.hit('d')).allowed).toBe(true);
    expect(await s.allowed('a')).toBe(true);
    expect([await s.allowed('b'), await s.allowed('c'), await s.allowed('d')]).toEqual([false, false, false]);
  });

  test('a set-aside key whose denial has ended goes before any key still in the recency list', async () => {
    const s = rig({ algorithm: 'token-bucket', limit: 2, window: '10s' }, 3);
    await s.hit('a');
    await s.hit('a'); // empty: denied until 5 000
    s.time.t = 1;
    await s.hit('b');
    s.time.t = 2;
    await s.hit('c');
    s.time.t = 3;
    await s.hit('d'); // full: a (denied) is set aside, b goes
    expect((await s.limiter.peek('b')).remaining).toBe(2);
    s.time.t = 5_000; // a's denial ends: a is the least recently used key that is not denied
    await s.hit('e');
    expect((await s.limiter.peek('a')).remaining).toBe(2); // gone: a fresh key
    expect((await s.limiter.peek('c')).remaining).toBe(1);
    expect((await s.limiter.peek('d')).remaining).toBe(1);
  });

  test('a set-aside key that is used again is back in the recency order', async () => {
    const s = rig({ algorithm: 'token-bucket', limit: 2, window: '10s' }, 3);
    for (const [t, key] of [
      [0, 'a'],
      [1, 'b'],
      [2, 'c'],
    ] as const) {
      s.time.t = t;
      await s.hit(key);
      await s.hit(key); // empty: denied until t + 5 000
    }
    s.time.t = 3;
    await s.hit('d'); // every key denied: all three are set aside, a (ends first) goes
    expect((await s.limiter.peek('a')).remaining).toBe(2);
    s.time.t = 4;
    expect((await s.hit('b')).allowed).toBe(false); // used: b leaves the set-aside keys
    s.time.t = 5_002; // b's and c's denials have ended; only c is still set aside
    await s.hit('e');
    expect((await s.limiter.peek('c')).remaining).toBe(2); // gone
    expect((await s.limiter.peek('b')).remaining).toBe(1);
    await s.hit('f'); // d (used at 3) is now the least recently used, b was used at 4
    expect((await s.limiter.peek('d')).remaining).toBe(2); // gone
    expect((await s.limiter.peek('b')).remaining).toBe(1);
  });

  test('a refund that ends a set-aside key’s denial makes it the next to go', async () => {
    const s = rig({ algorithm: 'fixed-window', limit: 2, window: '10s' }, 3);
    await s.hit('a');
    await s.hit('a'); // denied until 10 000
    s.time.t = 1;
    await s.hit('b');
    await s.hit('b'); // denied until 10 001
    s.time.t = 2;
    await s.hit('c');
    s.time.t = 3;
    await s.hit('d'); // a and b are set aside, c goes
    expect((await s.limiter.peek('c')).remaining).toBe(2);
    s.time.t = 4;
    await s.limiter.refund('b'); // b, the least recently used key after a, is no longer denied
    s.time.t = 5;
    await s.hit('e');
    expect((await s.limiter.peek('b')).remaining).toBe(2); // gone
    expect(await s.allowed('a')).toBe(false);
    expect((await s.limiter.peek('d')).remaining).toBe(1);
    expect((await s.limiter.peek('e')).remaining).toBe(1);
  });
});

describe('the eviction rule against a model (property)', () => {
  // Two limiters with different policy sets share one store; the model replays every request with
  // the pure `evaluate` and, at each eviction, checks which key went against the rule.
  const sets: Policy[][] = [
    [{ algorithm: 'fixed-window', limit: 2, window: 3_000 }],
    [{ algorithm: 'token-bucket', limit: 2, window: 4_000 }],
    [
      { algorithm: 'sliding-window', limit: 3, window: 2_000 },
      { algorithm: 'leaky-bucket', limit: 2, window: 1_000, delay: false },
    ],
    [
      { algorithm: 'fixed-window', limit: 3, window: 5_000 },
      { algorithm: 'token-bucket', limit: 2, window: 1_000 },
    ],
  ];
  const op = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('hit' as const),
        limiter: fc.nat(1),
        key: fc.nat(7),
        cost: fc.integer({ min: 1, max: 2 }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.nat(1_500) }) },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('refund' as const), limiter: fc.nat(1), key: fc.nat(7) }),
    },
  );

  test('the key that goes is never denied while another is not; if all are, it is the first to reopen', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...sets.keys()),
        fc.constantFrom(...sets.keys()),
        fc.integer({ min: 1, max: 5 }),
        fc.array(op, { maxLength: 120 }),
        async (first, second, maxKeys, ops) => {
          let now = 0;
          const store = new MemoryStore({ clock: () => now, maxKeys });
          const limiterSets = [first, second].map(
            (i, n) => createLimiter({ policies: sets[i]!, store, name: `l${n}` }).policies,
          );
          /** What the store should hold, by `${limiter}/${key}`. */
          type Entry = { set: number; key: string; states: (State | undefined)[] };
          const model = new Map<string, Entry>();
          const setOf = (entry: { set: number }) => limiterSets[entry.set]!;
          const expired = (entry: { set: number; states: (State | undefined)[] }) =>
            entry.states.every((state, i) => {
              const policy = setOf(entry).policies[i]!;
              return state === undefined || STEPS[policy.algorithm].expiresAt(state, policy) <= now;
            });
          const deniedUntil = (entry: { set: number; states: (State | undefined)[] }) => {
            let until = now;
            setOf(entry).policies.forEach((policy, i) => {
              const { outcome } = STEPS[policy.algorithm].step(entry.states[i], now, policy, 1);
              if (!outcome.allowed) until = Math.max(until, now + outcome.retryAfterMs);
            });
            return until;
          };
          /** Peeks now and a millisecond later (a window that just opened shows only then). */
          const storePeeks = async (entry: Entry) => {
            const peeks = [await store.peek(entry.key, setOf(entry))];
            now++;
            peeks.push(await store.peek(entry.key, setOf(entry)));
            now--;
            return peeks;
          };
          const modelPeeks = (states: readonly (State | undefined)[], set: PolicySet) => [
            peekOutcomes(states, now, set),
            peekOutcomes(states, now + 1, set),
          ];
          const checkAll = async () => {
            expect(store.size).toBe(model.size);
            for (const entry of model.values()) {
              expect(await storePeeks(entry)).toEqual(modelPeeks(entry.states, setOf(entry)));
            }
          };

          for (const step of ops) {
            // Expired keys hold nothing the rule cares about: sweep them on both sides, so that every
            // tracked key shows in a peek and an eviction is always visible.
            store.sweep();
            for (const [id, entry] of model) if (expired(entry)) model.delete(id);
            if (step.kind === 'wait') {
              now += step.ms;
              continue;
            }
            const set = limiterSets[step.limiter]!;
            const key = `k${step.key}`;
            const id = `${step.limiter}/${key}`;
            const entry = model.get(id);
            if (step.kind === 'refund') {
              await store.refund(key, set, 1);
              if (entry !== undefined) {
                entry.states = refundStates(entry.states, now, set, 1);
                if (entry.states.every((state) => state === undefined)) model.delete(id);
                else if (isEqual(modelPeeks(entry.states, set), modelPeeks([], set))) {
                  // Refunded to a state no peek tells from none (a sliding window at zero): forget it
                  // on both sides, or its eviction could not be seen.
                  await store.reset(key, set);
                  model.delete(id);
                }
              }
              await checkAll();
              continue;
            }
            const expected = evaluate(entry?.states ?? [], now, set, step.cost);
            const evicts = expected.allowed && entry === undefined && model.size >= maxKeys;
            const until = new Map([...model].map(([other, e]) => [other, deniedUntil(e)]));
            expect(await store.consume(key, set, step.cost)).toEqual(expected.outcomes);
            if (evicts) {
              const gone: string[] = [];
              for (const [other, e] of model) {
                if (!isEqual(await storePeeks(e), modelPeeks(e.states, setOf(e)))) gone.push(other);
              }
              expect(gone).toHaveLength(1);
              const ends = [...until.values()];
              const open = ends.some((end) => end <= now);
              if (open) expect(until.get(gone[0]!)).toBeLessThanOrEqual(now);
              else expect(until.get(gone[0]!)).toBe(Math.min(...ends));
              model.delete(gone[0]!);
            }
            if (expected.allowed) model.set(id, { set: step.limiter, key, states: expected.states });
            await checkAll();
          }
          await store.close();
        },
      ),
      { numRuns: 500 },
    );
  });
});

function isEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
