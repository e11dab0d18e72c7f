/**
 * The Lua body of concurrency: ./kernel.ts in Lua, the same expressions in the same order (the
 * contract every body follows, and how the Redis scripts are built from it, is in ../types.ts).
 */
export const CONCURRENCY_LUA = `
-- concurrency: at most L requests in flight. An admitted request (cost > 0) holds a lease of W ms,
-- a member of the sorted set lkey scored by when it ends, until it is released or ends.
-- State: s1 = when the last lease taken ends (nil: none taken); it bounds the key's life. s2 = 0.
-- Reads s1, now, L (limit), W (lease ms), cost, lkey; hold and release also lease (the lease id).
-- Slots are no units: a refund gives none back and a settle charges none.

-- consume: writes ok, remaining, reset, retry; when ok == 1 also n1, n2, old and new.
local live, last = call('ZCOUNT', lkey, now + 1, '+inf'), now
if live > 0 then last = call('ZRANGE', lkey, -1, -1, 'WITHSCORES')[2] + 0 end
if cost > 0 and live + 1 > L then
  -- The first lease to end frees a slot, whatever else happens: the honest wait with no release.
  local first = call('ZRANGEBYSCORE', lkey, now + 1, '+inf', 'LIMIT', 0, 1, 'WITHSCORES')[2] + 0
  remaining, reset, retry = max(0, L - live), last - now, first - now
else
  ok = 1
  local ends, taken = now, 0
  if cost > 0 then ends, taken = now + W, 1 end
  n1, n2 = ends, 0
  if s1 then
    n1, old = max(s1, ends), s1
  end
  remaining, reset, new = L - live - taken, max(last, ends) - now, n1
end

-- refund: writes n1, n2 and new. Slots are given back by a release, never by a refund.
if s1 > now then n1, n2, new = s1, 0, s1 end

-- charge: writes charged, and n1, n2 and new. A settle counts units, never slots: nothing to
-- count here, and nothing left uncharged.
charged = cost
if s1 and s1 > now then n1, n2, new = s1, 0, s1 end

-- hold: the request's lease, once the whole request is allowed; ended leases go first, so the set
-- never holds more than L.
if cost > 0 then
  call('ZREMRANGEBYSCORE', lkey, '-inf', now)
  call('ZADD', lkey, now + W, lease)
  call('PEXPIRE', lkey, n1 - now + grace)
end

-- release:
call('ZREM', lkey, lease)
`;
