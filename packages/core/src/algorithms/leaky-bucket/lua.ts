/**
 * The Lua body of leaky-bucket: ./kernel.ts in Lua, the same expressions in the same order (the
 * contract every body follows, and how the Redis scripts are built from it, is in ../types.ts).
 */
export const LEAKY_BUCKET_LUA = `
-- leaky-bucket: the shaping bucket of nginx limit_req. Requests drain at L per W through a queue
-- of capacity B; an admitted request waits for what is queued ahead of it. The level is counted in
-- units of 1/W, so the queue drains exactly L per ms.
-- State: s1 = level * W (nil: empty), s2 = the time of the last leak.
-- Reads s1, s2, now, L (limit), W (window ms), B (burst), D (1: hold admitted requests), cost; a
-- charge also debt.
local capacity = B * W
local level = 0
if s1 then
  local elapsed = max(0, now - s2)
  if elapsed < ceil(s1 / L) then level = s1 - elapsed * L end
end

-- consume: writes ok, remaining, reset, retry, delay; when ok == 1 also n1, n2, old and new.
local need = cost * W
-- In debt (a settle filled it past capacity) nothing remains until it has drained below.
remaining, reset = max(0, floor((capacity - level) / W)), ceil(level / L)
if cost > B then
  retry = INF
elseif level + need > capacity then
  retry = ceil((level + need - capacity) / L)
else
  ok = 1
  n1, n2 = level + need, now
  remaining, reset = floor((capacity - n1) / W), ceil(n1 / L)
  if D == 1 then delay = ceil(level / L) end
  if s1 then old = s2 + ceil(s1 / L) end
  new = now + reset
end

-- refund: writes n1, n2 (n1 nil: nothing left to keep, an empty queue) and new. It ignores at: the
-- bucket is one state whenever the units were counted, and a refund never fills it past capacity.
level = max(0, level - cost * W)
if level > 0 then
  n1, n2, new = level, now, now + ceil(level / L)
end

-- charge: writes charged, and n1, n2 (n1 nil: nothing to keep, an empty queue) and new. Debt: the
-- level above capacity, drained at L per W like the rest.
charged = min(cost, max(0, floor((capacity + debt * W - level) / W)))
level = level + charged * W
if level > 0 then
  n1, n2, new = level, now, now + ceil(level / L)
end
`;
