/**
 * Property tests over random traffic, through a limiter on a MemoryStore with a virtual clock.
 *
 * Each algorithm has an independent reference model written from DESIGN.md (fixed windows from the
 * first request; the sliding-window estimate computed from a log of admissions; continuous token
 * refill; an nginx-style draining queue). Every decision of the store must equal the model's, and the
 * model asserts the bound on admissions. Denials are probed for a tight `retryAfterMs` on the very
 * same store with no other traffic in between.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, test } from 'vitest';
import { createLimiter } from '../limiter.js';
import { MemoryStore } from '../memory-store.js';
import { capacityOf } from '../policy.js';
import type { Decision, Policy, RateAlgorithm, ResolvedPolicy } from '../types.js';

const KEY = 'k';
const INF = Number.POSITIVE_INFINITY;
const RUNS = 80;

/** What the generated traffic exercised, so that a generator that stops reaching denials is noticed. */
const seen = { requests: 0, denied: 0, infinite: 0, probed: 0, drained: 0, refunds: 0, expiredRefunds: 0 };

interface Expected {
  allowed: boolean;
  /** After the request when allowed, else as it is now. */
  remaining: number;
  resetMs: number;
  delayMs: number;
}

/** DESIGN.md, one policy, no store: what a request of `cost` at `t` gets; `admit` records it. */
interface Model {
  outcome(t: number, cost: number): Expected;
  admit(t: number, cost: number): void;
}

/** A window opens at the key's first request and lasts W; allowed iff count + c <= L. */
function fixedModel({ limit: L, window: W }: ResolvedPolicy): Model {
  let start: number | undefined;
  let count = 0;
  const live = (t: number) => start !== undefined && t < start + W;
  return {
    outcome(t, c) {
      const n = live(t) ? count : 0;
      const allowed = n + c <= L;
      const end = live(t) ? start! + W : allowed ? t + W : t;
      return { allowed, remaining: allowed ? L - n - c : L - n, resetMs: end - t, delayMs: 0 };
    },
    admit(t, c) {
      if (!live(t)) {
        start = t;
        count = 0;
      }
      count += c;
      // Bound: never more than L units admitted in one window.
      expect(count).toBeLessThanOrEqual(L);
    },
  };
}

/**
 * Windows aligned to multiples of W; estimate = prev * (W - elapsed) / W + curr, computed here from
 * the log of admissions (everything multiplied by W to stay exact).
 */
function slidingModel({ limit: L, window: W }: ResolvedPolicy): Model {
  const log: { t: number; c: number }[] = [];
  const sums = (t: number) => {
    const start = t - (t % W);
    let curr = 0;
    let prev = 0;
    for (const a of log) {
      if (a.t >= start) curr += a.c;
      else if (a.t >= start - W) prev += a.c;
    }
    return { start, curr, prev, used: prev * (W - (t - start)) + curr * W };
  };
  return {
    outcome(t, c) {
      const { start, curr, prev, used } = sums(t);
      const allowed = used + c * W <= L * W;
      const after = allowed ? used + c * W : used;
      const currAfter = allowed ? curr + c : curr;
      const resetMs = currAfter > 0 ? start + 2 * W - t : prev > 0 ? start + W - t : 0;
      return { allowed, remaining: Math.floor((L * W - after) / W), resetMs, delayMs: 0 };
    },
    admit(t, c) {
      log.push({ t, c });
      // Bound: the estimate after every admission never exceeds L.
      expect(sums(t).used).toBeLessThanOrEqual(L * W);
    },
  };
}

