/**
 * The Lua body of fixed-window: ./kernel.ts in Lua, the same expressions in the same order (the
 * contract every body follows, and how the Redis scripts are built from it, is in ../types.ts).
 */
export const FIXED_WINDOW_LUA = `
-- fixed-window: a rolling window opens at the key's first request and lasts W ms; a calendar
-- window is the period [S, S + W) that holds now (S nil: rolling). A request is allowed iff
-- count + cost <= L.
-- State: s1 = the window's start in ms (nil: no window), s2 = its count.
-- Reads s1, s2, now, L (limit), W (window ms), S (the period's start), cost; a refund also at,
-- a charge also debt.
local start, count, windowReset = S or now, 0, 0
if s1 and (S and s1 == S or not S and now < s1 + W) then
  start, count, windowReset = s1, s2, s1 + W - now
end

-- consume: writes ok, remaining, reset, retry; when ok == 1 also n1, n2, old and new.
-- In debt (a settle counted past L) the count exceeds L: nothing remains until the window ends.
remaining, reset = max(0, L - count), windowReset
if cost > L then
  retry = INF
elseif count + cost > L then
  retry = reset
else
  ok = 1
  n1, n2 = start, count + cost
  remaining, reset = L - n2, start + W - now
  if s1 then old = s1 + W end
  new = start + W
end

-- refund: writes n1, n2 (n1 nil: nothing left to keep) and new.
if S and s1 == S or not S and now < s1 + W then
  n1, n2, new = s1, max(0, s2 - cost), s1 + W
  -- Counted in an earlier window: this one owes it nothing.
  if at and at < s1 then n2 = s2 end
end

-- charge: writes charged, and n1, n2 (n1 nil: nothing to keep) and new. Debt: the count above L,
-- owed until the window ends (then the count starts over).
charged = min(cost, max(0, L + debt - count))
if charged > 0 or windowReset > 0 then
  n1, n2, new = start, count + charged, start + W
end
`;
