// A window of stated length (draft headers: `RateLimit-Policy: 10;w=1`, a reset in whole seconds)
// before the client saw it come back whole: a bucket's reset (time until full) moves with every
// call, so the client waits for the latest one, but one call goes at the instant every answer's
// reset brackets. Driven on a virtual clock, one call at a time, each at `Quota.readyAt`.
import { describe, expect, it } from 'vitest';
import { Quota } from './quota.js';
import { ServerClock } from './server-clock.js';

const T0 = 1_700_000_000_123;
const L = 10;
const W = 1000;
const RTT = 3;

interface Answer {
  allowed: boolean;
  remaining: number;
  /** Ms until the whole quota is back (before rounding up to the header's seconds). */
  resetMs: number;
}

/** Calls one at a time from T0 for `ms`, each sent once `readyAt` allows it. */
function paced(server: (now: number) => Answer, ms: number) {
  const quota = new Quota(`${L};w=${W / 1000}`, 'requests');
  const clock = new ServerClock();
  const sent: number[] = [];
  const refused: number[] = [];
  let last = Number.NEGATIVE_INFINITY;
  for (let t = T0, seq = 0; t < T0 + ms; seq++) {
    const answer = server(t + 1);
    clock.observe(Math.floor((t + 1) / 1000) * 1000, t + RTT);
    quota.spend(1, t);
    quota.update(
      {
        key: quota.key,
        unit: 'requests',
        limit: L,
        remaining: answer.remaining,
        reset: { delta: Math.ceil(answer.resetMs / 1000) * 1000, grain: 1000 },
        windowMs: W,
      },
      seq,
      t,
      t + RTT,
      clock,
      0,
      answer.allowed,
    );
    (answer.allowed ? sent : refused).push(t - T0);
    last = t;
    t = Math.max(t + RTT, Math.ceil(quota.readyAt(t + RTT, 1, last)));
  }
  return { sent, refused };
}

/** tollgate's fixed window: opens at the key's first call, lasts W. */
function fixedWindow() {
  let start = Number.NEGATIVE_INFINITY;
  let count = 0;
  return (now: number): Answer => {
    if (now >= start + W) {
      start = now;
      count = 0;
    }
    const allowed = count < L;
    if (allowed) count += 1;
    return { allowed, remaining: L - count, resetMs: start + W - now };
  };
}

/** A token bucket of L per W, full at first, its reset the time until full; `drained` local times another caller empties it. */
function tokenBucket(drained: number[] = []) {
  let tokens = L;
  let at = T0;
  const drains = [...drained];
  return (now: number): Answer => {
    tokens = Math.min(L, tokens + ((now - at) * L) / W);
    at = now;
    while (drains.length > 0 && drains[0]! <= now) {
      drains.shift();
      tokens = Math.min(tokens, 0.2);
    }
    const allowed = tokens >= 1;
    if (allowed) tokens -= 1;
    return { allowed, remaining: Math.floor(tokens), resetMs: Math.ceil(((L - tokens) * W) / L) };
  };
}

describe('a stated fixed window before it was seen to come back whole', () => {
  // The first window opens at the first call's arrival (T0 + 1) and ends at T0 + 1001. Its
  // answers' resets, a second rounded up, all bracket that end (the first one's at T0 + 1003 at
  // the latest); the last one alone puts it up to a second later. Waiting for that, the client
  // sent the 11th call at T0 + 1903, and three windows from T0 + 1 s held 21 of 30 here (26 of 30,
  // 86.7%, against tollgate at 10 per 1 s, whatever the header mode).
  it('10 per 1 s: the 11th call goes as the first window ends, then every window takes its 10', () => {
    const { sent, refused } = paced(fixedWindow(), 4000);
    expect(refused).toEqual([]);
    expect(sent.slice(9, 11)).toEqual([900, 1003]);
    expect(sent.filter((t) => t >= W && t < 4 * W)).toHaveLength(30);
  });
});

describe('a stated token bucket (its reset moves with every call)', () => {
  // One call goes at the instant the resets bracket, no sooner than a unit's refill after the
  // last answer: the bucket has that unit then, and its answer is not the whole quota.
  it('10 per 1 s for 10 s: no call refused, one every 100 ms as before', () => {
    const { sent, refused } = paced(tokenBucket(), 10_000);
    expect(refused).toEqual([]);
    expect(sent).toEqual(Array.from({ length: 100 }, (_, i) => i * 100));
  });

  // Another caller empties the bucket now and then: the client's next call is refused (it cannot
  // know), and it is spent out. Its one call at the earlier end goes a unit's refill after its
  // last answer, which the bucket has by then: no other call is refused (7 refused, 51 sent
  // before the earlier end was tried, 53 since).
  it('10 per 1 s, emptied by another caller every 1.3 s: only the call right after each is refused', () => {
    const drained = Array.from({ length: 7 }, (_, i) => 500 + i * 1300);
    const { sent, refused } = paced(tokenBucket(drained.map((d) => T0 + d)), 10_000);
    // Each refused call is the first call after a drain (the server counts at send + 1 ms).
    const firstAfter = (r: number) => {
      const d = Math.max(...drained.filter((x) => x <= r + 1));
      return !sent.some((x) => x + 1 >= d && x < r);
    };
    expect(refused.filter((r) => !firstAfter(r))).toEqual([]);
    expect(refused).toHaveLength(7);
    expect(sent).toHaveLength(53);
  });
});