/** Capacity B, continuous refill of L per W, starts full (tokens counted in 1/W units). */
function tokenModel({ limit: L, window: W, burst: B }: ResolvedPolicy): Model {
  const cap = B * W;
  let tokens = cap;
  let last = 0;
  const log: { t: number; c: number }[] = [];
  const at = (t: number) => Math.min(cap, tokens + (t - last) * L);
  return {
    outcome(t, c) {
      const now = at(t);
      const allowed = now >= c * W;
      const left = allowed ? now - c * W : now;
      return { allowed, remaining: Math.floor(left / W), resetMs: Math.ceil((cap - left) / L), delayMs: 0 };
    },
    admit(t, c) {
      tokens = at(t) - c * W;
      last = t;
      log.push({ t, c });
      // Bound: units admitted in any interval [a, b] <= B + L * (b - a) / W.
      for (const a of log) {
        let units = 0;
        for (const x of log) if (x.t >= a.t) units += x.c;
        expect(units * W).toBeLessThanOrEqual(B * W + L * (t - a.t));
      }
    },
  };
}

/** A queue of capacity B draining L per W; an admitted request waits for what is queued ahead. */
function leakyModel({ limit: L, window: W, burst: B, delay }: ResolvedPolicy): Model {
  const cap = B * W;
  let level = 0;
  let last = 0;
  const at = (t: number) => Math.max(0, level - (t - last) * L);
  return {
    outcome(t, c) {
      const now = at(t);
      const allowed = now + c * W <= cap;
      const next = allowed ? now + c * W : now;
      return {
        allowed,
        remaining: Math.floor((cap - next) / W),
        resetMs: Math.ceil(next / L),
        delayMs: allowed && delay ? Math.ceil(now / L) : 0,
      };
    },
    admit(t, c) {
      level = at(t) + c * W;
      last = t;
      // Bound: the queue never holds more than B.
      expect(level).toBeLessThanOrEqual(cap);
    },
  };
}

const MODELS: Record<RateAlgorithm, (p: ResolvedPolicy) => Model> = {
  'fixed-window': fixedModel,
  'sliding-window': slidingModel,
  'token-bucket': tokenModel,
  'leaky-bucket': leakyModel,
};

const ALGORITHMS = Object.keys(MODELS) as RateAlgorithm[];
const isBucket = (a: RateAlgorithm) => a === 'token-bucket' || a === 'leaky-bucket';

function policyArb(algorithm: RateAlgorithm, name: string): fc.Arbitrary<Policy> {
  return fc
    .record({
      limit: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 50 })),
      window: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 10_000 })),
      burst: fc.option(fc.oneof(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 60 }))),
      delay: fc.option(fc.boolean()),
    })
    .map(({ limit, window, burst, delay }) => {
      const policy: Policy = { name, algorithm, limit, window };
      if (isBucket(algorithm) && burst !== null) policy.burst = burst;
      if (algorithm === 'leaky-bucket' && delay !== null) policy.delay = delay;
      return policy;
    });
}

interface RawStep {
  kind: number;
  raw: number;
  cost: number;
  /** After the request, spend `remaining` cost-1 requests at once, then one more. */
  drain: boolean;
  /** After a denial, retry at now + retryAfterMs - 1 and at now + retryAfterMs. */
  probe: boolean;
  /** For the refund property: give back this much after the request (0: no refund)... */
  refund: number;
  /** ...this long after it (scaled like `kind` 4). */
  refundAfter: number;
}

const stepArb: fc.Arbitrary<RawStep> = fc.record({
  kind: fc.integer({ min: 0, max: 4 }),
  raw: fc.nat(),
  cost: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant(1)),
  drain: fc.integer({ min: 0, max: 7 }).map((x) => x === 0),
  probe: fc.boolean(),
  refund: fc.integer({ min: -6, max: 5 }).map((x) => Math.max(0, x)),
  refundAfter: fc.oneof(fc.constant(0), fc.nat()),
});

/** Time to the next request, scaled to the policies so that all regimes are visited. */
function advance(step: RawStep, policies: readonly ResolvedPolicy[]): number {
  const unit = Math.min(...policies.map((p) => Math.ceil(p.window / p.limit)));
  const wMin = Math.min(...policies.map((p) => p.window));
  const wMax = Math.max(...policies.map((p) => p.window));
  switch (step.kind) {
    case 0:
    case 1:
      return 0;
    case 2:
      return step.raw % (unit + 1);
    case 3:
      return step.raw % (wMin + 1);
    default:
      return step.raw % (3 * wMax + 1);
  }
}

