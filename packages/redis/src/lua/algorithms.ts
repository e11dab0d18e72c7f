/**
 * With a caller's `clock`, keys live this much longer than their state. Redis expires keys on its
 * own clock; a clock that runs slower than Redis's (a virtual clock in tests) would otherwise see
 * state vanish before it says it expires. With Redis TIME (the default) TTLs are exact.
 */
export const CLOCK_TTL_GRACE_MS = 60_000;

/**
 * Lua twins of packages/core/src/algorithms/*.ts, shared by the scripts. The TypeScript steps are
 * the specification: every expression below is the same expression in the same order, so the
 * doubles (Lua 5.1 numbers are doubles too) come out bit for bit the same. Tied together by
 * test/store-conformance.test.ts.
 *
 * A policy is (L, W, B, D): limit, window in ms, burst (capacity; = limit for the windows) and
 * delay (1 or 0, leaky-bucket only). A state is up to three numbers s1, s2, s3 as in TypeScript's
 * arrays; s1 == nil means no state. Scalars, not tables: this runs on every request, and a table
 * costs Redis more than the arithmetic does.
 *
 * step(code, s1, s2, s3, now, L, W, B, D, cost) returns allowed (1/0), remaining, resetMs,
 * retryAfterMs (INF: never), delayMs and, when allowed, the next state (the third number nil for
 * the algorithms with two). refund(code, s1, s2, s3, now, L, W, B, cost) returns the next state or
 * nil; expires_at(code, s1, s2, L, W, B) is `expiresAt`. `code` is the algorithm (ALGORITHM_CODES in
 * packages/redis/src/layout.ts); dispatch is an if chain because a table would be built per call.
 *
 * Numbers reach Redis only as arguments of redis.call, which prints them with '%.17g' (exact for
 * integers up to 2^53). Never tostring() or '..' them: Lua's own '%.14g' drops digits above 1e14,
 * and scaled states reach 2^53.
 */
