/**
 * The ban slot in Lua: ./kernel.ts, the same expressions in the same order. The Redis store puts
 * these pieces into every script of a set with bans (packages/redis/src/lua/scripts.ts), after the
 * policies' states in the same string key, so the ban is read and written by the same EVALSHA as
 * the counts.
 *
 * In scope: `b1, b2, b3, b4` (the slot: ban end, offence, start of the denial span, denials; `b1`
 * nil: no ban state), `now`, the parameters `BAN_ARGS` names, and `floor`, `min`, `max`.
 */

/** The ban's parameters, in ARGV order after the policies' (see `ResolvedBan`). */
export const BAN_ARGS = ['after', 'within', 'banFor', 'factor', 'banMax', 'memory'] as const;

/**
 * A denied request reached the store: counts it; the `after`-th within `within` bans the key.
 * Writes `b1 .. b4` and `banLength` (the ban this denial started, else 0). Reads `after` > 0.
 */
export const BAN_COUNT_LUA = `
-- ban: count this denial; the after-th within 'within' (from the first) bans the key.
if not b1 then b1, b2, b3, b4 = 0, 0, 0, 0 end
if b4 == 0 or now >= b3 + within then b3, b4 = now, 0 end
b4 = b4 + 1
if b4 >= after then
  -- A repeat offence while the last one is remembered: the next level, else the first again.
  if b2 > 0 and now < b1 + memory then b2 = b2 + 1 else b2 = 1 end
  -- banFor times factor per offence after the first, at most banMax, one product at a time.
  banLength = banFor
  local i = 1
  while i < b2 and banLength < banMax do
    banLength = min(banLength * factor, banMax)
    i = i + 1
  end
  banLength = floor(banLength)
  b1, b3, b4 = now + banLength, 0, 0
end
`;

/** Writes `banEnd`: from then on the slot holds nothing that matters (0: no ban state). */
export const BAN_END_LUA = `
-- ban: the slot matters until its ban ends (its offence remembered 'memory' longer) and its
-- denial span closes.
local banEnd = 0
if b1 then
  banEnd = b1
  if b2 > 0 then banEnd = b1 + memory end
  if b4 > 0 then banEnd = max(banEnd, b3 + within) end
end
`;