/** A limiter on a fresh MemoryStore whose clock the caller sets. */
function rig(policies: readonly Policy[]) {
  const clock = { t: 0 };
  const store = new MemoryStore({ clock: () => clock.t });
  // Windows here are milliseconds on purpose (a virtual clock): no TOLLGATE_NUMERIC_WINDOW notes.
  const limiter = createLimiter({ policies, store, logger: { warn() {}, error() {} } });
  return { clock, store, limiter, resolved: limiter.policies!.policies };
}

/**
 * Sends one request and checks the decision against the models: allowed flag, every policy's
 * remaining / resetMs / retryAfterMs / delayMs, the binding policy, tightness of retryAfterMs (in the
 * models), all-or-nothing (peek unchanged by a denial). Records the admission in the models.
 */
async function request(r: ReturnType<typeof rig>, models: readonly Model[], cost: number): Promise<Decision> {
  const t = r.clock.t;
  const { resolved } = r;
  const caps = resolved.map(capacityOf);
  const outs = models.map((m) => m.outcome(t, cost));
  const untouched = models.map((m) => m.outcome(t, 0));
  const allowed = outs.every((o) => o.allowed);

  const before = await r.limiter.peek(KEY);
  const d = await r.limiter.consume(KEY, { cost });

  expect(d.allowed).toBe(allowed);
  expect(d.key).toBe(KEY);
  seen.requests++;
  if (!allowed) seen.denied++;
  if (d.retryAfterMs === INF) seen.infinite++;
  expect(d.policies).toHaveLength(resolved.length);
  d.policies.forEach((s, i) => {
    const o = outs[i]!;
    expect(s.name).toBe(resolved[i]!.name);
    expect(s.limit).toBe(caps[i]);
    expect(s.allowed).toBe(o.allowed);
    expect(Number.isInteger(s.remaining)).toBe(true);
    expect(s.remaining).toBeGreaterThanOrEqual(0);
    expect(s.remaining).toBeLessThanOrEqual(caps[i]!);
    expect(s.remaining).toBe(allowed ? o.remaining : untouched[i]!.remaining);
    if (allowed || !o.allowed) expect(s.resetMs).toBe(o.resetMs);
    expect(s.resetMs).toBeGreaterThanOrEqual(0);
    expect(s.delayMs).toBe(allowed ? o.delayMs : 0);
    if (o.allowed) {
      expect(s.retryAfterMs).toBe(0);
    } else if (cost > caps[i]!) {
      expect(s.retryAfterMs).toBe(INF);
    } else {
      // Tight, judged by the model: denied 1 ms earlier, allowed exactly then.
      expect(Number.isInteger(s.retryAfterMs)).toBe(true);
      expect(s.retryAfterMs).toBeGreaterThanOrEqual(1);
      expect(models[i]!.outcome(t + s.retryAfterMs - 1, cost).allowed).toBe(false);
      expect(models[i]!.outcome(t + s.retryAfterMs, cost).allowed).toBe(true);
    }
  });

  // The binding policy: the denier with the longest wait (between equal waits, the one with less
  // left), else the one with least remaining.
  let b = 0;
  d.policies.forEach((s, i) => {
    const cur = d.policies[b]!;
    const longer =
      cur.allowed ||
      s.retryAfterMs > cur.retryAfterMs ||
      (s.retryAfterMs === cur.retryAfterMs && s.remaining < cur.remaining);
    if (allowed ? s.remaining < cur.remaining : !s.allowed && longer) b = i;
  });
  const binding = d.policies[b]!;
  expect(d.policy).toBe(resolved[b]);
  expect(d.limit).toBe(binding.limit);
  expect(d.remaining).toBe(binding.remaining);
  expect(d.resetMs).toBe(binding.resetMs);
  expect(d.retryAfterMs).toBe(allowed ? 0 : binding.retryAfterMs);
  expect(d.delayMs).toBe(allowed ? Math.max(...outs.map((o) => o.delayMs)) : 0);
  expect(d.reason).toBeUndefined();
  if (!allowed && Number.isFinite(d.retryAfterMs)) {
    expect(models.some((m) => !m.outcome(t + d.retryAfterMs - 1, cost).allowed)).toBe(true);
    expect(models.every((m) => m.outcome(t + d.retryAfterMs, cost).allowed)).toBe(true);
  }
  expect(Number.isFinite(d.retryAfterMs)).toBe(!caps.some((c) => cost > c));

  if (allowed) {
    for (const m of models) m.admit(t, cost);
  } else {
    // All or nothing: a denied request leaves every policy exactly as it was.
    expect(await r.limiter.peek(KEY)).toEqual(before);
  }
  return d;
}

