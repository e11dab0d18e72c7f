/**
 * The Lua body of sliding-window: ./kernel.ts in Lua, the same expressions in the same order (the
 * contract every body follows, and how the Redis scripts are built from it, is in ../types.ts).
 */
export const SLIDING_WINDOW_LUA = `
-- sliding-window: the sliding-window counter over windows aligned to multiples of W.
-- estimate = prev * (W - elapsed) / W + curr, multiplied by W throughout to stay in exact integers.
-- State: s1 = the current window's start (nil: none), s2 = its count, s3 = the previous window's.
-- Reads s1, s2, s3, now, L (limit), W (window ms), cost; a refund also at, a charge also debt.
-- fmod truncates like the % of JavaScript.
local start = now - fmod(now, W)
local curr, prev = 0, 0
if s1 == start then
  curr, prev = s2, s3
elseif s1 == start - W then
  prev = s2
end

-- consume: writes ok, remaining, reset, retry; when ok == 1 also n1, n2, n3, old and new.
local free = L * W - prev * (W - (now - start)) - curr * W
-- In debt (a settle counted past L) free is negative: nothing remains until it has decayed.
remaining = max(0, floor(free / W))
if cost > L or cost * W > free then
  retry = INF
  if cost <= L then
    -- The earliest wait after which cost fits: in this window, as the previous window's weight
    -- decays, else in the next one, where this window's count becomes the decaying one.
    local k = (L - curr - cost) * W
    local q = 0
    if prev > 0 and k >= 0 then q = floor(k / prev) end
    if q >= 1 then
      retry = start + W - q - now
    elseif curr == 0 then
      retry = start + W - now
    else
      retry = start + W + max(0, W - floor(((L - cost) * W) / curr)) - now
    end
  end
else
  ok = 1
  remaining = floor((free - cost * W) / W)
  curr = curr + cost
  n1, n2, n3 = start, curr, prev
  if s1 then old = s1 + 2 * W end
  new = start + 2 * W
end
if curr > 0 then
  reset = start + 2 * W - now
elseif prev > 0 then
  reset = start + W - now
end

-- refund: writes n1, n2, n3 (n1 nil: nothing left to keep) and new.
if curr > 0 or prev > 0 then
  n1, n2, n3, new = start, curr, prev, start + 2 * W
  if not at then
    local fromCurr = min(curr, cost)
    n2, n3 = curr - fromCurr, max(0, prev - (cost - fromCurr))
  else
    -- To the window that counted the units, if it still weighs in: this one or the previous one.
    local counted = at - fmod(at, W)
    if counted == start then
      n2 = max(0, curr - cost)
    elseif counted == start - W then
      n3 = max(0, prev - cost)
    end
  end
end

-- charge: writes charged, and n1, n2, n3 (n1 nil: nothing to keep) and new. Debt: the estimate
-- above L, counted in this window; it decays as the window slides past it.
local free = L * W - prev * (W - (now - start)) - curr * W
charged = min(cost, max(0, floor((free + debt * W) / W)))
if curr + charged > 0 or prev > 0 then
  n1, n2, n3, new = start, curr + charged, prev, start + 2 * W
end
`;