export const ALGORITHMS_LUA = `
local INF = -1
local floor, ceil, max, min, fmod = math.floor, math.ceil, math.max, math.min, math.fmod
local tonumber, unpack, call, ARGV = tonumber, unpack, redis.call, ARGV

-- fixed-window. State: windowStart, count.
local function fw_step(s1, s2, now, L, W, cost)
  local start, count, reset = now, 0, 0
  if s1 and now < s1 + W then
    start, count, reset = s1, s2, s1 + W - now
  end
  if cost > L then return 0, L - count, reset, INF, 0 end
  if count + cost > L then return 0, L - count, reset, reset, 0 end
  local used = count + cost
  return 1, L - used, start + W - now, 0, 0, start, used
end

local function fw_refund(s1, s2, now, W, cost)
  if not s1 or now >= s1 + W then return nil end
  return s1, max(0, s2 - cost)
end

-- sliding-window. State: currentWindowStart, currentCount, previousCount; windows aligned to W.
local function sw_shift(s1, s2, s3, now, W)
  -- fmod truncates like the % of JavaScript.
  local start = now - fmod(now, W)
  if not s1 then return start, 0, 0 end
  if s1 == start then return start, s2, s3 end
  if s1 == start - W then return start, 0, s2 end
  return start, 0, 0
end

local function sw_reset(start, curr, prev, now, W)
  if curr > 0 then return start + 2 * W - now end
  if prev > 0 then return start + W - now end
  return 0
end

local function sw_retry(start, curr, prev, now, W, L, cost)
  local elapsed = now - start
  local k = (L - curr - cost) * W
  if prev > 0 and k >= 0 then
    local q = floor(k / prev)
    if q >= 1 then return W - q - elapsed end
  end
  local nxt = start + W
  if curr == 0 then return nxt - now end
  local q2 = floor(((L - cost) * W) / curr)
  return nxt + max(0, W - q2) - now
end

local function sw_step(s1, s2, s3, now, L, W, cost)
  local start, curr, prev = sw_shift(s1, s2, s3, now, W)
  local used = prev * (W - (now - start)) + curr * W
  if cost > L then
    return 0, floor((L * W - used) / W), sw_reset(start, curr, prev, now, W), INF, 0
  end
  if used + cost * W > L * W then
    return 0, floor((L * W - used) / W), sw_reset(start, curr, prev, now, W),
      sw_retry(start, curr, prev, now, W, L, cost), 0
  end
  local nxt = curr + cost
  return 1, floor((L * W - used - cost * W) / W), sw_reset(start, nxt, prev, now, W), 0, 0, start, nxt, prev
end

local function sw_refund(s1, s2, s3, now, W, cost)
  if not s1 then return nil end
  local start, curr, prev = sw_shift(s1, s2, s3, now, W)
  if curr == 0 and prev == 0 then return nil end
  local fromCurr = min(curr, cost)
  return start, curr - fromCurr, max(0, prev - (cost - fromCurr))
end

-- token-bucket. State: tokens * W, lastRefill.
local function tb_tokens(s1, s2, now, L, W, B)
  local capacity = B * W
  if not s1 then return capacity end
  local elapsed = max(0, now - s2)
  -- Compare before multiplying: elapsed * L may exceed 2^53 after a long idle time.
  if elapsed >= ceil((capacity - s1) / L) then return capacity end
  return s1 + elapsed * L
end

local function tb_step(s1, s2, now, L, W, B, cost)
  local capacity = B * W
  local tokens = tb_tokens(s1, s2, now, L, W, B)
  local need = cost * W
  if cost > B then return 0, floor(tokens / W), ceil((capacity - tokens) / L), INF, 0 end
  if tokens < need then
    return 0, floor(tokens / W), ceil((capacity - tokens) / L), ceil((need - tokens) / L), 0
  end
  local left = tokens - need
  return 1, floor(left / W), ceil((capacity - left) / L), 0, 0, left, now
end

local function tb_refund(s1, s2, now, L, W, B, cost)
  if not s1 then return nil end
  local capacity = B * W
  local tokens = min(capacity, tb_tokens(s1, s2, now, L, W, B) + cost * W)
  if tokens == capacity then return nil end
  return tokens, now
end

-- leaky-bucket. State: level * W, lastLeak.
local function lb_level(s1, s2, now, L)
  if not s1 then return 0 end
  local elapsed = max(0, now - s2)
  if elapsed >= ceil(s1 / L) then return 0 end
  return s1 - elapsed * L
end

local function lb_step(s1, s2, now, L, W, B, D, cost)
  local capacity = B * W
  local level = lb_level(s1, s2, now, L)
  local need = cost * W
  if cost > B then return 0, floor((capacity - level) / W), ceil(level / L), INF, 0 end
  if level + need > capacity then
    return 0, floor((capacity - level) / W), ceil(level / L), ceil((level + need - capacity) / L), 0
  end
  local nxt = level + need
  local delay = 0
  if D == 1 then delay = ceil(level / L) end
  return 1, floor((capacity - nxt) / W), ceil(nxt / L), 0, delay, nxt, now
end

local function lb_refund(s1, s2, now, L, W, cost)
  if not s1 then return nil end
  local level = max(0, lb_level(s1, s2, now, L) - cost * W)
  if level == 0 then return nil end
  return level, now
end

local function step(code, s1, s2, s3, now, L, W, B, D, cost)
  if code == 2 then return sw_step(s1, s2, s3, now, L, W, cost) end
  if code == 1 then return fw_step(s1, s2, now, L, W, cost) end
  if code == 3 then return tb_step(s1, s2, now, L, W, B, cost) end
  return lb_step(s1, s2, now, L, W, B, D, cost)
end

local function refund(code, s1, s2, s3, now, L, W, B, cost)
  if code == 2 then return sw_refund(s1, s2, s3, now, W, cost) end
  if code == 1 then return fw_refund(s1, s2, now, W, cost) end
  if code == 3 then return tb_refund(s1, s2, now, L, W, B, cost) end
  return lb_refund(s1, s2, now, L, W, cost)
end

local function expires_at(code, s1, s2, L, W, B)
  if code == 2 then return s1 + 2 * W end
  if code == 1 then return s1 + W end
  if code == 3 then return s2 + ceil((B * W - s1) / L) end
  return s2 + ceil(s1 / L)
end
`;

/**
 * The common head of every script: `now`, and the stored states. Policy i's parameters are
 * ARGV[5i-2 .. 5i+2] and its state sits in hash fields 3i-2, 3i-1, 3i (the last unused by the
 * algorithms with two numbers).
 */
export const PROLOGUE_LUA = `
local key = KEYS[1]
local now = tonumber(ARGV[1])
local grace = 0
if not now then
  -- Redis < 5 replicates scripts verbatim and refuses writes after TIME unless told otherwise.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = call('TIME')
  now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
else
  grace = ${CLOCK_TTL_GRACE_MS}
end
local cost = tonumber(ARGV[2])
local n = (#ARGV - 2) / 5
local raw
if n == 1 then
  raw = call('HMGET', key, 1, 2, 3)
else
  local fields = {}
  for f = 1, 3 * n do fields[f] = f end
  raw = call('HMGET', key, unpack(fields))
end
`;