/** Random traffic through one limiter, checked request by request against the models. */
async function traffic(policies: readonly Policy[], t0: number, steps: readonly RawStep[]) {
  const r = rig(policies);
  const models = r.resolved.map((p) => MODELS[p.algorithm as RateAlgorithm](p));
  r.clock.t = t0;
  for (const step of steps) {
    r.clock.t += advance(step, r.resolved);
    let d = await request(r, models, step.cost);
    if (!d.allowed && Number.isFinite(d.retryAfterMs) && step.probe) {
      // Honest and tight, on the real store: no other traffic, 1 ms early is denied, on time is allowed.
      seen.probed++;
      const now = r.clock.t;
      const wait = d.retryAfterMs;
      r.clock.t = now + wait - 1;
      expect((await request(r, models, step.cost)).allowed).toBe(false);
      r.clock.t = now + wait;
      d = await request(r, models, step.cost);
      expect(d.allowed).toBe(true);
    }
    // Exactly `remaining` more cost-1 requests fit now (for several policies, the binding one is
    // the least remaining only when allowed).
    if (step.drain && (d.allowed || d.policies.length === 1)) {
      seen.drained++;
      const n = d.remaining;
      for (let i = 0; i < n; i++) expect((await request(r, models, 1)).allowed).toBe(true);
      expect((await request(r, models, 1)).allowed).toBe(false);
    }
  }
  await r.store.close();
}

afterAll(() => {
  // Not vacuous: the traffic reached denials, infinite costs, probes, drains and both kinds of refund.
  expect(seen.denied).toBeGreaterThan(seen.requests / 20);
  expect(seen.infinite).toBeGreaterThan(20);
  expect(seen.probed).toBeGreaterThan(100);
  expect(seen.drained).toBeGreaterThan(100);
  expect(seen.refunds).toBeGreaterThan(100);
  expect(seen.expiredRefunds).toBeGreaterThan(10);
});

const t0Arb = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 10_000_000 }));
const stepsArb = fc.array(stepArb, { maxLength: 30 });

describe.each(ALGORITHMS)('%s over random traffic', (algorithm) => {
  test('matches the DESIGN model, keeps its bound, remaining is exact, retryAfterMs is tight', async () => {
    await fc.assert(
      fc.asyncProperty(policyArb(algorithm, 'p'), t0Arb, stepsArb, async (policy, t0, steps) => {
        await traffic([policy], t0, steps);
      }),
      { numRuns: RUNS },
    );
  });

  test('refund never goes below zero, never revives expired state, never makes anything stricter', async () => {
    await fc.assert(
      fc.asyncProperty(policyArb(algorithm, 'p'), t0Arb, stepsArb, async (policy, t0, steps) => {
        await refunds(policy, t0, steps);
      }),
      { numRuns: RUNS / 2 },
    );
  });
});

describe('several policies over random traffic', () => {
  const setArb = fc
    .array(fc.constantFrom(...ALGORITHMS), { minLength: 2, maxLength: 3 })
    .chain((algorithms) => fc.tuple(...algorithms.map((a, i) => policyArb(a, `p${i}`))));

  test('all or nothing: a denial changes no policy; decisions match the models of every policy', async () => {
    await fc.assert(
      fc.asyncProperty(setArb, t0Arb, stepsArb, async (policies, t0, steps) => {
        await traffic(policies, t0, steps);
      }),
      { numRuns: RUNS },
    );
  });
});

