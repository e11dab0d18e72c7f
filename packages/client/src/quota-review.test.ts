// A cold review of 4d09daf (legacy windows of whole seconds guessed, grid counts kept clear of the
// skew's boundary span), on a virtual clock: each case here was answered 429 no more often by the
// code before it (2a406bf's quota.ts), which the figures in the test names give as "old".
import { afterEach, describe, expect, it, vi } from 'vitest';
import { pace } from './pace.js';
import { Quota } from './quota.js';
import type { QuotaReading } from './read-headers.js';
import { ServerClock } from './server-clock.js';

const T0 = 1_700_000_000_123;
const L = 20;
/** The first call lands 700 ms into a 2 s window of the epoch grid. */
const FROM = Math.floor(T0 / 2000) * 2000 + 20_700;

interface Answer {
  allowed: boolean;
  remaining: number;
  /** When the whole quota is back, epoch ms on the server's clock. */
  reset: number;
}
/** A server deciding at `now` on its own clock. */
type Server = (now: number) => Answer;

/** tollgate's sliding window: windows on multiples of `W` (+ `offset`), the last one's count fading over this one. */
function slidingGrid(W: number, offset = 0): Server {
  const counts = new Map<number, number>();
  return (now) => {
    const k = Math.floor((now - offset) / W);
    const current = counts.get(k) ?? 0;
    const previous = counts.get(k - 1) ?? 0;
    const estimate = (previous * (W - (now - offset - k * W))) / W + current;
    const allowed = estimate + 1 <= L;
    if (allowed) counts.set(k, current + 1);
    const reset = (counts.get(k) ?? 0) > 0 ? (k + 2) * W + offset : previous > 0 ? (k + 1) * W + offset : now;
    return { allowed, remaining: Math.max(0, Math.floor(L - estimate - (allowed ? 1 : 0))), reset };
  };
}

/** A fixed window on multiples of `W` (+ `offset`: a gateway whose windows started at its boot). */
function fixedGrid(W: number, offset = 0): Server {
  let start = Number.NaN;
  let count = 0;
  return (now) => {
    const s = Math.floor((now - offset) / W) * W + offset;
    if (s !== start) {
      start = s;
      count = 0;
    }
    const allowed = count < L;
    if (allowed) count += 1;
    return { allowed, remaining: L - count, reset: s + W };
  };
}

/**
 * One caller paced by a fresh Quota: each call goes at `readyAt`, no sooner than the last answer;
 * the server decides it half a round trip after it is sent, on a clock `skew` ms ahead, and its
 * `Date` is that instant in whole seconds. A refusal holds the next call a second (its Retry-After).
 * `stated`: draft headers (`w` stated, reset as delta seconds); else `X-RateLimit-*` (epoch seconds,
 * or delta seconds with `delta`). Returns the local offsets from FROM of the refused calls.
 */
function drive(
  server: Server,
  o: { rtt: number; skew: number; ms?: number; stated?: number; delta?: boolean },
): { refusedAt: number[]; allowed: number } {
  const quota = new Quota('q', 'requests');
  const clock = new ServerClock();
  const refusedAt: number[] = [];
  let allowed = 0;
  for (let t = FROM, seq = 0; t < FROM + (o.ms ?? 20_000); seq++) {
    const decided = t + o.rtt / 2 + o.skew;
    const answer = server(decided);
    if (answer.allowed) allowed += 1;
    else refusedAt.push(Math.round(t - FROM));
    clock.observe(Math.floor(decided / 1000) * 1000, t + o.rtt);
    const delta = { delta: Math.ceil((answer.reset - decided) / 1000) * 1000, grain: 1000 };
    const reading: QuotaReading = {
      key: 'q',
      unit: 'requests',
      limit: L,
      remaining: answer.remaining,
      reset:
        o.stated !== undefined || o.delta
          ? delta
          : { server: Math.ceil(answer.reset / 1000) * 1000, grain: 1000 },
      windowMs: o.stated,
    };
    quota.spend(1, t);
    quota.update(reading, seq, t, t + o.rtt, clock, 0, answer.allowed);
    const held = answer.allowed ? Number.NEGATIVE_INFINITY : t + o.rtt + 1000;
    t = Math.max(t + o.rtt, held, quota.readyAt(t + o.rtt, 1, t));
  }
  return { refusedAt, allowed };
}

describe('review: grid counts and a round trip of 80 ms', () => {
  // The skew is read from `Date` at receipt, the call is counted at the server on arrival: the
  // client places each call a round trip early on the server's grid, which clearOfBoundary's span
  // (the skew interval alone) does not cover. Old: none refused; 4d09daf: one in each (6.9 s in),
  // and none with clearOfBoundary taken out (the stated case).
  it('legacy sliding 2 s windows on the grid (the length guessed right), server 450 ms ahead: none refused', () => {
    const { refusedAt } = drive(slidingGrid(2000), { rtt: 80, skew: 450 });
    expect(refusedAt).toEqual([]);
  });

  it.each([450, 137])(
    'draft sliding 2 s windows (stated), server %i ms ahead: none refused (old: none, 193-194 allowed)',
    (skew) => {
      const { refusedAt } = drive(slidingGrid(2000), { rtt: 80, skew, stated: 2000 });
      expect(refusedAt).toEqual([]);
    },
  );
});

