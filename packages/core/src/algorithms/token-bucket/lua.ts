/**
 * The Lua body of token-bucket: ./kernel.ts in Lua, the same expressions in the same order (the
 * contract every body follows, and how the Redis scripts are built from it, is in ../types.ts).
 */
export const TOKEN_BUCKET_LUA = `
-- token-bucket: capacity B, refilled continuously at L per W, full at first. Tokens are counted in
-- units of 1/W, so refilling adds exactly L per ms: exact integers.
-- State: s1 = tokens * W (nil: a full bucket), s2 = the time of the last refill.
-- Reads s1, s2, now, L (limit), W (window ms), B (burst), cost; a charge also debt.
local capacity = B * W
local tokens = capacity
if s1 then
  local elapsed = max(0, now - s2)
  -- Compare before multiplying: elapsed * L may exceed 2^53 after a long idle time.
  if elapsed < ceil((capacity - s1) / L) then tokens = s1 + elapsed * L end
end

-- consume: writes ok, remaining, reset, retry; when ok == 1 also n1, n2, old and new.
local need = cost * W
-- In debt (a settle took tokens below zero) nothing remains until the bucket has refilled past it.
remaining, reset = max(0, floor(tokens / W)), ceil((capacity - tokens) / L)
if cost > B then
  retry = INF
elseif tokens < need then
  retry = ceil((need - tokens) / L)
else
  ok = 1
  n1, n2 = tokens - need, now
  remaining, reset = floor(n1 / W), ceil((capacity - n1) / L)
  if s1 then old = s2 + ceil((capacity - s1) / L) end
  new = now + reset
end

-- refund: writes n1, n2 (n1 nil: nothing left to keep, a full bucket) and new. It ignores at: the
-- bucket is one state whenever the units were counted, and a refund never fills it past capacity.
tokens = min(capacity, tokens + cost * W)
if tokens < capacity then
  n1, n2, new = tokens, now, now + ceil((capacity - tokens) / L)
end

-- charge: writes charged, and n1, n2 (n1 nil: nothing to keep, a full bucket) and new. Debt: tokens
-- below zero, refilled at L per W like the rest.
charged = min(cost, max(0, floor((tokens + debt * W) / W)))
tokens = tokens - charged * W
if tokens < capacity then
  n1, n2, new = tokens, now, now + ceil((capacity - tokens) / L)
end
`;