type Op = { t: number; cost: number } | { t: number; refund: number };

async function replay(policy: Policy, ops: readonly Op[]) {
  const r = rig([policy]);
  for (const op of ops) {
    r.clock.t = op.t;
    if ('cost' in op) await r.limiter.consume(KEY, { cost: op.cost });
    else await r.limiter.refund(KEY, op.refund);
  }
  return r;
}

const view = (d: Decision) => ({
  allowed: d.allowed,
  remaining: d.remaining,
  resetMs: d.resetMs,
  retryAfterMs: d.retryAfterMs,
  delayMs: d.delayMs,
});

/**
 * Random traffic with refunds. At each refund, two copies of the history, one with and one without
 * that refund, are compared (peek only) now and at later instants.
 */
async function refunds(policy: Policy, t0: number, steps: readonly RawStep[]) {
  const r = rig([policy]);
  const p = r.resolved[0]!;
  const cap = capacityOf(p);
  const ops: Op[] = [];
  r.clock.t = t0;
  for (const step of steps) {
    r.clock.t += advance(step, r.resolved);
    const now = r.clock.t;
    const d = await r.limiter.consume(KEY, { cost: step.cost });
    ops.push({ t: now, cost: step.cost });
    expect(d.remaining).toBeGreaterThanOrEqual(0);
    expect(d.remaining).toBeLessThanOrEqual(cap);
    if (!d.allowed && Number.isFinite(d.retryAfterMs)) {
      // Tight also after refunds: a copy fed the same history is denied 1 ms early, allowed on time.
      const copy = await replay(policy, ops);
      copy.clock.t = now + d.retryAfterMs - 1;
      expect((await copy.limiter.consume(KEY, { cost: step.cost })).allowed).toBe(false);
      copy.clock.t = now + d.retryAfterMs;
      expect((await copy.limiter.consume(KEY, { cost: step.cost })).allowed).toBe(true);
      await copy.store.close();
    }
    if (step.refund === 0) continue;

    const k = step.refund;
    seen.refunds++;
    r.clock.t += advance({ ...step, kind: 4, raw: step.refundAfter }, r.resolved);
    const t = r.clock.t;
    const without = await replay(policy, ops);
    without.clock.t = t;
    await r.limiter.refund(KEY, k);
    ops.push({ t, refund: k });
    const withRefund = await replay(policy, ops);
    const fresh = rig([policy]);
    fresh.clock.t = t;
    const expired =
      JSON.stringify(view(await without.limiter.peek(KEY))) ===
      JSON.stringify(view(await fresh.limiter.peek(KEY)));

    if (expired) seen.expiredRefunds++;
    const main = await r.limiter.peek(KEY);
    expect(main.remaining).toBeLessThanOrEqual(cap);

    for (const offset of [
      0,
      1,
      Math.floor(p.window / 2),
      p.window - 1,
      p.window,
      2 * p.window,
      3 * p.window,
    ]) {
      withRefund.clock.t = without.clock.t = t + offset;
      const a = await withRefund.limiter.peek(KEY);
      const b = await without.limiter.peek(KEY);
      if (offset === 0) expect(view(a)).toEqual(view(main));
      // Never below zero (never more than full), and never more than k units given back.
      expect(a.remaining).toBeLessThanOrEqual(cap);
      expect(a.remaining - b.remaining).toBeGreaterThanOrEqual(0);
      expect(a.remaining - b.remaining).toBeLessThanOrEqual(k);
      // A refund never makes anything stricter or longer.
      if (b.allowed) expect(a.allowed).toBe(true);
      expect(a.retryAfterMs).toBeLessThanOrEqual(b.retryAfterMs);
      expect(a.resetMs).toBeLessThanOrEqual(b.resetMs);
      // A refund to a key whose state has expired changes nothing at all.
      if (expired) expect(view(a)).toEqual(view(b));
    }
    await Promise.all([without.store.close(), withRefund.store.close(), fresh.store.close()]);
  }
  await r.store.close();
}
