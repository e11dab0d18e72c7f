import type { Outcome, ResolvedBan } from '../types.js';

/**
 * The ban slot: four numbers stored after a key's policy states, read and written in the same
 * atomic store call as the counts. `data[at]` NaN: no ban state at all.
 *
 * - `until`: when the key's ban ends (0: never banned), in the store's time;
 * - `offence`: the offence number of its last automatic ban (0: none remembered);
 * - `start`, `denials`: the denials counted in the span that opened at the first of them.
 *
 * The Lua twin is ./lua.ts; test/store-conformance.test.ts holds them to identical answers.
 */
export const BAN_WIDTH = 4;

const UNTIL = 0;
const OFFENCE = 1;
const START = 2;
const DENIALS = 3;

/** Ms of ban left at `now`; 0 when the key is not banned. */
export function banLeft(data: Float64Array, at: number, now: number): number {
  const until = data[at + UNTIL]!;
  // NaN (no state) fails the comparison.
  return until > now ? until - now : 0;
}

/**
 * A denied request reached the store: counts it, and bans the key when it is the `after`-th within
 * `within`. Writes the ban slot in place (the caller stores it); returns the length of the ban this
 * denial started, else 0. `ban.after` 0 (bans by `limiter.ban()` only) counts nothing.
 */
export function countDenial(data: Float64Array, at: number, now: number, ban: ResolvedBan): number {
  let until = data[at + UNTIL]!;
  let offence = data[at + OFFENCE]!;
  let start = data[at + START]!;
  let denials = data[at + DENIALS]!;
  if (Number.isNaN(until)) {
    until = 0;
    offence = 0;
    start = 0;
    denials = 0;
  }
  // The span opens at the first denial and lasts `within`; a denial after it opens a new one.
  if (denials === 0 || now >= start + ban.within) {
    start = now;
    denials = 0;
  }
  denials += 1;
  let length = 0;
  if (denials >= ban.after) {
    // A repeat offence while the last one is remembered: the next level, else the first again.
    offence = offence > 0 && now < until + ban.memory ? offence + 1 : 1;
    length = banLength(ban, offence);
    until = now + length;
    start = 0;
    denials = 0;
  }
  data[at + UNTIL] = until;
  data[at + OFFENCE] = offence;
  data[at + START] = start;
  data[at + DENIALS] = denials;
  return length;
}

/**
 * `for` times `factor` per offence after the first, at most `max`, in whole ms. Multiplied step by
 * step (each product rounds the same way in Lua and JavaScript, where a power might not), stopping
 * at `max`.
 */
export function banLength(ban: ResolvedBan, offence: number): number {
  let length = ban.for;
  for (let i = 1; i < offence && length < ban.max; i++) length = Math.min(length * ban.factor, ban.max);
  return Math.floor(length);
}

/**
 * `limiter.ban()`: banned until `now + durationMs`, counted denials kept, and the offence count
 * while it is remembered (`memory` after the last ban's end, as in `countDenial`). An offence past
 * it is forgotten here, as if the slot had gone: whether a stale offence is still stored (the
 * slot kept by the policies' state or an open denial span, not swept yet, a TTL with a grace) must
 * change neither the offence answered nor the next ban's length.
 */
export function setBan(
  data: Float64Array,
  at: number,
  now: number,
  durationMs: number,
  ban: ResolvedBan,
): void {
  const until = data[at + UNTIL]!;
  if (Number.isNaN(until)) {
    data[at + OFFENCE] = 0;
    data[at + START] = 0;
    data[at + DENIALS] = 0;
  } else if (now >= until + ban.memory) {
    data[at + OFFENCE] = 0;
  }
  data[at + UNTIL] = now + durationMs;
}

/** From this time on the ban slot holds nothing that matters: its ban, its offences, its denials. */
export function banExpiresAt(data: Float64Array, at: number, ban: ResolvedBan): number {
  const until = data[at + UNTIL]!;
  if (Number.isNaN(until)) return 0;
  const offence = data[at + OFFENCE]!;
  const denials = data[at + DENIALS]!;
  return Math.max(until + (offence > 0 ? ban.memory : 0), denials > 0 ? data[at + START]! + ban.within : 0);
}

/** A banned key's answer from every policy: refused for the ban's time left. */
export function bannedOutcomes(outcomes: Outcome[], count: number, leftMs: number): Outcome[] {
  for (let i = 0; i < count; i++) {
    outcomes[i] = {
      allowed: false,
      remaining: 0,
      resetMs: leftMs,
      retryAfterMs: leftMs,
      delayMs: 0,
      windowMs: undefined,
    };
  }
  return outcomes;
}
