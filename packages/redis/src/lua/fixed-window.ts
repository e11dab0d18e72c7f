/**
 * A set of one fixed-window policy on Redis time (no caller `clock`) keeps its state in Redis's
 * own terms: the key holds the window's count as an integer and expires when the window ends. The
 * window start is never needed: `start + W - now` (the fixed-window `reset`) is the key's PTTL, and
 * `now < start + W` is "the key still has time left". So a consume is PTTL and INCR, the two calls
 * of the bare counters other libraries use, with no TIME, no decoding and no TTL to rewrite, and
 * the same answers as packages/core/src/algorithms/fixed-window.ts:
 *
 * - no window (no key, or PTTL 0: it ends this millisecond, `now >= start + W`): a request that
 *   fits opens one, `SET key cost PX W`, reset = W.
 * - a window: allowed iff count + cost <= L; a denied request is taken back (DECRBY), so it consumes
 *   nothing. reset = PTTL; retryAfter = reset when denied, never when cost > L.
 *
 * A key without a TTL (PTTL -1: someone PERSISTed it) is treated as no window and rewritten with one.
 * A value that is not an integer makes INCR fail, so a corrupted key is an error, not a guess.
 *
 * Every script takes ARGV cost, limit, window ms and replies with two integers, `count` (after the
 * request if allowed, else as it stands) and `ttl` (the reset; negative when denied), from which
 * the store builds the outcome knowing cost and limit (see `counterOutcome`): a shorter reply is a
 * cheaper one on both sides.
 */
export const FIXED_WINDOW_CONSUME_SCRIPT = `-- KEYS[1]: one (fixed-window policy, key): the count, expiring when the window ends
-- ARGV[1]: cost
-- ARGV[2]: limit
-- ARGV[3]: window ms
local key = KEYS[1]
local ttl = redis.call('PTTL', key)
if ttl > 0 and ARGV[1] == '1' then
  -- The common case, as cheap as a bare counter.
  local count = redis.call('INCR', key)
  if count <= tonumber(ARGV[2]) then return { count, ttl } end
  redis.call('DECR', key)
  return { count - 1, -ttl }
end
local cost, L = tonumber(ARGV[1]), tonumber(ARGV[2])
if ttl <= 0 then
  if cost > L then return { 0, 0 } end
  redis.call('SET', key, cost, 'PX', ARGV[3])
  return { cost, tonumber(ARGV[3]) }
end
if cost > L then
  local count = tonumber(redis.call('GET', key))
  if not count then return redis.error_reply('ERR tollgate: the value at ' .. key .. ' is not a count') end
  return { count, ttl }
end
local count = redis.call('INCRBY', key, cost)
if count > L then
  redis.call('DECRBY', key, cost)
  return { count - cost, -ttl }
end
return { count, ttl }
`;

/** What a cost-1 request would get, writing nothing: `count` and `ttl` as they stand. */
export const FIXED_WINDOW_PEEK_SCRIPT = `-- KEYS[1]: one (fixed-window policy, key): the count, expiring when the window ends
-- ARGV[1]: ignored (the cost slot)
-- ARGV[2]: limit
-- ARGV[3]: window ms
local key = KEYS[1]
local ttl = redis.call('PTTL', key)
-- No window: as the step with cost 0 says, one would open now and end in W.
if ttl <= 0 then return { 0, tonumber(ARGV[3]) } end
local count = tonumber(redis.call('GET', key))
if not count then return redis.error_reply('ERR tollgate: the value at ' .. key .. ' is not a count') end
return { count, ttl }
`;

/** Gives back up to `cost` in a running window; the window's end does not move. Replies 1 or 0. */
export const FIXED_WINDOW_REFUND_SCRIPT = `-- KEYS[1]: one (fixed-window policy, key): the count, expiring when the window ends
-- ARGV[1]: cost to give back
-- ARGV[2]: limit
-- ARGV[3]: window ms
local key = KEYS[1]
local ttl = redis.call('PTTL', key)
if ttl <= 0 then
  -- No window to give back to. One ending this very millisecond has nothing left to keep, and a
  -- key without a TTL (PERSISTed) is no state of ours.
  if ttl ~= -2 then redis.call('DEL', key) end
  return 0
end
local count = tonumber(redis.call('GET', key))
if not count then return redis.error_reply('ERR tollgate: the value at ' .. key .. ' is not a count') end
local back = math.min(count, tonumber(ARGV[1]))
if back > 0 then redis.call('DECRBY', key, back) end
return 1
`;
