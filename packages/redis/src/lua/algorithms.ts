/**
 * Lua twins of packages/core/src/algorithms/*.ts, shared by the scripts. The TypeScript steps are
 * the specification: every expression below is the same expression in the same order, so the
 * doubles (Lua 5.1 numbers are doubles too) come out bit for bit the same. Tied together by
 * test/store-conformance.test.ts.
 *
 * A policy is (L, W, B, D): limit, window in ms, burst (capacity; = limit for the windows) and
 * delay (1 or 0, leaky-bucket only). A state is a Lua array of integers as in TypeScript, or nil.
 * A step returns: next state (the old one when denied), allowed (1/0), remaining, resetMs,
 * retryAfterMs (INF for "never"), delayMs.
 *
 * Numbers are written with string.format('%d'), never tostring or a bare number passed to
 * redis.call: those use '%.14g', and scaled states reach 2^53 (16 digits).
 */
/**
 * With a caller's \`clock\`, keys live this much longer than their state. Redis expires keys on its
 * own clock; a clock that runs slower than Redis's (a virtual clock in tests) would otherwise see
 * state vanish before it says it expires. With Redis TIME (the default) TTLs are exact.
 */
export const CLOCK_TTL_GRACE_MS = 60_000;

export const ALGORITHMS_LUA = `
local INF = -1
local floor, ceil, max, min, fmod = math.floor, math.ceil, math.max, math.min, math.fmod

-- fixed-window. State: {windowStart, count}.
local function fw_step(s, now, L, W, B, D, cost)
  local start, count, reset = now, 0, 0
  if s ~= nil and now < s[1] + W then
    start = s[1]
    count = s[2]
    reset = start + W - now
  end
  if cost > L then return s, 0, L - count, reset, INF, 0 end
  if count + cost > L then return s, 0, L - count, reset, reset, 0 end
  local used = count + cost
  return {start, used}, 1, L - used, start + W - now, 0, 0
end

local function fw_refund(s, now, L, W, B, cost)
  if s == nil or now >= s[1] + W then return nil end
  return {s[1], max(0, s[2] - cost)}
end

local function fw_expires(s, L, W, B)
  return s[1] + W
end

-- sliding-window. State: {currentWindowStart, currentCount, previousCount}; windows aligned to W.
local function sw_shift(s, now, W)
  -- fmod truncates like the % of JavaScript.
  local start = now - fmod(now, W)
  if s == nil then return start, 0, 0 end
  local stored = s[1]
  if stored == start then return start, s[2], s[3] end
  if stored == start - W then return start, 0, s[2] end
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

local function sw_step(s, now, L, W, B, D, cost)
  local start, curr, prev = sw_shift(s, now, W)
  local used = prev * (W - (now - start)) + curr * W
  if cost > L then
    return s, 0, floor((L * W - used) / W), sw_reset(start, curr, prev, now, W), INF, 0
  end
  if used + cost * W > L * W then
    return s, 0, floor((L * W - used) / W), sw_reset(start, curr, prev, now, W),
      sw_retry(start, curr, prev, now, W, L, cost), 0
  end
  local nxt = curr + cost
  return {start, nxt, prev}, 1, floor((L * W - used - cost * W) / W), sw_reset(start, nxt, prev, now, W), 0, 0
end

local function sw_refund(s, now, L, W, B, cost)
  if s == nil then return nil end
  local start, curr, prev = sw_shift(s, now, W)
  if curr == 0 and prev == 0 then return nil end
  local fromCurr = min(curr, cost)
  return {start, curr - fromCurr, max(0, prev - (cost - fromCurr))}
end

local function sw_expires(s, L, W, B)
  return s[1] + 2 * W
end

-- token-bucket. State: {tokens * W, lastRefill}.
local function tb_tokens(s, now, L, W, B)
  local capacity = B * W
  if s == nil then return capacity end
  local tokens = s[1]
  local elapsed = max(0, now - s[2])
  if elapsed >= ceil((capacity - tokens) / L) then return capacity end
  return tokens + elapsed * L
end

local function tb_step(s, now, L, W, B, D, cost)
  local capacity = B * W
  local tokens = tb_tokens(s, now, L, W, B)
  local need = cost * W
  if cost > B then return s, 0, floor(tokens / W), ceil((capacity - tokens) / L), INF, 0 end
  if tokens < need then
    return s, 0, floor(tokens / W), ceil((capacity - tokens) / L), ceil((need - tokens) / L), 0
  end
  local left = tokens - need
  return {left, now}, 1, floor(left / W), ceil((capacity - left) / L), 0, 0
end

local function tb_refund(s, now, L, W, B, cost)
  if s == nil then return nil end
  local capacity = B * W
  local tokens = min(capacity, tb_tokens(s, now, L, W, B) + cost * W)
  if tokens == capacity then return nil end
  return {tokens, now}
end

local function tb_expires(s, L, W, B)
  return s[2] + ceil((B * W - s[1]) / L)
end

-- leaky-bucket. State: {level * W, lastLeak}.
local function lb_level(s, now, L)
  if s == nil then return 0 end
  local level = s[1]
  local elapsed = max(0, now - s[2])
  if elapsed >= ceil(level / L) then return 0 end
  return level - elapsed * L
end

local function lb_step(s, now, L, W, B, D, cost)
  local capacity = B * W
  local level = lb_level(s, now, L)
  local need = cost * W
  if cost > B then return s, 0, floor((capacity - level) / W), ceil(level / L), INF, 0 end
  if level + need > capacity then
    return s, 0, floor((capacity - level) / W), ceil(level / L), ceil((level + need - capacity) / L), 0
  end
  local nxt = level + need
  local delay = 0
  if D == 1 then delay = ceil(level / L) end
  return {nxt, now}, 1, floor((capacity - nxt) / W), ceil(nxt / L), 0, delay
end

local function lb_refund(s, now, L, W, B, cost)
  if s == nil then return nil end
  local level = max(0, lb_level(s, now, L) - cost * W)
  if level == 0 then return nil end
  return {level, now}
end

local function lb_expires(s, L, W, B)
  return s[2] + ceil(s[1] / L)
end

-- Indexed by the algorithm code sent in ARGV (see ALGORITHM_CODES in packages/redis/src/layout.ts).
local STEP = {fw_step, sw_step, tb_step, lb_step}
local REFUND = {fw_refund, sw_refund, tb_refund, lb_refund}
local EXPIRES = {fw_expires, sw_expires, tb_expires, lb_expires}

local function decode(raw)
  if not raw then return nil end
  local s = {}
  for n in string.gmatch(raw, '[^:]+') do s[#s + 1] = tonumber(n) end
  return s
end

local function encode(s)
  if #s == 2 then return string.format('%d:%d', s[1], s[2]) end
  return string.format('%d:%d:%d', s[1], s[2], s[3])
end
`;

/**
 * The common head of every script: `now`, the policies and their stored states.
 * ARGV[1] is `now` in ms, or '' to read Redis TIME; ARGV[2] the cost; then 5 per policy.
 */
export const PROLOGUE_LUA = `
local key = KEYS[1]
local now = tonumber(ARGV[1])
local grace = 0
if now == nil then
  -- Redis < 5 replicates scripts verbatim and refuses writes after TIME unless told otherwise.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
else
  grace = ${CLOCK_TTL_GRACE_MS}
end
local cost = tonumber(ARGV[2])
local n = (#ARGV - 2) / 5
local algo, L, W, B, D, fields = {}, {}, {}, {}, {}, {}
for i = 1, n do
  local at = 2 + (i - 1) * 5
  algo[i] = tonumber(ARGV[at + 1])
  L[i] = tonumber(ARGV[at + 2])
  W[i] = tonumber(ARGV[at + 3])
  B[i] = tonumber(ARGV[at + 4])
  D[i] = tonumber(ARGV[at + 5])
  fields[i] = tostring(i)
end
local raw = redis.call('HMGET', key, unpack(fields))
local states = {}
for i = 1, n do states[i] = decode(raw[i]) end
`;