describe('review: legacy windows that are not whole seconds', () => {
  // Old: none refused in each; 4d09daf: one each (fixed: the call sent at the guessed 2 s end;
  // sliding: no guess, the refill read from the sends recorded while the kind read 'window').
  // Kept as found for the sliding window (fixed since: those sends are kept out of the refill).
  it('sliding 2.4 s on a grid 377 ms off the epoch’s: none refused', () => {
    const { refusedAt } = drive(slidingGrid(2400, 377), { rtt: 3, skew: 0 });
    expect(refusedAt).toEqual([]);
  });

  // A fixed window on the clock's grid that the first call enters mid-way dates a length too
  // short for the first guess (2 s, where 2.4 s windows fit the reset too): the call at its end
  // is refused, once, and no length is guessed again (README: "a window that lasts no whole number
  // of seconds may cost one refused call"). Old: none refused. With delta resets the guess came
  // at 6976 ms until two whole seconds in the bounds were let guess the shorter (a window opened
  // just after a whole second states its end a second late): now at 2111 ms, still once.
  it.each([
    ['on a grid 377 ms off the epoch’s', fixedGrid(2400, 377), {}, [2506]],
    ['on the epoch grid, reset in delta seconds', fixedGrid(2400), { delta: true }, [2111]],
  ] as const)(
    'fixed 2.4 s %s: the one call at the guessed end refused, none after',
    (_name, server, o, refused) => {
      const { refusedAt } = drive(server, { rtt: 3, skew: 0, ...o });
      expect(refusedAt).toEqual(refused);
    },
  );
});

describe('review: pace() on a virtual clock, tollgate’s sliding window with legacy headers', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Four callers for 20 s through pace() against `server`, each call answered 4 ms after it is sent. */
  async function fourCallers(server: Server): Promise<{ ok: number; limited: number }> {
    vi.useFakeTimers({ now: FROM, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    let ok = 0;
    let limited = 0;
    const fetchLike = async () => {
      await new Promise((resolve) => setTimeout(resolve, 2));
      const now = Date.now();
      const answer = server(now);
      if (answer.allowed) ok += 1;
      else limited += 1;
      await new Promise((resolve) => setTimeout(resolve, 2));
      return new Response('{}', {
        status: answer.allowed ? 200 : 429,
        headers: {
          Date: new Date(now).toUTCString(),
          'X-RateLimit-Limit': String(L),
          'X-RateLimit-Remaining': String(answer.remaining),
          'X-RateLimit-Reset': String(Math.ceil(answer.reset / 1000)),
          ...(answer.allowed ? {} : { 'Retry-After': '1' }),
        },
      });
    };
    const api = pace(fetchLike, { retry: false, random: () => 0.5 });
    let stop = false;
    for (let i = 0; i < 4; i++) {
      void (async () => {
        while (!stop) await (await api('http://legacy.test/')).text();
      })();
    }
    await vi.advanceTimersByTimeAsync(20_000);
    stop = true;
    await vi.advanceTimersByTimeAsync(5000);
    return { ok, limited };
  }

  // The sends recorded while the kind reads 'window' (new in 4d09daf, for the guessed grid count)
  // stay in the sliding refill once the guess is refuted or never made: the refill is read too
  // high. Old: 0 answered 429 and 246 / 161 allowed; 4d09daf: 6 (200 allowed) and 3 (150).
  it.each([1500, 2400])('windows of %i ms on the grid: none answered 429', async (W) => {
    const { limited } = await fourCallers(slidingGrid(W));
    expect(limited).toBe(0);
  });
});

describe('review: sends kept for quotas that state no window', () => {
  it('a fixed window of 100 000 per hour (X-RateLimit-*, above the grid’s 200): 5000 calls keep at most 400 sends', () => {
    // Old: 1 (the call before the kind was told). 4d09daf: 4096, some 300 KB per quota, never
    // trimmed (a window has no `window()` for the horizon): 1000 budgets of one such quota hold
    // ~300 MB, OpenAI's two per key twice that.
    const quota = new Quota('legacy:', 'requests');
    const clock = new ServerClock();
    for (let c = 0; c < 5000; c++) {
      const t = T0 + c * 10;
      quota.spend(1, t);
      quota.update(
        {
          key: 'legacy:',
          unit: 'requests',
          limit: 100_000,
          remaining: 100_000 - c - 1,
          reset: { server: T0 + 3_600_000, grain: 1000 },
          windowMs: undefined,
        },
        c,
        t,
        t + 5,
        clock,
        0,
        true,
      );
    }
    expect(quota.kind).toBe('window');
    expect((quota as unknown as { sends: unknown[] }).sends.length).toBeLessThanOrEqual(400);
  });
});
